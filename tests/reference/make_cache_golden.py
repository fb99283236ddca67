#!/usr/bin/env python3
"""Writes tests/goldens/cache/: a tiny latent cache made with h5py + numpy only, following
docs/formats.md, that the C++ tests read (tests/data/test_cache_golden.cpp).

1 shard, 8 samples, 2x2 grid, 4 channels, bf16, with latents_flip. Values are exact in bf16:
  latents[n, t, c] = (n - 4) * 0.5 + t * 0.25 + c * 0.125       (t = h * 2 + w)
  latents_flip[n, h, w, c] = latents[n, h, 1 - w, c]
  labels = [3, 1, 4, 1, 5, 9, 2, 6], index = arange(8), 10 classes.
`latents` uses HDF5's contiguous layout and `latents_flip` a chunked layout (3 rows per chunk, the
last chunk partial) so both of the C++ reader's direct-read paths are exercised.

usage: make_cache_golden.py [OUT_DIR]   (default: tests/goldens/cache next to this script)
"""
import json
import os
import sys

import h5py
import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_format_py import bf16_bits_to_f32, f32_to_bf16_bits, file_checksum  # noqa: E402

N, H, W, C, K = 8, 2, 2, 4, 10


def values():
    n = np.arange(N)[:, None, None]
    t = np.arange(H * W)[None, :, None]
    c = np.arange(C)[None, None, :]
    lat = ((n - 4) * 0.5 + t * 0.25 + c * 0.125).astype(np.float32)
    flip = lat.reshape(N, H, W, C)[:, :, ::-1, :].reshape(N, H * W, C).copy()
    return lat, flip


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "goldens", "cache")
    os.makedirs(out, exist_ok=True)
    lat, flip = values()
    lat_bits, flip_bits = f32_to_bf16_bits(lat), f32_to_bf16_bits(flip)
    assert np.array_equal(bf16_bits_to_f32(lat_bits), lat), "golden values must be exact in bf16"
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.int32)
    shard = "shard-00000.h5"
    path = os.path.join(out, shard)
    # track_order=False and fixed attribute order keep the file bytes reproducible.
    with h5py.File(path, "w", libver="earliest") as h:
        h.attrs["format"] = "rae-latent-cache"
        h.attrs["format_version"] = np.int64(1)
        h.attrs["grid_h"] = np.int64(H)
        h.attrs["grid_w"] = np.int64(W)
        h.attrs["channels"] = np.int64(C)
        h.attrs["dtype"] = "bf16"
        h.attrs["first_index"] = np.int64(0)
        d = h.create_dataset("latents", data=lat_bits)  # contiguous
        d.attrs["dtype"] = "bf16"
        d = h.create_dataset("latents_flip", data=flip_bits, chunks=(3, H * W, C), maxshape=(None, H * W, C))
        d.attrs["dtype"] = "bf16"
        h.create_dataset("labels", data=labels)
        h.create_dataset("index", data=np.arange(N, dtype=np.int64))
    x = lat.reshape(N, -1).astype(np.float64)
    save_file({"mean": x.mean(0).astype(np.float32).reshape(H * W, C),
               "var": x.var(0).astype(np.float32).reshape(H * W, C),
               "count": np.array([N], dtype=np.int64)},
              os.path.join(out, "stats.safetensors"), metadata={"count": str(N), "variance": "population"})
    manifest = {
        "format": "rae-latent-cache",
        "format_version": 1,
        "encoder": {"id": "golden-h5py", "weights_hash": "none"},
        "image_size": 256,
        "split": "val",
        "grid": {"h": H, "w": W},
        "channels": C,
        "dtype": "bf16",
        "has_flip": True,
        "num_classes": K,
        "class_names": [f"class{k}" for k in range(K)],
        "total_samples": N,
        "checksum_algorithm": "xxh64",
        "stats_file": "stats.safetensors",
        "shards": [{"file": shard, "samples": N, "first_index": 0, "bytes": os.path.getsize(path),
                    "checksum": file_checksum(path)}],
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("wrote", out, manifest["shards"][0])


if __name__ == "__main__":
    main()
