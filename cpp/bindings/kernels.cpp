// qwenvl_edge._core.kernels: the kernel families exposed one call at a time, for tests and benchmarks.
// Arrays must arrive with the exact dtype and C-contiguous (no silent conversion copies); every
// shape is checked here, at the boundary, before any kernel reads memory.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qwenvl_edge/isa.h"
#include "qwenvl_edge/kernels.h"
#include "qwenvl_edge/thread_pool.h"

namespace py = pybind11;
using namespace qwenvl_edge;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

template <typename T>
void expect_shape(const Array<T>& a, const char* name, std::vector<py::ssize_t> shape) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want, got;
    for (auto s : shape) want += (want.empty() ? "" : ", ") + std::to_string(s);
    for (py::ssize_t i = 0; i < a.ndim(); ++i) got += (got.empty() ? "" : ", ") + std::to_string(a.shape(i));
    throw py::value_error(std::string(name) + " has shape (" + got + "), expected (" + want + ")");
  }
}

// The table of the named path, or of default_isa(): one choice per call, none inside the kernels.
const Kernels& kernels_of(const std::optional<std::string>& name) {
  return kernels_for(name ? parse_isa(*name) : default_isa());
}

Q4Matrix q4_view(const Array<uint8_t>& blocks, int64_t k, int64_t n, const std::optional<Array<int32_t>>& perm) {
  if (k <= 0 || n <= 0 || k % kQ4Group || n % kQ4Tile)
    throw py::value_error("k must be a positive multiple of 128 and n of 16, got k=" + std::to_string(k) +
                          ", n=" + std::to_string(n));
  expect_shape(blocks, "blocks", {n / kQ4Tile, k / kQ4Group, static_cast<py::ssize_t>(sizeof(Q4Block))});
  Q4Matrix w;
  w.blocks = reinterpret_cast<const Q4Block*>(blocks.data());
  w.k = k;
  w.n = n;
  if (perm) {
    expect_shape(*perm, "perm", {k});
    const int32_t* p = perm->data();
    std::vector<bool> seen(k, false);
    for (int64_t i = 0; i < k; ++i) {
      if (p[i] < 0 || p[i] >= k || seen[p[i]]) throw py::value_error("perm is not a permutation of 0..k-1");
      seen[p[i]] = true;
    }
    w.perm = p;
  }
  return w;
}

// One pool per thread count, kept for the process: benchmarks call the kernel thousands of times.
ThreadPool& kernel_pool(int threads) {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  std::lock_guard<std::mutex> lock(mutex);
  auto& pool = pools[threads];
  if (!pool) pool = std::make_unique<ThreadPool>(threads);
  return *pool;
}

Array<float> matmul_q4(const Array<float>& x, const Array<uint8_t>& blocks, int64_t k, int64_t n,
                       const std::optional<Array<int32_t>>& perm, const std::optional<Array<float>>& bias,
                       const std::string& mode, const std::optional<std::string>& isa_name, int threads) {
  const Kernels& kern = kernels_of(isa_name);
  const Q4Matrix w = q4_view(blocks, k, n, perm);
  if (x.ndim() != 2 || x.shape(1) != k) throw py::value_error("x must be [m, k] float32 with k=" + std::to_string(k));
  if (bias) expect_shape(*bias, "bias", {n});
  if (mode != "exact" && mode != "q8") throw py::value_error("mode must be 'exact' or 'q8', got '" + mode + "'");
  if (threads < 1 || threads > 256) throw py::value_error("threads must be in 1..256, got " + std::to_string(threads));
  const int64_t m = x.shape(0);
  Array<float> y({m, n});
  const float* xp = x.data();
  const float* bp = bias ? bias->data() : nullptr;
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    ThreadPool& pool = kernel_pool(threads);
    if (mode == "exact") {
      pool.parallel_for(n / kQ4Tile, [&](int64_t b, int64_t e) { matmul_q4_exact(kern, xp, m, w, bp, yp, b, e); });
    } else {
      std::vector<int8_t> q(m * k);
      std::vector<float> d(m * w.groups());
      std::vector<int32_t> sum(m * w.groups());
      const Q8Acts acts{q.data(), d.data(), sum.data()};
      quantize_q8(kern, xp, m, k, w.perm, acts);
      pool.parallel_for(n / kQ4Tile, [&](int64_t b, int64_t e) { matmul_q4_q8(kern, acts, m, w, bp, yp, b, e); });
    }
  }
  return y;
}

py::tuple quantize_q8_py(const Array<float>& x, const std::optional<Array<int32_t>>& perm,
                         const std::optional<std::string>& isa_name) {
  const Kernels& kern = kernels_of(isa_name);
  if (x.ndim() != 2 || x.shape(1) % kQ4Group || x.shape(1) == 0)
    throw py::value_error("x must be [m, k] float32 with k a positive multiple of 128");
  const int64_t m = x.shape(0), k = x.shape(1);
  if (perm) expect_shape(*perm, "perm", {k});
  Array<int8_t> q({m, k});
  Array<float> d({m, k / kQ4Group});
  Array<int32_t> sum({m, k / kQ4Group});
  const Q8Acts acts{q.mutable_data(), d.mutable_data(), sum.mutable_data()};
  const float* xp = x.data();
  const int32_t* pp = perm ? perm->data() : nullptr;
  {
    py::gil_scoped_release release;
    quantize_q8(kern, xp, m, k, pp, acts);
  }
  return py::make_tuple(q, d, sum);
}

Array<float> lm_head_py(const Array<float>& x, const py::array& w, const std::optional<Array<float>>& scale,
                        const std::optional<std::string>& isa_name, const std::string& activations) {
  const Kernels& kern = kernels_of(isa_name);
  if (x.ndim() != 2 || w.ndim() != 2 || x.shape(1) != w.shape(1) || x.shape(1) % 16)
    throw py::value_error("x [m, dim] and w [rows, dim] must share dim, a multiple of 16");
  const int64_t m = x.shape(0), dim = x.shape(1), rows = w.shape(0);
  const bool f16 = w.dtype().is(py::dtype("float16"));
  if (!(w.flags() & py::array::c_style) || !(f16 || w.dtype().is(py::dtype::of<int8_t>())))
    throw py::type_error("w must be a C-contiguous float16 or int8 array");
  if (f16 == scale.has_value()) throw py::value_error("int8 weights need a scale [rows]; float16 weights take none");
  if (scale) expect_shape(*scale, "scale", {rows});
  if (activations != "f32" && activations != "q8") throw py::value_error("activations must be 'f32' or 'q8'");
  if (activations == "q8" && (f16 || dim % kQ4Group))
    throw py::value_error("q8 activations need int8 weights and dim a multiple of 128");
  Array<float> y({m, rows});
  const float* xp = x.data();
  const void* wp = w.data();
  const float* sp = scale ? scale->data() : nullptr;
  float* yp = y.mutable_data();
  py::gil_scoped_release release;
  if (f16)
    kern.lm_head_f16(xp, m, static_cast<const uint16_t*>(wp), dim, rows, 0, rows, yp);
  else if (activations == "q8")
    lm_head_i8_q8(kern, xp, m, static_cast<const int8_t*>(wp), sp, dim, rows, 0, rows, yp);
  else
    kern.lm_head_i8(xp, m, static_cast<const int8_t*>(wp), sp, dim, rows, 0, rows, yp);
  return y;
}

Array<float> rms_norm_py(const Array<float>& x, const Array<float>& w, float eps, const std::optional<std::string>& isa) {
  const Kernels& kern = kernels_of(isa);
  if (x.ndim() != 2) throw py::value_error("x must be float32 [rows, dim]");
  expect_shape(w, "w", {x.shape(1)});
  Array<float> out({x.shape(0), x.shape(1)});
  kern.rms_norm(x.data(), w.data(), x.shape(0), x.shape(1), eps, out.mutable_data());
  return out;
}

py::tuple rope_tables_py(int64_t start, int64_t t, int64_t head_dim, double base, double alpha) {
  if (t < 1 || head_dim < 2 || head_dim % 2 || start < 0) throw py::value_error("need t >= 1, an even head_dim, start >= 0");
  Array<float> cos({t, head_dim}), sin({t, head_dim});
  rope_tables(start, t, head_dim, base, alpha, cos.mutable_data(), sin.mutable_data());
  return py::make_tuple(cos, sin);
}

Array<float> apply_rope_py(const Array<float>& x, const Array<float>& cos, const Array<float>& sin,
                           const std::optional<std::string>& isa) {
  const Kernels& kern = kernels_of(isa);
  if (x.ndim() != 3 || x.shape(2) % 2) throw py::value_error("x must be float32 [t, heads, head_dim], head_dim even");
  const int64_t t = x.shape(0), heads = x.shape(1), hd = x.shape(2);
  expect_shape(cos, "cos", {t, hd});
  expect_shape(sin, "sin", {t, hd});
  Array<float> out({t, heads, hd});
  std::copy(x.data(), x.data() + t * heads * hd, out.mutable_data());
  kern.apply_rope(out.mutable_data(), t, heads, hd, cos.data(), sin.data(), heads * hd);
  return out;
}

// Attention of q [t, heads, hd] over caches [heads, capacity, hd] (both float32 or both float16)
// whose first past + t rows are filled.
Array<float> attention_py(const Array<float>& q, const py::array& k, const py::array& v, int64_t past, float scale,
                          const std::optional<std::string>& isa) {
  const Kernels& kern = kernels_of(isa);
  const bool f16 = k.dtype().is(py::dtype("float16"));
  for (const py::array* a : {&k, &v})
    if (!(a->dtype().is(py::dtype("float16")) || a->dtype().is(py::dtype::of<float>())) ||
        a->dtype().is(py::dtype("float16")) != f16 || !(a->flags() & py::array::c_style))
      throw py::type_error("k and v must be C-contiguous arrays, both float32 or both float16");
  if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3)
    throw py::value_error("q must be [t, heads, hd] and the caches [heads, capacity, hd]");
  const int64_t t = q.shape(0), heads = q.shape(1), hd = q.shape(2), capacity = k.shape(1);
  if (hd % 16) throw py::value_error("head_dim must be a multiple of 16");
  for (const py::array* a : {&k, &v})
    if (a->shape(0) != heads || a->shape(1) != capacity || a->shape(2) != hd)
      throw py::value_error("k and v must both be [heads, capacity, head_dim] = [" + std::to_string(heads) + ", " +
                            std::to_string(capacity) + ", " + std::to_string(hd) + "]");
  if (past < 0 || past + t > capacity) throw py::value_error("past + t exceeds the cache capacity");
  Array<float> out({t, heads, hd});
  std::vector<float> scratch(past + t);
  attention(kern, q.data(), heads * hd, KvView{k.data(), v.data(), f16, capacity}, past, t, heads, hd, scale, 0, heads,
            out.mutable_data(), scratch.data());
  return out;
}

}  // namespace

void bind_kernels(py::module_& m) {
  auto k = m.def_submodule("kernels", "Single kernel calls, for tests and benchmarks");
  k.attr("Q4_BLOCK_BYTES") = sizeof(Q4Block);
  k.def("supported_isas", [] {
    std::vector<std::string> names;
    for (Isa isa : supported_isas()) names.push_back(isa_name(isa));
    return names;
  }, "The kernel ISA paths this machine can run, reference first, best last.");
  k.def("default_isa", [] { return std::string(isa_name(default_isa())); },
        "The path used by default: $QWENVL_ISA if set, else the best supported.");
  k.def("matmul_q4", &matmul_q4, py::arg("x").noconvert(), py::arg("blocks").noconvert(), py::arg("k"),
        py::arg("n"), py::arg("perm").noconvert() = py::none(), py::arg("bias").noconvert() = py::none(),
        py::arg("mode") = "exact", py::arg("isa") = py::none(), py::arg("threads") = 1,
        "y[m, n] = x[m, k] @ W + bias for W in the Q4Block layout; mode 'exact' (fp32 activations) or "
        "'q8' (per-128-group int8 activations); the output tiles split over `threads` threads.");
  k.def("lm_head", &lm_head_py, py::arg("x").noconvert(), py::arg("w"), py::arg("scale").noconvert() = py::none(),
        py::arg("isa") = py::none(), py::arg("activations") = "f32",
        "y[m, rows] = x @ w.T (* scale per row for int8 w); activations 'q8' quantizes x per 128-group (int8 w).");
  k.def("rms_norm", &rms_norm_py, py::arg("x").noconvert(), py::arg("w").noconvert(), py::arg("eps") = 1e-6f,
        py::arg("isa") = py::none());
  k.def("rope_tables", &rope_tables_py, py::arg("start"), py::arg("t"), py::arg("head_dim"), py::arg("base") = 10000.0,
        py::arg("alpha") = 1.0);
  k.def("apply_rope", &apply_rope_py, py::arg("x").noconvert(), py::arg("cos").noconvert(), py::arg("sin").noconvert(),
        py::arg("isa") = py::none());
  k.def("logn_scale", &logn_scale, py::arg("position"), py::arg("seq_length"));
  k.def("attention", &attention_py, py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
        py::arg("past"), py::arg("scale"), py::arg("isa") = py::none());
  k.def("silu_gate", [](const Array<float>& a, const Array<float>& g, const std::optional<std::string>& isa) {
    const Kernels& kern = kernels_of(isa);
    if (a.ndim() != 1) throw py::value_error("a must be float32 [n]");
    expect_shape(g, "g", {a.shape(0)});
    Array<float> out(a.shape(0));
    std::copy(a.data(), a.data() + a.shape(0), out.mutable_data());
    kern.silu_gate(out.mutable_data(), g.data(), a.shape(0));
    return out;
  }, py::arg("a").noconvert(), py::arg("g").noconvert(), py::arg("isa") = py::none(), "a * silu(g)");
  k.def("softmax", [](const Array<float>& s, const std::optional<std::string>& isa) {
    const Kernels& kern = kernels_of(isa);
    if (s.ndim() != 1 || s.shape(0) < 1) throw py::value_error("s must be float32 [n], n >= 1");
    Array<float> out(s.shape(0));
    std::copy(s.data(), s.data() + s.shape(0), out.mutable_data());
    kern.softmax(out.mutable_data(), s.shape(0));
    return out;
  }, py::arg("s").noconvert(), py::arg("isa") = py::none(), "exp(s - max) / sum");
  k.def("to_f16", [](const Array<float>& x, const std::optional<std::string>& isa) {
    const Kernels& kern = kernels_of(isa);
    if (x.ndim() != 1) throw py::value_error("x must be float32 [n]");
    py::array out(py::dtype("float16"), std::vector<py::ssize_t>{x.shape(0)});
    kern.to_f16(x.data(), x.shape(0), static_cast<uint16_t*>(out.mutable_data()));
    return out;
  }, py::arg("x").noconvert(), py::arg("isa") = py::none(), "float32 -> float16, round to nearest even");
  k.def("embed_f16", [](const py::array& table, const Array<int32_t>& ids) {
    if (table.ndim() != 2 || !table.dtype().is(py::dtype("float16")) || !(table.flags() & py::array::c_style))
      throw py::type_error("table must be a C-contiguous float16 [rows, dim] array");
    if (ids.ndim() != 1) throw py::value_error("ids must be int32 [n]");
    for (py::ssize_t i = 0; i < ids.shape(0); ++i)
      if (ids.data()[i] < 0 || ids.data()[i] >= table.shape(0)) throw py::value_error("id out of range");
    Array<float> out({ids.shape(0), table.shape(1)});
    embed_f16(static_cast<const uint16_t*>(table.data()), table.shape(1), ids.data(), ids.shape(0), out.mutable_data());
    return out;
  }, py::arg("table"), py::arg("ids").noconvert());
  k.def("quantize_q8", &quantize_q8_py, py::arg("x").noconvert(), py::arg("perm").noconvert() = py::none(),
        py::arg("isa") = py::none(),
        "x[m, k] -> (int8 [m, k] in even/odd octet order, scales [m, k/128], sums [m, k/128]).");
}
