#include "kernels/dequant_kquant.h"

#include <cstring>

#include "common/error.h"
#include "kernels/dequant.h"

namespace tessera {
namespace {

constexpr int kQkK = 256;  // values per super-block

float load_half(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return fp16_to_f32(v);
}

// Q4_K / Q5_K pack eight 6-bit (scale, min) pairs into 12 bytes: pairs 0-3 in the low six
// bits of bytes 0-3 (scales) and 4-7 (mins); pairs 4-7 split into a low nibble in bytes 8-11
// and their top two bits in the spare high bits of bytes 0-7.
void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Layout: d, dmin, scales[12], [qh[32] for Q5_K], qs[128]. Each 64 values share 32 bytes of
// qs: the first 32 in the low nibbles, the next 32 in the high ones; Q5_K's fifth bit for
// value l of chunk c is bit 2c (low half) or 2c + 1 (high half) of qh[l].
void q45_k_block(const uint8_t* b, bool five, float* y) {
  const float d = load_half(b);
  const float dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + (five ? 48 : 16);
  for (int c = 0; c < 4; ++c, ql += 32, y += 64) {
    int sc, m;
    scale_min_k4(2 * c, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(2 * c + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      const int hi1 = five && (qh[l] >> (2 * c) & 1) ? 16 : 0;
      const int hi2 = five && (qh[l] >> (2 * c + 1) & 1) ? 16 : 0;
      y[l] = d1 * static_cast<float>((ql[l] & 0xF) + hi1) - m1;
      y[l + 32] = d2 * static_cast<float>((ql[l] >> 4) + hi2) - m2;
    }
  }
}

// Layout: ql[128], qh[64], scales[16] (int8, one per 16 values), d. Each half of 128 values
// takes 64 bytes of ql and 32 of qh; 6-bit values are stored offset by 32.
void q6_k_block(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_half(b + 208);
  for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

}  // namespace

void dequantize_kquant(DType type, const uint8_t* src, float* dst, int64_t n) {
  const int bytes = dtype_block_bytes(type);
  for (int64_t b = 0; b < n / kQkK; ++b, src += bytes, dst += kQkK) {
    switch (type) {
      case DType::kQ4_K:
        q45_k_block(src, /*five=*/false, dst);
        break;
      case DType::kQ5_K:
        q45_k_block(src, /*five=*/true, dst);
        break;
      case DType::kQ6_K:
        q6_k_block(src, dst);
        break;
      default:
        throw Error(ErrorKind::kInternal, std::string("dequantize_kquant: ") + dtype_name(type));
    }
  }
}

}  // namespace tessera
