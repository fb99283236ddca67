"""The numpy side of src/models/synthetic_weights.h: deterministic pseudo-random weights that the
C++ code reproduces bit for bit, so goldens need not commit large weights.

  key = FNV-1a 64 of the name; z_i = splitmix64 finalizer of key + (i + 1) * 0x9E3779B97F4A7C15
  u_i = (z_i >> 40) / 2^24; value = float32((2 u_i + offset) * a), i the flat index in PyTorch's
  layout of the tensor.
"""
import numpy as np

M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def splitmix_stream(key, n):
    """z(key, i) for i in [0, n) as uint64 (numpy wraps modulo 2^64)."""
    with np.errstate(over="ignore"):
        x = np.uint64(key) + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def synthetic(name, shape, offset, a):
    """float32 array of `shape`: (2u + offset) * a per element."""
    n = int(np.prod(shape))
    u = (splitmix_stream(fnv1a64(name), n) >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return ((2.0 * u + offset) * a).astype(np.float32).reshape(shape)
