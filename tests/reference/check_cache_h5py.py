#!/usr/bin/env python3
"""Checks a latent cache written by `rae` using only h5py + numpy, exactly as docs/formats.md
documents the format (the reverse direction of tests/reference/make_cache_golden.py).

usage: check_cache_h5py.py CACHE_DIR [--synthetic SEED NOISE_STD]

Verifies: manifest keys and tiling, every shard's size and xxh64 checksum, the per-row and labels
checksums when present, dataset names, shapes, dtypes and the dtype attribute, index == first_index + arange, labels in range, and the stats
file (mean/var over all samples recomputed in float64 from the stored values). Prints a summary
and the first latents converted to float32; exits non-zero on the first failure.
"""
import json
import os
import sys

import h5py
import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_format_py import file_checksum, latents_as_f32, xxh64  # noqa: E402


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)


def main():
    root = sys.argv[1]
    with open(os.path.join(root, "manifest.json")) as f:
        m = json.load(f)
    check(m["format"] == "rae-latent-cache" and m["format_version"] == 1, "format/version")
    check(m["checksum_algorithm"] == "xxh64", "checksum algorithm")
    H, W, C = m["grid"]["h"], m["grid"]["w"], m["channels"]
    T = H * W
    dtype = m["dtype"]
    check(dtype in ("bf16", "f16", "f32"), "dtype")
    expect_np = {"bf16": np.uint16, "f16": np.float16, "f32": np.float32}[dtype]
    total = 0
    all_lat = []
    for k, s in enumerate(m["shards"]):
        path = os.path.join(root, s["file"])
        check(os.path.getsize(path) == s["bytes"], f"{path}: size")
        check(file_checksum(path) == s["checksum"], f"{path}: xxh64 {file_checksum(path)} != {s['checksum']}")
        check(s["first_index"] == total, f"{path}: first_index")
        n = s["samples"]
        with h5py.File(path, "r") as h:
            check(h.attrs["format"] in (b"rae-latent-cache", "rae-latent-cache"), "root format attr")
            views = ["latents", "latents_flip"] if m["has_flip"] else ["latents"]
            check(("latents_flip" in h) == m["has_flip"], f"{path}: latents_flip presence")
            for v in views:
                d = h[v]
                check(d.shape == (n, T, C), f"{path}:{v} shape {d.shape}")
                check(d.dtype == expect_np, f"{path}:{v} dtype {d.dtype} (expected {expect_np})")
                attr = d.attrs["dtype"]
                attr = attr.decode() if isinstance(attr, bytes) else attr
                check(attr == dtype, f"{path}:{v} dtype attribute {attr}")
                check(d.chunks is None or d.chunks[1:] == (T, C), f"{path}:{v} chunks {d.chunks}")
            # Per-row checksums (written by rae's ShardWriter; optional in the format).
            if "latents_xxh64" in h:
                for v in views:
                    sums = h[v + "_xxh64"][...]
                    raw = h[v][...]
                    check(sums.shape == (n,), f"{path}:{v}_xxh64 shape")
                    for r in range(n):
                        got = xxh64(raw[r].astype(raw.dtype.newbyteorder("<")).tobytes())
                        check(got == int(sums[r]), f"{path}:{v} row {r} xxh64 {got:016x} != {int(sums[r]):016x}")
            labels = h["labels"][...]
            if "xxh64" in h["labels"].attrs:
                want = h["labels"].attrs["xxh64"]
                want = want.decode() if isinstance(want, bytes) else want
                check("%016x" % xxh64(labels.astype("<i4").tobytes()) == want, f"{path}: labels xxh64")
            index = h["index"][...]
            check(labels.dtype == np.int32 and labels.shape == (n,), f"{path}: labels")
            check(index.dtype == np.int64 and np.array_equal(index, np.arange(total, total + n)), f"{path}: index")
            check(labels.min() >= 0 and labels.max() < max(1, m["num_classes"]), f"{path}: label range")
            lat = latents_as_f32(h["latents"])
            check(np.all(np.isfinite(lat)), f"{path}: non-finite latents")
            all_lat.append(lat.reshape(n, T * C).astype(np.float64))
            if k == 0:
                print(f"{s['file']}: first latents (float32):", lat[0, 0, : min(C, 6)], "label", labels[0])
        total += n
    check(total == m["total_samples"], "total_samples")
    if m["stats_file"]:
        st = load_file(os.path.join(root, m["stats_file"]))
        x = np.concatenate(all_lat)
        check(st["mean"].shape == (T, C) and st["mean"].dtype == np.float32, "stats mean shape/dtype")
        check(st["var"].shape == (T, C) and st["var"].dtype == np.float32, "stats var shape/dtype")
        check(int(st["count"][0]) == total, "stats count")
        # f32 storage of f64 statistics: relative 1e-6 plus a small absolute floor.
        check(np.allclose(st["mean"].reshape(-1), x.mean(0), rtol=1e-5, atol=1e-6), "stats mean")
        check(np.allclose(st["var"].reshape(-1), x.var(0), rtol=1e-5, atol=1e-6), "stats var")
    print(f"OK: {root}: {len(m['shards'])} shards, {total} samples, grid {H}x{W}, {C} channels, {dtype},"
          f" flip={m['has_flip']}")


if __name__ == "__main__":
    main()
