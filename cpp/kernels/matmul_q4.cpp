// matmul_q4 around a path's variants (matmul_q4.h): gather act-order activations, cut prefill into tile
// chunks, then call the variant of the table. Baseline code: the gather's std::vector lives here.
#include "qwenvl_edge/matmul_q4.h"

#include <algorithm>
#include <vector>

namespace qwenvl_edge {
namespace {

// Prefill (m > 1) runs a thread's output tiles in chunks of this many: every pass over the rows then
// reads one chunk's weights (8 x 34 KiB at K = 4096) from L2 instead of the thread's whole stripe from
// memory. Without it each pair of rows streams the stripe again once it outgrows the last-level cache
// (11 MiB per thread for the MLP at 2 threads, against 8 MiB of L3 on a laptop-class part).
constexpr int64_t kPrefillTileChunk = 8;

template <typename Kernel>
void in_tile_chunks(int64_t m, int64_t tile_begin, int64_t tile_end, Kernel kernel) {
  if (m < 2) return kernel(tile_begin, tile_end);
  for (int64_t c = tile_begin; c < tile_end; c += kPrefillTileChunk) kernel(c, std::min(c + kPrefillTileChunk, tile_end));
}

// x [m][k] in the weight's sorted input order: row[i] = x[perm[i]]; no copy without a permutation.
const float* sorted_inputs(const float* x, int64_t m, int64_t k, const int32_t* perm, std::vector<float>& buf) {
  if (!perm) return x;
  buf.resize(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) buf[i * k + j] = x[i * k + perm[j]];
  return buf.data();
}

}  // namespace

void quantize_q8(const MatmulQ4Kernels& kernels, const float* x, int64_t m, int64_t k, const int32_t* perm,
                 const Q8Acts& out) {
  std::vector<float> buf;
  kernels.quantize_q8(sorted_inputs(x, m, k, perm, buf), m, k, out);
}

void matmul_q4_exact(const MatmulQ4Kernels& kernels, const float* x, int64_t m, const Q4Matrix& w, const float* bias,
                     float* y, int64_t tile_begin, int64_t tile_end) {
  std::vector<float> buf;
  const float* xs = sorted_inputs(x, m, w.k, w.perm, buf);
  in_tile_chunks(m, tile_begin, tile_end, [&](int64_t b, int64_t e) { kernels.matmul_q4_exact(xs, m, w, bias, y, b, e); });
}

void matmul_q4_q8(const MatmulQ4Kernels& kernels, const Q8Acts& x, int64_t m, const Q4Matrix& w, const float* bias,
                  float* y, int64_t tile_begin, int64_t tile_end) {
  in_tile_chunks(m, tile_begin, tile_end, [&](int64_t b, int64_t e) { kernels.matmul_q4_q8(x, m, w, bias, y, b, e); });
}

}  // namespace qwenvl_edge
