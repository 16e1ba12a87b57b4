// y[M, N] = x[M, K] @ W + bias for a 4-bit weight W in the Q4Block layout (q4_block.h).
//
// Two paths over the same weights:
//   exact: fp32 activations, fp32 accumulation: the fidelity path (matches a float reference up to
//          summation order);
//   q8:    activations quantized per 128-group to int8 (quantize_q8), int8 x uint4 dot products with
//          int32 accumulation per group, one float epilogue per group: the fast path.
// Each kernel computes the output tiles [tile_begin, tile_end) (16 outputs each), so a thread pool
// can split the work; bias may be null.
#pragma once

#include <cstdint>

#include "qwenvl_edge/isa.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {

// Activations of M rows quantized for the q8 path. Per row and 128-group g: 128 int8 values in
// "even/odd octets" order (for each octet r: x[8r+0,2,4,6] then x[8r+1,3,5,7]), so that one 32-bit
// broadcast feeds the low-nibble (even) or high-nibble (odd) inputs of a GPTQ word; the scale d
// (x ~= d * q) and the sum of the 128 int8 values, for the zero-point term.
struct Q8Acts {
  int8_t* q = nullptr;   // [m][k]
  float* d = nullptr;    // [m][k / 128]
  int32_t* sum = nullptr;  // [m][k / 128]
};

// x [m][k] float -> Q8Acts, gathering x through perm (may be null) first. Round to nearest, d = amax/127.
void quantize_q8(Isa isa, const float* x, int64_t m, int64_t k, const int32_t* perm, const Q8Acts& out);

void matmul_q4_exact(Isa isa, const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                     int64_t tile_begin, int64_t tile_end);

void matmul_q4_q8(Isa isa, const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,
                  int64_t tile_begin, int64_t tile_end);

// Decode (one activation row) reads each tile's blocks as a stream of 1072-byte blocks, a few tiles
// at a time: streams too short-sighted for the hardware prefetcher, which also stops at every 4 KiB
// page. The decode kernels ask for every line of the block kQ4PrefetchBlocks ahead in each stream,
// one slice per octet row (r = 0..15), the tail lines with the last. Two blocks (~2 KiB) ahead was
// the best of 1-8 at one and two threads (benchmarks/NOTES.md).
inline constexpr int kQ4PrefetchBlocks = 2;

inline void prefetch_block_slice(const Q4Block* b, int r) {
  const char* p = reinterpret_cast<const char*>(b);
  __builtin_prefetch(p + 64 * r);
  if (r == kQ4Octets - 1) {  // the block spans 17-18 lines wherever it starts: these reach the rest
    __builtin_prefetch(p + 64 * kQ4Octets);
    __builtin_prefetch(p + sizeof(Q4Block) - 1);
  }
}

// The per-ISA implementations behind the dispatchers above. They take activations already in the
// weight's (sorted) input order and ignore w.perm: the dispatchers gather, in baseline-compiled code,
// so that no STL code is ever instantiated with wider-ISA flags (a linker could keep that copy for
// the whole module and fault on older CPUs).
#define QWENVL_DECLARE_MATMUL_Q4(ns)                                                                   \
  namespace ns {                                                                                      \
  void quantize_q8(const float* x, int64_t m, int64_t k, const Q8Acts& out);                          \
  void matmul_q4_exact(const float* x, int64_t m, const Q4Matrix& w, const float* bias, float* y,      \
                       int64_t tile_begin, int64_t tile_end);                                          \
  void matmul_q4_q8(const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias, float* y,       \
                    int64_t tile_begin, int64_t tile_end);                                             \
  }
QWENVL_DECLARE_MATMUL_Q4(ref)
#if defined(QWENVL_X86_KERNELS)
QWENVL_DECLARE_MATMUL_Q4(avx2)
QWENVL_DECLARE_MATMUL_Q4(avx512)
QWENVL_DECLARE_MATMUL_Q4(avx512vnni)
#endif
#if defined(QWENVL_ARM64_KERNELS)
QWENVL_DECLARE_MATMUL_Q4(neon)
QWENVL_DECLARE_MATMUL_Q4(neondot)
#endif
#undef QWENVL_DECLARE_MATMUL_Q4

}  // namespace qwenvl_edge
