// Python arguments of qwenvl_edge._core, converted by hand: a wrong type is a one-line TypeError and a
// value out of range a one-line ValueError, each naming the argument (pybind11's own casts would answer
// with a multi-line list of the accepted signatures).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <string>

#include "qwenvl_edge/decoder.h"

namespace qwenvl_edge::bindings {

std::string type_name(pybind11::handle value);
// A Python or numpy integer (not a bool) in lo..hi.
int64_t whole(pybind11::handle value, const std::string& name, int64_t lo = std::numeric_limits<int64_t>::min(),
              int64_t hi = std::numeric_limits<int64_t>::max());
// True or False (Python's or numpy's).
bool flag(pybind11::handle value, const std::string& name);
// A str, bytes or os.PathLike, as the bytes the OS gets.
std::string path(pybind11::handle value, const std::string& name);
// A dict with exactly the keys of decoder_config_keys(), each of its kind (the values' ranges are
// check_config's).
DecoderConfig decoder_config(pybind11::handle value);
// qwenvl_edge.limits.MAX_THREADS, read when the module is imported.
int max_threads();
void load_limits();

}  // namespace qwenvl_edge::bindings
