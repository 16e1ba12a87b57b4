// Sizes computed from a config and a file: checked products, never a wrapped one (a wrapped size would
// allocate a small buffer that the decoder then writes past).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace qwenvl_edge {

// The product of non-negative factors; std::length_error naming `what` if it exceeds int64.
inline int64_t checked_product(std::initializer_list<int64_t> factors, const std::string& what) {
  int64_t product = 1;
  for (const int64_t f : factors)
    if (f < 0 || __builtin_mul_overflow(product, f, &product))
      throw std::length_error(what + " overflows a 64-bit size");
  return product;
}

}  // namespace qwenvl_edge
