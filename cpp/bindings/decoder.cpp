// qwenvl_edge._core.Decoder: the native decoder. Every argument is converted here (arguments.h): ids from
// any integer array (range-checked before narrowing to int32), embeddings from any real array (converted
// to C-contiguous float32), so a wrong type is one line naming the argument. Every computing call
// releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "arguments.h"
#include "qwenvl_edge/cpu_features.h"
#include "qwenvl_edge/decoder.h"

namespace py = pybind11;
using namespace qwenvl_edge;
using namespace qwenvl_edge::bindings;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Any array-like as an array whose dtype kind is one of `kinds` ("iu": integers, "fiu": real numbers).
py::array numeric(py::handle value, const char* name, const char* kinds, const std::string& wanted) {
  py::array a = py::array::ensure(value);
  if (!a) throw py::type_error(std::string(name) + " must be " + wanted + ", not " + type_name(value));
  if (std::string(kinds).find(a.dtype().kind()) == std::string::npos)
    throw py::type_error(std::string(name) + " must be " + wanted + ", not an array of " +
                         std::string(py::str(a.dtype())));
  return a;
}

class PyDecoder {
 public:
  PyDecoder(py::handle path, py::handle config, py::handle threads, py::handle exact, py::handle isa,
            py::handle context, py::handle kv_f16) {
    const std::string file = bindings::path(path, "path");
    const DecoderConfig c = decoder_config(config);
    RunOptions o;
    o.threads = threads.is_none() ? std::min(cpu_features().physical_cores, max_threads())
                                  : static_cast<int>(whole(threads, "threads", 1, max_threads()));
    o.exact = flag(exact, "exact");
    if (!isa.is_none() && !py::isinstance<py::str>(isa))
      throw py::type_error("isa must be a str or None, not " + type_name(isa));
    o.isa = isa.is_none() ? default_isa() : parse_isa(isa.cast<std::string>());
    require_isa(o.isa);
    o.context = whole(context, "context", 0);
    o.kv_f16 = kv_f16.is_none() ? !o.exact : flag(kv_f16, "kv_f16");  // the exact path keeps float keys and values
    py::gil_scoped_release release;  // opening validates and maps the file
    d_ = std::make_unique<Decoder>(file, c, o);
  }

  Array<float> embed(py::handle ids) { return embedded(ids_from(ids)); }

  Array<float> forward(py::handle embeddings, py::handle all_logits) {
    const int64_t hidden = d_->config().hidden_size;
    const std::string wanted = "float32 [n >= 1, " + std::to_string(hidden) + "]";
    const py::array a = numeric(embeddings, "embeddings", "fiu", "an array of " + wanted);
    if (a.ndim() != 2 || a.shape(1) != hidden || a.shape(0) < 1)
      throw py::value_error("embeddings must be " + wanted + ", got shape " + shape_of(a));
    const FloatArray x = FloatArray::ensure(a);
    if (!x) throw py::error_already_set();
    return run(x.data(), x.shape(0), flag(all_logits, "all_logits"));
  }

  Array<float> prefill_ids(py::handle ids, py::handle all_logits) {
    const bool all = flag(all_logits, "all_logits");
    const Array<float> x = embedded(ids_from(ids));
    return run(x.data(), x.shape(0), all);
  }

  Array<float> step(py::handle token) {
    const int64_t vocab = d_->config().vocab_size;
    const std::vector<int32_t> id{static_cast<int32_t>(whole(token, "token id", 0, vocab - 1))};
    const Array<float> x = embedded(id);
    return run(x.data(), 1, false).attr("reshape")(vocab).cast<Array<float>>();
  }

  void truncate(py::handle length) {
    const int64_t n = whole(length, "length");
    if (n < 0 || n > d_->length())
      throw py::value_error("cannot truncate " + std::to_string(d_->length()) + " cached positions to " + std::to_string(n));
    d_->truncate(n);
  }

  Decoder& get() { return *d_; }

 private:
  Array<float> embedded(const std::vector<int32_t>& ids) {
    const int64_t n = static_cast<int64_t>(ids.size());
    Array<float> out({n, d_->config().hidden_size});
    float* op = out.mutable_data();
    py::gil_scoped_release release;
    d_->embed(ids.data(), n, op);
    return out;
  }

  // Logits of n positions x (float32 [n, hidden], checked by the caller, who keeps it alive).
  Array<float> run(const float* xp, int64_t n, bool all) {
    check_room(n);
    Array<float> logits({all ? n : int64_t(1), d_->config().vocab_size});
    float* lp = logits.mutable_data();
    py::gil_scoped_release release;
    d_->forward(xp, n, all, lp);
    return logits;
  }

  // ids as int32, each checked against the vocabulary before the narrowing.
  std::vector<int32_t> ids_from(py::handle value) const {
    const py::array a = numeric(value, "ids", "iu", "an integer array of token ids");
    if (a.ndim() != 1 || a.shape(0) < 1) throw py::value_error("ids must be int32 [n >= 1], got shape " + shape_of(a));
    const Int64Array wide = Int64Array::ensure(a);
    if (!wide) throw py::error_already_set();
    const int64_t vocab = d_->config().vocab_size;
    std::vector<int32_t> out(static_cast<size_t>(wide.shape(0)));
    for (py::ssize_t i = 0; i < wide.shape(0); ++i) {
      const int64_t id = wide.data()[i];
      if (id < 0 || id >= vocab)
        throw py::value_error("token id " + std::to_string(id) + " at index " + std::to_string(i) +
                              " is outside 0.." + std::to_string(vocab - 1));
      out[i] = static_cast<int32_t>(id);
    }
    return out;
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
  py::class_<PyDecoder>(m, "Decoder", "The native Qwen decoder over a bundle's decoder weight file.")
      .def(py::init<py::handle, py::handle, py::handle, py::handle, py::handle, py::handle, py::handle>(),
           py::arg("path"), py::arg("config"), py::arg("threads") = py::none(), py::arg("exact") = false,
           py::arg("isa") = py::none(), py::arg("context") = 0, py::arg("kv_f16") = py::none(),
           "config: the manifest's decoder.config (it must match the one the file records); threads: 1.."
           "qwenvl_edge.limits.MAX_THREADS (default: the physical cores); context: the KV cache's capacity "
           "(0: max_context); kv_f16: fp16 keys and values (default: on unless exact)")
      .def("embed", &PyDecoder::embed, py::arg("ids"), "Token embeddings float32 [n, hidden].")
      .def("forward", &PyDecoder::forward, py::arg("embeddings"), py::arg("all_logits") = false,
           "Run n positions on top of the KV cache: logits [1 or n, vocab].")
      .def("prefill_ids", &PyDecoder::prefill_ids, py::arg("ids"), py::arg("all_logits") = false)
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
