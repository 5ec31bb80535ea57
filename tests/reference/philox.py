"""Philox4x32-10, FNV-1a and the golden test weights in numpy, mirroring src/core/rng.h
and tests/unit/golden_weights.cpp bit for bit, so Python and C++ build the same model
from a formula instead of a stored weights file.

Run as a script to check Philox4x32-10 against the Random123 known-answer vectors.
"""
import math
import sys

import numpy as np

# Philox4x32 constants (Salmon et al., SC'11): round multipliers and Weyl key increments.
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)

# Values of the Purpose enum in src/core/rng.h that Python needs.
PURPOSE_TEST = 8
PURPOSE_BOUND = 9

GOLDEN_SEED = 20200619
# 1-D tensors (GroupNorm weights and all biases) are drawn around their usual init.
GOLDEN_1D_SPREAD = 0.125

# Random123 tests/kat_vectors (github.com/DEShawResearch/random123), the three
# "philox4x32 10" lines: counter (4 words), key (2 words), expected output (4 words).
# tests/unit/test_rng.cpp checks the C++ generator against the same lines.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def philox4x32_10(counters, key):
    """Philox4x32-10 of many counters under one key.

    counters: uint32-compatible array [..., 4]; key: two ints. Returns uint32 [..., 4].
    Products are formed in uint64, where (2^32 - 1)^2 cannot overflow.
    """
    c = np.asarray(counters, dtype=np.uint64)
    c0, c1, c2, c3 = (c[..., i] for i in range(4))
    k0, k1 = np.uint64(key[0] & 0xFFFFFFFF), np.uint64(key[1] & 0xFFFFFFFF)
    m0, m1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
    for _ in range(10):
        p0 = m0 * c0
        p1 = m1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + np.uint64(PHILOX_W0)) & MASK32
        k1 = (k1 + np.uint64(PHILOX_W1)) & MASK32
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def philox_key(seed):
    return (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)


def philox_counters(purpose, sub_id, step, index, blocks):
    """Counters {block, index, step, purpose << 24 | sub_id} for block = 0..blocks-1."""
    ctr = np.zeros((blocks, 4), dtype=np.uint64)
    ctr[:, 0] = np.arange(blocks, dtype=np.uint64)
    ctr[:, 1] = index
    ctr[:, 2] = step
    ctr[:, 3] = (purpose << 24) | (sub_id & 0xFFFFFF)
    return ctr


def normal_fill(n, seed, purpose, sub_id, step, index):
    """rng.cpp's normal_fill: n N(0, 1) float32 draws of stream (purpose, sub_id, step,
    index), two per Box-Muller pair of 32-bit words, computed in float64 as C++ does."""
    blocks = (n + 3) // 4
    r = philox4x32_10(philox_counters(purpose, sub_id, step, index, blocks), philox_key(seed)).astype(np.float64)
    bits = np.floor(r / 256.0)  # >> 8: 24 random bits
    u1 = (bits[:, 0::2] + 1.0) * (1.0 / 16777216.0)
    u2 = bits[:, 1::2] * (1.0 / 16777216.0)
    rad, th = np.sqrt(-2.0 * np.log(u1)), 6.283185307179586 * u2
    z = np.stack([rad * np.cos(th), rad * np.sin(th)], axis=-1)  # [blocks, 2 pairs, (z0, z1)]
    return z.reshape(-1)[:n].astype(np.float32)


def fnv1a32(text):
    h = 2166136261
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def fan_avg_uniform_limit(shape, scale):
    """As src/core/params.cpp: variance-scaling fan_avg, uniform, computed in double."""
    receptive = float(shape[2] * shape[3]) if len(shape) == 4 else 1.0
    fan_in = float(shape[1]) * receptive
    fan_out = float(shape[0]) * receptive
    return math.sqrt(3.0 * scale / ((fan_in + fan_out) / 2.0))


def golden_tensor(name, shape, seed=GOLDEN_SEED):
    """The golden value of every element of parameter `name` (float32, PyTorch shape)."""
    shape = tuple(int(d) for d in shape)
    numel = int(np.prod(shape, dtype=np.int64))
    blocks = (numel + 3) // 4
    bits = philox4x32_10(philox_counters(PURPOSE_TEST, 0, 0, fnv1a32(name), blocks), philox_key(seed))
    bits = bits.reshape(-1)[:numel]
    # 24 random bits: u and v = 2u - 1 are exact in float32.
    u = (bits >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    v = np.float32(2.0) * u - np.float32(1.0)
    if len(shape) >= 2:
        value = v * np.float32(fan_avg_uniform_limit(shape, 1.0))
    elif name.endswith(".weight"):
        value = np.float32(1.0) + v * np.float32(GOLDEN_1D_SPREAD)
    elif name.endswith(".bias"):
        value = v * np.float32(GOLDEN_1D_SPREAD)
    else:
        raise ValueError(f"no golden rule for the 1-D tensor {name}")
    return value.astype(np.float32).reshape(shape)


def check_known_answers():
    """Raises AssertionError naming the first Random123 vector that does not match."""
    for ctr, key, expected in KNOWN_ANSWERS:
        got = tuple(int(x) for x in philox4x32_10(np.array([ctr]), key)[0])
        if got != expected:
            raise AssertionError("philox4x32_10(%s, %s) = %s, expected %s" % (
                [hex(x) for x in ctr], [hex(x) for x in key], [hex(x) for x in got], [hex(x) for x in expected]))


if __name__ == "__main__":
    check_known_answers()
    print("philox4x32_10 matches the %d Random123 known-answer vectors" % len(KNOWN_ANSWERS))
    sys.exit(0)
