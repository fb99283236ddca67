"""NumPy side of tests/io/test_npz.cpp.

  npz_numpy.py write DIR        writes DIR/np_stored.npz (np.savez) and DIR/np_deflated.npz
                                (np.savez_compressed) with the arrays of expected_arrays()
  npz_numpy.py check FILE       np.load's FILE (written by rae::npz::Writer) and checks that it
                                holds expected_arrays(), and that zipfile's CRC check passes
"""
import sys
import zipfile

import numpy as np


def expected_arrays():
    rng = np.arange(5 * 7 * 3, dtype=np.int64)
    return {
        "arr_0": (rng % 251).astype(np.uint8).reshape(5, 7, 3),
        "mu": np.arange(11, dtype=np.float64) * 0.25 - 1.0,
        "sigma": (np.arange(12, dtype=np.float32) / 7.0).reshape(3, 4),
        "labels": np.array([3, -1, 7], dtype=np.int32),
        "count": np.array(42, dtype=np.int64),
    }


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "write":
        np.savez(f"{path}/np_stored.npz", **expected_arrays())
        np.savez_compressed(f"{path}/np_deflated.npz", **expected_arrays())
        return 0
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        assert bad is None, f"CRC mismatch in {bad}"
    got = np.load(path)
    want = expected_arrays()
    assert sorted(got.files) == sorted(want), (got.files, list(want))
    for k, v in want.items():
        assert got[k].dtype == v.dtype, (k, got[k].dtype, v.dtype)
        assert got[k].shape == v.shape, (k, got[k].shape, v.shape)
        assert np.array_equal(got[k], v), k
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
