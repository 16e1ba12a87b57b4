// The kernel table of an ISA path: that path's variant of every kernel family (matmul_q4, lm_head,
// the decoder kernels), as function pointers, built once per path (kernels/kernel_tables.cpp) and
// chosen once: by a Decoder when it is built, by each call of the kernel bindings that names a path.
// No kernel call dispatches on the ISA again (docs/kernels.md 4.2).
#pragma once

#include "qwenvl_edge/decoder_kernels.h"
#include "qwenvl_edge/isa.h"
#include "qwenvl_edge/lm_head.h"
#include "qwenvl_edge/matmul_q4.h"

namespace qwenvl_edge {

struct Kernels : MatmulQ4Kernels, LmHeadKernels, DecoderKernels {};

// The table of `isa`. Throws std::invalid_argument unless this machine can run it (require_isa).
const Kernels& kernels_for(Isa isa);

}  // namespace qwenvl_edge
