// A C++-only check of the static core, for builds without Python (cross-compiled arm64 under qemu,
// sanitizer builds): every supported ISA path of matmul_q4 (exact and q8) against a plain dequantised
// product, of the lm_head family and of the decoder kernel table against their scalar references, the
// CPU report, and the ISA dispatch. Exit code 0 = pass.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "qwenvl_edge/core.h"
#include "qwenvl_edge/kernels.h"
#include "qwenvl_edge/q4_block.h"
#include "qwenvl_edge/thread_pool.h"

using namespace qwenvl_edge;

namespace {

// Plain comparisons in these reductions: aarch64 g++ 12 hits an internal error vectorising fmax ones.
double worst(double a, double b) { return b > a ? b : a; }

double max_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0;
  for (size_t i = 0; i < want.size(); ++i) err = worst(err, std::fabs(double(got[i]) - want[i]));
  return err;
}

// Largest |got - want| over the largest |want|.
double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 0;
  for (float w : want) scale = worst(scale, std::fabs(w));
  return max_diff(got, want) / scale;
}

// Largest |got - want| / |want| element by element, |want| taken as at least 1e-20: an exp clamped at
// e^-87.3 (~1e-38) where the reference underflows is no error.
double elem_err(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0;
  for (size_t i = 0; i < want.size(); ++i)
    err = worst(err, std::fabs(double(got[i]) - want[i]) / worst(1e-20, std::fabs(want[i])));
  return err;
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
      auto f16 = [&](Isa p, float* y) {
        kernels_for(p).lm_head_f16(x.data(), m, w16.data(), dim, rows, row_begin, row_end, y);
      };
      auto i8 = [&](Isa p, float* y) {
        kernels_for(p).lm_head_i8(x.data(), m, w8.data(), scale.data(), dim, rows, row_begin, row_end, y);
      };
      auto q8 = [&](Isa p, float* y) {
        lm_head_i8_q8(kernels_for(p), x.data(), m, w8.data(), scale.data(), dim, rows, row_begin, row_end, y);
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

// The decoder kernel checks below draw their inputs, run the table under test and the scalar one on
// them, and return the first's error.
const DecoderKernels& scalar_table() { return kernels_for(Isa::kScalar); }

std::vector<float> randn(std::mt19937& rng, int64_t n, float sigma) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// Rows of 7 (all tail) and 4096.
double rms_norm_err(const DecoderKernels& k, std::mt19937& rng) {
  const int64_t rows = 3;
  double err = 0;
  for (int64_t dim : {7, 4096}) {
    const auto x = randn(rng, rows * dim, 1.0f), w = randn(rng, dim, 1.0f);
    std::vector<float> got(rows * dim), want(rows * dim);
    k.rms_norm(x.data(), w.data(), rows, dim, 1e-6f, got.data());
    scalar_table().rms_norm(x.data(), w.data(), rows, dim, 1e-6f, want.data());
    err = worst(err, rel_err(got, want));
  }
  return err;
}

// head_dim 42 (half = 21, a tail) and 128; rows padded past the heads, so a stray write shows. The
// tables are random, not rope_tables(): halves i and half + i then differ and a swapped index shows.
double rope_err(const DecoderKernels& k, std::mt19937& rng) {
  const int64_t t = 4, heads = 3;
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  double err = 0;
  for (int64_t hd : {42, 128}) {
    const int64_t stride = heads * hd + 5;
    std::vector<float> cos(t * hd), sin(t * hd);
    for (auto& c : cos) c = unit(rng);
    for (auto& s : sin) s = unit(rng);
    auto got = randn(rng, t * stride, 1.0f);
    auto want = got;
    k.apply_rope(got.data(), t, heads, hd, cos.data(), sin.data(), stride);
    scalar_table().apply_rope(want.data(), t, heads, hd, cos.data(), sin.data(), stride);
    err = worst(err, rel_err(got, want));
  }
  return err;
}

// Gates beyond exp's clamp both ways (-100, 100) and 0.
double silu_err(const DecoderKernels& k, std::mt19937& rng) {
  const int64_t n = 1001;
  auto g = randn(rng, n, 4.0f);
  g[0] = -100.0f, g[1] = 100.0f, g[2] = 0.0f;
  auto got = randn(rng, n, 1.0f);
  auto want = got;
  k.silu_gate(got.data(), g.data(), n);
  scalar_table().silu_gate(want.data(), g.data(), n);
  return elem_err(got, want);
}

// Scores spread evenly over 120, so many matter and some fall below exp's clamp.
double softmax_err(const DecoderKernels& k, std::mt19937& rng) {
  std::uniform_real_distribution<float> spread(-100.0f, 20.0f);
  double err = 0;
  for (int64_t n : {1, 5, 333}) {
    std::vector<float> got(n);
    for (auto& s : got) s = spread(rng);
    auto want = got;
    k.softmax(got.data(), n);
    scalar_table().softmax(want.data(), n);
    err = worst(err, elem_err(got, want));
  }
  return err;
}

// The halves that differ from the scalar ones, over rounding corner cases, random bit patterns (every
// float class) and random values in the half range. A NaN need only stay a NaN: F16C and fcvtn keep
// payload bits that the reference drops.
int to_f16_mismatches(const DecoderKernels& k, std::mt19937& rng) {
  auto from_bits = [](uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
  };
  std::vector<float> x = {
      65504.0f, 65519.99f, 65520.0f, -65520.0f,  // the largest half, just below the tie to inf, the tie
      std::ldexp(1.0f, -14), std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25),  // the smallest normal, a tie to it
      std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), std::ldexp(3.0f, -25),   // subnormals: 1 unit, ties to 0, 2
      1e-40f, -1e-40f,                                                       // float subnormals
      1.0f + std::ldexp(1.0f, -11), 1.0f + std::ldexp(3.0f, -11),            // ties to even, down and up
      0.0f, -0.0f, INFINITY, -INFINITY,
      from_bits(0x7fc00000), from_bits(0xffc00000), from_bits(0x7f800001), from_bits(0x7fc12345)};  // NaNs
  std::uniform_int_distribution<uint32_t> bits;
  std::uniform_int_distribution<int> exponent(-27, 17);
  std::normal_distribution<float> normal;
  while (x.size() < 1003) {
    x.push_back(from_bits(bits(rng)));
    x.push_back(std::ldexp(normal(rng), exponent(rng)));
  }
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> got(n), want(n);
  k.to_f16(x.data(), n, got.data());
  scalar_table().to_f16(x.data(), n, want.data());
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool half_nan = (got[i] & 0x7c00) == 0x7c00 && (got[i] & 0x3ff) != 0;
    bad += std::isnan(x[i]) ? !half_nan : got[i] != want[i];
  }
  return bad;
}

// {scores f32, scores f16, values f32, values f16} over keys 1, 7, 130 and hd 16 to 144 (every SIMD
// path's column-chunk rest), each error over the largest sum of |terms| behind one output: a dot
// product may cancel to near zero, its rounding error does not. The fp32 cache holds the fp16 one's values, so both share that scale.
std::vector<double> attention_err(const DecoderKernels& k, std::mt19937& rng) {
  std::vector<double> err(4, 0.0);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int64_t keys : {1, 7, 130})
    for (int64_t hd : {16, 48, 80, 128, 144}) {
      const int64_t size = keys * hd;
      std::vector<uint16_t> c16(size);  // [keys][hd], used as both the key and the value cache
      scalar_table().to_f16(randn(rng, size, 1.0f).data(), size, c16.data());
      std::vector<float> c32(size);
      for (int64_t i = 0; i < size; ++i) c32[i] = fp16_to_fp32(c16[i]);
      const auto q = randn(rng, hd, 1.0f);
      std::vector<float> p(keys);
      for (auto& v : p) v = unit(rng);
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      double score_terms = 0, value_terms = 0;
      for (int64_t j = 0; j < keys; ++j) {
        double s = 0;
        for (int64_t d = 0; d < hd; ++d) s += std::fabs(q[d] * c32[j * hd + d]);
        score_terms = worst(score_terms, s * scale);
      }
      for (int64_t d = 0; d < hd; ++d) {
        double s = 0;
        for (int64_t j = 0; j < keys; ++j) s += p[j] * std::fabs(c32[j * hd + d]);
        value_terms = worst(value_terms, s);
      }
      auto compare = [&](int slot, int64_t n, double terms, auto run) {
        std::vector<float> got(n), want(n);
        run(k, got.data());
        run(scalar_table(), want.data());
        err[slot] = worst(err[slot], max_diff(got, want) / terms);
      };
      compare(0, keys, score_terms, [&](const DecoderKernels& t, float* out) {
        t.attention_scores(q.data(), c32.data(), keys, hd, scale, out);
      });
      compare(1, keys, score_terms, [&](const DecoderKernels& t, float* out) {
        t.attention_scores_f16(q.data(), c16.data(), keys, hd, scale, out);
      });
      compare(2, hd, value_terms, [&](const DecoderKernels& t, float* out) {
        t.attention_values(p.data(), c32.data(), keys, hd, out);
      });
      compare(3, hd, value_terms, [&](const DecoderKernels& t, float* out) {
        t.attention_values_f16(p.data(), c16.data(), keys, hd, out);
      });
    }
  return err;
}

// Every ISA path's DecoderKernels table against the scalar one. Returns failures.
int check_decoder_kernels(std::mt19937& rng) {
  constexpr double kTol = 2e-6;         // a few roundings apart; exp_ps is within ~2 ulp of std::exp
  constexpr double kRmsNormTol = 4e-6;  // the reference sums 4096 squares one by one: up to ~1.6e-6 of drift
  constexpr double kValuesTol = 1e-5;   // attention values: sums of up to 130 rows in another order
  int failures = 0;
  for (Isa isa : supported_isas()) {
    const DecoderKernels& k = kernels_for(isa);
    const double rms = rms_norm_err(k, rng), rope = rope_err(k, rng), silu = silu_err(k, rng);
    const double softmax = softmax_err(k, rng);
    const int f16_bad = to_f16_mismatches(k, rng);
    const auto att = attention_err(k, rng);
    const bool ok = rms < kRmsNormTol && rope < kTol && silu < kTol && softmax < kTol && f16_bad == 0 &&
                    att[0] < kTol && att[1] < kTol && att[2] < kValuesTol && att[3] < kValuesTol;
    failures += !ok;
    std::printf("%-11s decoder rms_norm %.1e  rope %.1e  silu %.1e  softmax %.1e  to_f16 %d bad  "
                "scores %.1e/%.1e  values %.1e/%.1e (f32/f16)  %s\n",
                isa_name(isa), rms, rope, silu, softmax, f16_bad, att[0], att[1], att[2], att[3], ok ? "ok" : "FAIL");
  }
  return failures;
}

// Each parallel_for visits every unit of [0, n) once, in chunks starting at multiples of kChunkAlign:
// jobs back to back (a worker late for one must not run a piece of the next), nested in a job, and from
// two threads at once. Returns failures.
int check_thread_pool() {
  int failures = 0;
  auto once = [](ThreadPool& pool, int64_t n) {
    std::vector<std::atomic<int>> seen(n);
    for (auto& s : seen) s.store(0);
    std::atomic<bool> aligned{true};
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      if (b % ThreadPool::kChunkAlign != 0) aligned.store(false);
      for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
    });
    bool ok = aligned.load();
    for (auto& s : seen) ok = ok && s.load() == 1;
    return ok;
  };
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    bool ok = true;
    for (int64_t n : {0, 1, 7, 8, 9, 100, 1000, 151936})
      for (int rep = 0; rep < (n > 10000 ? 5 : 300); ++rep) ok = ok && once(pool, n);
    std::atomic<int> nested_ok{0};
    pool.parallel_for(64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) nested_ok.fetch_add(once(pool, 20));
    });
    ok = ok && nested_ok.load() == 64;
    bool first = true, second = true;
    std::thread other([&] {
      for (int rep = 0; rep < 300; ++rep) first = first && once(pool, 100);
    });
    for (int rep = 0; rep < 300; ++rep) second = second && once(pool, 100);
    other.join();
    ok = ok && first && second;
    failures += !ok;
    std::printf("thread pool, %d threads: %s\n", threads, ok ? "ok" : "FAIL");
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  // --no-thread-pool: .ci/native's runs under qemu-aarch64, where two threads doing atomics livelock in
  // qemu-user's emulation, pool or no pool (benchmarks/NOTES_background_load.md). The host runs it.
  const bool pool_check = !(argc > 1 && std::strcmp(argv[1], "--no-thread-pool") == 0);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it comes, also through a pipe (CI logs, qemu)
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
    const Kernels& kern = kernels_for(isa);
    matmul_q4_exact(kern, x.data(), m, w, nullptr, y.data(), 0, n / kQ4Tile);
    double exact_err = 0, q8_err = 0;
    for (int64_t i = 0; i < m * n; ++i) exact_err = worst(exact_err, std::fabs(y[i] - want[i]) / scale);
    const Q8Acts acts{q.data(), d.data(), s.data()};
    quantize_q8(kern, x.data(), m, k, nullptr, acts);
    matmul_q4_q8(kern, acts, m, w, nullptr, y.data(), 0, n / kQ4Tile);
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
  failures += check_decoder_kernels(rng);
  if (pool_check) failures += check_thread_pool();
  std::printf("default ISA: %s\n", isa_name(default_isa()));
  return failures ? 1 : 0;
}
