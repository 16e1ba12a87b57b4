// The kernel table of each ISA path: which variant of each family a path runs (docs/kernels.md 3.1).
// Constant data (function addresses), so the tables exist before any code runs.
#include <stdexcept>
#include <string>

#include "kernels/path_kernels.h"
#include "qwenvl_edge/kernels.h"

namespace qwenvl_edge {
namespace {

constexpr DecoderKernels kRefDecoder{ref::rms_norm, ref::apply_rope, ref::silu_gate, ref::softmax, ref::to_f16,
    ref::attention_scores, ref::attention_scores_f16, ref::attention_values, ref::attention_values_f16};

const Kernels kScalar{{ref::quantize_q8, ref::matmul_q4_exact, ref::matmul_q4_q8},
                      {ref::lm_head_f16, ref::lm_head_i8, ref::lm_head_i8_q8},
                      kRefDecoder};

#if defined(QWENVL_X86_KERNELS)
constexpr DecoderKernels kAvx2Decoder{avx2::rms_norm, avx2::apply_rope, avx2::silu_gate, avx2::softmax, avx2::to_f16,
    avx2::attention_scores, avx2::attention_scores_f16, avx2::attention_values, avx2::attention_values_f16};
// VNNI adds nothing to float work: avx512vnni shares these.
constexpr DecoderKernels kAvx512Decoder{avx512::rms_norm, avx512::apply_rope, avx512::silu_gate, avx512::softmax, avx512::to_f16,
    avx512::attention_scores, avx512::attention_scores_f16, avx512::attention_values, avx512::attention_values_f16};

// lm_head_i8_q8 has no AVX2 or plain AVX-512 variant: those paths run the reference.
const Kernels kAvx2{{avx2::quantize_q8, avx2::matmul_q4_exact, avx2::matmul_q4_q8},
                    {avx2::lm_head_f16, avx2::lm_head_i8, ref::lm_head_i8_q8},
                    kAvx2Decoder};
const Kernels kAvx512{{avx512::quantize_q8, avx512::matmul_q4_exact, avx512::matmul_q4_q8},
                      {avx512::lm_head_f16, avx512::lm_head_i8, ref::lm_head_i8_q8},
                      kAvx512Decoder};
const Kernels kAvx512Vnni{{avx512vnni::quantize_q8, avx512vnni::matmul_q4_exact, avx512vnni::matmul_q4_q8},
                          {avx512::lm_head_f16, avx512::lm_head_i8, avx512vnni::lm_head_i8_q8},
                          kAvx512Decoder};
#endif

#if defined(QWENVL_ARM64_KERNELS)
// Built once, for base Armv8-a: dotprod adds nothing to float work (the float heads included).
constexpr DecoderKernels kNeonDecoder{neon::rms_norm, neon::apply_rope, neon::silu_gate, neon::softmax, neon::to_f16,
    neon::attention_scores, neon::attention_scores_f16, neon::attention_values, neon::attention_values_f16};

const Kernels kNeon{{neon::quantize_q8, neon::matmul_q4_exact, neon::matmul_q4_q8},
                    {neon::lm_head_f16, neon::lm_head_i8, neon::lm_head_i8_q8},
                    kNeonDecoder};
const Kernels kNeonDot{{neondot::quantize_q8, neondot::matmul_q4_exact, neondot::matmul_q4_q8},
                       {neon::lm_head_f16, neon::lm_head_i8, neondot::lm_head_i8_q8},
                       kNeonDecoder};
#endif

}  // namespace

const Kernels& kernels_for(Isa isa) {
  require_isa(isa);
  switch (isa) {
    case Isa::kScalar:
      return kScalar;
#if defined(QWENVL_X86_KERNELS)
    case Isa::kAvx2:
      return kAvx2;
    case Isa::kAvx512:
      return kAvx512;
    case Isa::kAvx512Vnni:
      return kAvx512Vnni;
#endif
#if defined(QWENVL_ARM64_KERNELS)
    case Isa::kNeon:
      return kNeon;
    case Isa::kNeonDot:
      return kNeonDot;
#endif
    default:
      break;
  }
  // Only reachable if cpu_features() reports a path of another architecture than the one built.
  throw std::logic_error(std::string("no kernels built for the '") + isa_name(isa) + "' path");
}

}  // namespace qwenvl_edge
