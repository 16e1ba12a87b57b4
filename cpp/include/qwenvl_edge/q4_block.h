// The decoder's 4-bit weight layout: GPTQ group-128 weights regrouped into tiles of 16 outputs.
//
// A weight W [K inputs, N outputs] (K a multiple of 128, N of 16) is stored as Q4Block[N/16][K/128]:
// tile-major, so one thread's output stripe is one sequential stream (kernels.md section 5).
// Inside a block the nibbles are GPTQ's own: q[r][c] is GPTQ's qweight word for inputs 8r..8r+7 of
// column c, input 8r+j in bits 4j..4j+3. So byte b of a word holds inputs 2b (low nibble) and 2b+1
// (high nibble). The exporter writes this layout; loading is mmap.
//
//   w[k, n] = scale[g, n] * (q[k, n] - zero[g, n]),   g = k / 128
//
// Act-order checkpoints are stored with their inputs sorted by group; the kernels then gather the
// activations through a permutation (perm[i] = original input of sorted row i).
#pragma once

#include <cstdint>
#include <cstring>

namespace qwenvl_edge {

inline constexpr int kQ4Group = 128;  // inputs per block (the GPTQ group size we run)
inline constexpr int kQ4Tile = 16;    // outputs per block
inline constexpr int kQ4Octets = kQ4Group / 8;

struct Q4Block {
  uint32_t q[kQ4Octets][kQ4Tile];  // 1024 B: [octet r][column c], GPTQ nibble order
  uint16_t scale[kQ4Tile];         // float16 bits, one per column
  uint8_t zero[kQ4Tile];           // the zero point itself, 0..15 (not GPTQ v1's zero - 1)
};
static_assert(sizeof(Q4Block) == 1072, "Q4Block is part of the bundle format");

// A read-only view of one weight matrix in the Q4Block layout.
struct Q4Matrix {
  const Q4Block* blocks = nullptr;  // [n / 16][k / 128]
  int64_t k = 0;
  int64_t n = 0;
  const int32_t* perm = nullptr;  // [k] or null when the inputs are in their natural order

  int64_t groups() const { return k / kQ4Group; }
  const Q4Block& block(int64_t tile, int64_t group) const { return blocks[tile * groups() + group]; }
};

// IEEE half -> float, exact, without relying on compiler or ISA support.
inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // normal: rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {  // subnormal half: normalise into a float
    exp = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace qwenvl_edge
