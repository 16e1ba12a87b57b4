// A C++-only check of the static core, for builds without Python (cross-compiled arm64 under qemu,
// sanitizer builds): every supported ISA path of matmul_q4 (exact and q8) against a plain dequantised
// product, of the lm_head family against its scalar reference, the CPU report, and the ISA dispatch.
// Exit code 0 = pass.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "qwenvl_edge/core.h"
#include "qwenvl_edge/lm_head.h"
#include "qwenvl_edge/matmul_q4.h"

using namespace qwenvl_edge;

namespace {

// Plain comparisons in these reductions: aarch64 g++ 12 hits an internal error vectorising fmax ones.
double worst(double a, double b) { return b > a ? b : a; }

// Largest |got - want| over the largest |want|.
double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = worst(err, std::fabs(double(got[i]) - want[i]));
    scale = worst(scale, std::fabs(want[i]));
  }
  return err / scale;
}

// Every ISA path of lm_head_f16 / lm_head_i8 / lm_head_i8_q8 against the scalar path, over a row range
// that leaves a partial block of four at its end and the rows outside it untouched. Returns failures.
int check_lm_head(std::mt19937& rng) {
  constexpr double kFloatTol = 1e-5;  // float heads: summation order only
  constexpr double kQ8Tol = 1e-6;     // int8 head: exact group sums, float steps alike
  const int64_t dim = 256, rows = 37, row_begin = 3, row_end = 37;
  std::uniform_int_distribution<uint32_t> bits;
  std::normal_distribution<float> normal;
  std::vector<uint16_t> w16(rows * dim);
  for (auto& h : w16) h = (bits(rng) & 0x87ff) | 0x3000;  // +-[0.125, 0.5): random sign and mantissa
  std::vector<int8_t> w8(rows * dim);
  for (auto& q : w8) q = static_cast<int8_t>(bits(rng));  // the full range, -128 included
  std::vector<float> scale(rows);
  for (auto& s : scale) s = 1e-3f * (1.0f + (bits(rng) & 0xff) / 256.0f);
  int failures = 0;
  for (Isa isa : supported_isas()) {
    double f16_err = 0, i8_err = 0, q8_err = 0;
    for (int64_t m : {1, 3}) {
      std::vector<float> x(m * dim);
      for (auto& v : x) v = normal(rng);
      // y [m][rows], prefilled so that a write outside [row_begin, row_end) shows as a difference
      auto run = [&](Isa path, auto head) {
        std::vector<float> y(m * rows, -1.0f);
        head(path, y.data());
        return y;
      };
      auto f16 = [&](Isa p, float* y) { lm_head_f16(p, x.data(), m, w16.data(), dim, rows, row_begin, row_end, y); };
      auto i8 = [&](Isa p, float* y) {
        lm_head_i8(p, x.data(), m, w8.data(), scale.data(), dim, rows, row_begin, row_end, y);
      };
      auto q8 = [&](Isa p, float* y) {
        lm_head_i8_q8(p, x.data(), m, w8.data(), scale.data(), dim, rows, row_begin, row_end, y);
      };
      f16_err = worst(f16_err, rel_err(run(isa, f16), run(Isa::kScalar, f16)));
      i8_err = worst(i8_err, rel_err(run(isa, i8), run(Isa::kScalar, i8)));
      q8_err = worst(q8_err, rel_err(run(isa, q8), run(Isa::kScalar, q8)));
    }
    const bool ok = f16_err < kFloatTol && i8_err < kFloatTol && q8_err < kQ8Tol;
    failures += !ok;
    std::printf("%-11s lm_head f16 %.1e  i8 %.1e  i8_q8 %.1e  %s\n", isa_name(isa), f16_err, i8_err, q8_err,
                ok ? "ok" : "FAIL");
  }
  return failures;
}

}  // namespace

int main() {
  const auto& cpu = cpu_features();
  std::printf("qwenvl-edge %s, format %d, %s (%s), %d cores\n", kVersion, kFormatVersion, cpu.arch.c_str(),
              cpu.brand.c_str(), cpu.physical_cores);
  const int64_t k = 256, n = 48, m = 3;
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  std::normal_distribution<float> normal;
  std::vector<Q4Block> blocks((n / kQ4Tile) * (k / kQ4Group));
  for (auto& b : blocks) {
    for (auto& row : b.q)
      for (auto& word : row) word = bits(rng);
    for (int c = 0; c < kQ4Tile; ++c) {
      b.scale[c] = 0x2000 + (bits(rng) & 0x3ff);  // small positive halves
      b.zero[c] = bits(rng) & 0xF;
    }
  }
  const Q4Matrix w{blocks.data(), k, n, nullptr};
  std::vector<float> x(m * k);
  for (auto& v : x) v = normal(rng);
  std::vector<double> want(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t col = 0; col < n; ++col)
      for (int64_t j = 0; j < k; ++j) {
        const Q4Block& b = w.block(col / kQ4Tile, j / kQ4Group);
        const int q = (b.q[(j % kQ4Group) / 8][col % kQ4Tile] >> (4 * (j % 8))) & 0xF;
        want[i * n + col] += double(x[i * k + j]) * fp16_to_fp32(b.scale[col % kQ4Tile]) * (q - b.zero[col % kQ4Tile]);
      }
  double scale = 0;
  for (double v : want) scale = worst(scale, std::fabs(v));
  int failures = 0;
  std::vector<float> scalar_q8;  // every path's q8 result must equal the scalar reference's
  for (Isa isa : supported_isas()) {
    std::vector<float> y(m * n);
    std::vector<int8_t> q(m * k);
    std::vector<float> d(m * k / kQ4Group);
    std::vector<int32_t> s(m * k / kQ4Group);
    matmul_q4_exact(isa, x.data(), m, w, nullptr, y.data(), 0, n / kQ4Tile);
    double exact_err = 0, q8_err = 0;
    for (int64_t i = 0; i < m * n; ++i) exact_err = worst(exact_err, std::fabs(y[i] - want[i]) / scale);
    const Q8Acts acts{q.data(), d.data(), s.data()};
    quantize_q8(isa, x.data(), m, k, nullptr, acts);
    matmul_q4_q8(isa, acts, m, w, nullptr, y.data(), 0, n / kQ4Tile);
    for (int64_t i = 0; i < m * n; ++i) q8_err = worst(q8_err, std::fabs(y[i] - want[i]) / scale);
    if (scalar_q8.empty()) scalar_q8 = y;
    double vs_scalar = 0;
    for (int64_t i = 0; i < m * n; ++i) vs_scalar = worst(vs_scalar, std::fabs(y[i] - scalar_q8[i]) / scale);
    const bool ok = exact_err < 1e-5 && q8_err < 2e-2 && vs_scalar < 1e-5;
    failures += !ok;
    std::printf("%-11s exact %.1e  q8 %.1e (vs scalar q8 %.1e)  %s\n", isa_name(isa), exact_err, q8_err, vs_scalar,
                ok ? "ok" : "FAIL");
  }
  failures += check_lm_head(rng);
  std::printf("default ISA: %s\n", isa_name(default_isa()));
  return failures ? 1 : 0;
}
