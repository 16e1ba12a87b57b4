// Software prefetch for the decode kernels of matmul_q4 (docs/kernels.md 6.2). Private to the kernels.
//
// Decode (one activation row) reads each tile's blocks as a stream of 1072-byte blocks, a few tiles
// at a time: streams too short-sighted for the hardware prefetcher, which also stops at every 4 KiB
// page. The decode kernels ask for every line of the block kQ4PrefetchBlocks ahead in each stream,
// one slice per octet row (r = 0..15), the tail lines with the last. Two blocks (~2 KiB) ahead was
// the best of 1-8 at one and two threads (benchmarks/NOTES.md).
//
// `static`: each per-ISA translation unit keeps its own copy (docs/kernels.md 3.3).
#pragma once

#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {

inline constexpr int kQ4PrefetchBlocks = 2;

static inline void prefetch_block_slice(const Q4Block* b, int r) {
  const char* p = reinterpret_cast<const char*>(b);
  __builtin_prefetch(p + 64 * r);
  if (r == kQ4Octets - 1) {  // the block spans 17-18 lines wherever it starts: these reach the rest
    __builtin_prefetch(p + 64 * kQ4Octets);
    __builtin_prefetch(p + sizeof(Q4Block) - 1);
  }
}

}  // namespace qwenvl_edge
