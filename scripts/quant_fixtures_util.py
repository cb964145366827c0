"""Encoders and decoders for the quantized fixtures (scripts/make_quant_fixtures.py), written
from the formats' published descriptions with numpy only (numpy has no fp8 or bf16)."""
import json

import numpy as np


def write_safetensors(path, tensors):
    """tensors: name -> (safetensors dtype, array). The array's bytes are written as they
    are (e.g. uint8 for F8_E4M3, uint16 for BF16); the shape is the array's shape."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, arr = tensors[name]
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)


def bf16_encode(x):
    """f32 -> bf16 bits (uint16), round to nearest even."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_decode(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def e4m3_decode(b):
    """OCP FP8 E4M3 ("e4m3fn"): 1 sign, 4 exponent bits (bias 7), 3 mantissa bits; no
    infinities, S.1111.111 is NaN; exponent 0 is subnormal (m / 8 * 2^-6)."""
    b = np.asarray(b, dtype=np.uint8).astype(np.int64)
    sign = np.where(b & 0x80, -1.0, 1.0)
    e, m = (b >> 3) & 0xF, b & 0x7
    mag = np.where(e == 0, m / 8.0 * 2.0**-6, (1 + m / 8.0) * 2.0 ** (e - 7))
    mag = np.where((e == 15) & (m == 7), np.nan, mag)
    return (sign * mag).astype(np.float32)


_E4M3_POS = e4m3_decode(np.arange(0, 127, dtype=np.uint8))  # 0 .. 448, ascending


def e4m3_encode(x):
    """Nearest E4M3 byte to each value (clamped to +-448); ties go to the lower code."""
    x = np.asarray(x, dtype=np.float32)
    a = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(_E4M3_POS, a), 1, 126)
    lo = hi - 1
    code = np.where(a - _E4M3_POS[lo] <= _E4M3_POS[hi] - a, lo, hi).astype(np.uint8)
    return np.where(x < 0, code | 0x80, code).astype(np.uint8)
