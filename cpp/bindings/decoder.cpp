// qwenvl_edge._core.Decoder: the native decoder. Every computing call releases the GIL; arrays must
// arrive as C-contiguous float32 / int32 of the right shape; ids are range-checked here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "qwenvl_edge/cpu_features.h"
#include "qwenvl_edge/decoder.h"

namespace py = pybind11;
using namespace qwenvl_edge;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

DecoderConfig config_from(const py::dict& d) {
  auto need = [&](const char* key) -> py::object {
    if (!d.contains(key)) throw py::value_error(std::string("decoder config: missing '") + key + "'");
    return d[key];
  };
  DecoderConfig c;
  c.vocab = need("vocab_size").cast<int64_t>();
  c.hidden = need("hidden_size").cast<int64_t>();
  c.layers = need("num_layers").cast<int64_t>();
  c.heads = need("num_heads").cast<int64_t>();
  c.head_dim = need("head_dim").cast<int64_t>();
  c.ffn = need("ffn_dim").cast<int64_t>();
  c.eps = need("rms_eps").cast<float>();
  c.rope_base = need("rope_base").cast<double>();
  c.seq_length = need("seq_length").cast<int64_t>();
  c.dynamic_ntk = need("dynamic_ntk").cast<bool>();
  c.logn = need("logn_attn").cast<bool>();
  c.max_context = need("max_context").cast<int64_t>();
  return c;
}

class PyDecoder {
 public:
  PyDecoder(const std::string& path, const py::dict& config, std::optional<int> threads, bool exact,
            std::optional<std::string> isa, int64_t context, std::optional<bool> kv_f16) {
    RunOptions o;
    o.threads = threads.value_or(cpu_features().physical_cores);
    if (o.threads < 1) throw py::value_error("threads must be >= 1");
    o.exact = exact;
    o.isa = isa ? parse_isa(*isa) : default_isa();
    require_isa(o.isa);
    o.context = context;
    o.kv_f16 = kv_f16.value_or(!exact);  // the exact path keeps float keys and values unless asked
    const DecoderConfig c = config_from(config);
    py::gil_scoped_release release;  // opening validates and maps the file
    d_ = std::make_unique<Decoder>(path, c, o);
  }

  Array<float> embed(const Array<int32_t>& ids) {
    check_ids(ids);
    const int64_t n = ids.shape(0);
    Array<float> out({n, d_->config().hidden});
    float* op = out.mutable_data();
    const int32_t* ip = ids.data();
    py::gil_scoped_release release;
    d_->embed(ip, n, op);
    return out;
  }

  Array<float> forward(const Array<float>& x, bool all_logits) {
    const auto& c = d_->config();
    if (x.ndim() != 2 || x.shape(1) != c.hidden || x.shape(0) < 1)
      throw py::value_error("embeddings must be float32 [n >= 1, " + std::to_string(c.hidden) + "]");
    const int64_t n = x.shape(0);
    check_room(n);
    Array<float> logits({all_logits ? n : int64_t(1), c.vocab});
    const float* xp = x.data();
    float* lp = logits.mutable_data();
    py::gil_scoped_release release;
    d_->forward(xp, n, all_logits, lp);
    return logits;
  }

  Array<float> prefill_ids(const Array<int32_t>& ids, bool all_logits) {
    return forward(embed(ids), all_logits);
  }

  Array<float> step(int64_t token) {
    Array<int32_t> ids(std::vector<py::ssize_t>{1});
    if (token < 0 || token >= d_->config().vocab)
      throw py::value_error("token id " + std::to_string(token) + " is outside 0.." + std::to_string(d_->config().vocab - 1));
    ids.mutable_data()[0] = static_cast<int32_t>(token);
    Array<float> logits = forward(embed(ids), false);
    return logits.attr("reshape")(d_->config().vocab).cast<Array<float>>();
  }

  void truncate(int64_t n) {
    if (n < 0 || n > d_->length())
      throw py::value_error("cannot truncate " + std::to_string(d_->length()) + " cached positions to " + std::to_string(n));
    d_->truncate(n);
  }

  Decoder& get() { return *d_; }

 private:
  void check_ids(const Array<int32_t>& ids) const {
    if (ids.ndim() != 1 || ids.shape(0) < 1) throw py::value_error("ids must be int32 [n >= 1]");
    const int64_t vocab = d_->config().vocab;
    for (py::ssize_t i = 0; i < ids.shape(0); ++i)
      if (ids.data()[i] < 0 || ids.data()[i] >= vocab)
        throw py::value_error("token id " + std::to_string(ids.data()[i]) + " at index " + std::to_string(i) +
                              " is outside 0.." + std::to_string(vocab - 1));
  }
  void check_room(int64_t n) const {
    if (d_->length() + n > d_->capacity())
      throw py::value_error("prompt too long: " + std::to_string(d_->length()) + " cached + " + std::to_string(n) +
                            " new positions exceed the context of " + std::to_string(d_->capacity()));
  }

  std::unique_ptr<Decoder> d_;
};

}  // namespace

void bind_decoder(py::module_& m) {
  py::register_exception<FormatError>(m, "FormatError", PyExc_ValueError);
  py::class_<PyDecoder>(m, "Decoder", "The native Qwen decoder over a bundle's decoder weight file.")
      .def(py::init<const std::string&, const py::dict&, std::optional<int>, bool, std::optional<std::string>, int64_t,
                    std::optional<bool>>(),
           py::arg("path"), py::arg("config"), py::arg("threads") = py::none(), py::arg("exact") = false,
           py::arg("isa") = py::none(), py::arg("context") = 0, py::arg("kv_f16") = py::none(),
           "kv_f16: fp16 keys and values (default: on unless exact)")
      .def("embed", &PyDecoder::embed, py::arg("ids").noconvert(), "Token embeddings float32 [n, hidden].")
      .def("forward", &PyDecoder::forward, py::arg("embeddings").noconvert(), py::arg("all_logits") = false,
           "Run n positions on top of the KV cache: logits [1 or n, vocab].")
      .def("prefill_ids", &PyDecoder::prefill_ids, py::arg("ids").noconvert(), py::arg("all_logits") = false)
      .def("step", &PyDecoder::step, py::arg("token"), "One token on top of the cache: logits [vocab].")
      .def("truncate", &PyDecoder::truncate, py::arg("length"), "Keep only the first `length` cached positions.")
      .def("reset", [](PyDecoder& d) { d.get().reset(); })
      .def_property_readonly("length", [](PyDecoder& d) { return d.get().length(); })
      .def_property_readonly("capacity", [](PyDecoder& d) { return d.get().capacity(); })
      .def_property_readonly("ntk_alpha", [](PyDecoder& d) { return d.get().ntk_alpha(); })
      .def_property_readonly("threads", [](PyDecoder& d) { return d.get().options().threads; })
      .def_property_readonly("exact", [](PyDecoder& d) { return d.get().options().exact; })
      .def_property_readonly("kv_f16", [](PyDecoder& d) { return d.get().options().kv_f16; })
      .def_property_readonly("int8_lm_head", [](PyDecoder& d) { return d.get().int8_lm_head(); })
      .def_property_readonly("isa", [](PyDecoder& d) { return std::string(isa_name(d.get().options().isa)); });
}
