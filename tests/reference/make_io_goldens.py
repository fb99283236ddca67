#!/usr/bin/env python3
"""Writes tests/goldens/io/python_safetensors.safetensors with the Python safetensors package.

Every supported dtype holds a known pattern (value i at flat index i, scaled per dtype) so the C++
test can check the contents without a second file. Run through tests/reference/regen_goldens.sh.
"""
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    out_dir = os.path.join(ROOT, "tests", "goldens", "io")
    os.makedirs(out_dir, exist_ok=True)
    tensors = {
        # value(i) = i * 0.5 - 3: exactly representable in every float dtype used here.
        "f32": (torch.arange(24, dtype=torch.float64) * 0.5 - 3).reshape(2, 3, 4).float(),
        "f64": (torch.arange(6, dtype=torch.float64) * 0.5 - 3).reshape(6),
        "bf16": (torch.arange(10, dtype=torch.float64) * 0.5 - 3).reshape(2, 5).bfloat16(),
        "f16": (torch.arange(7, dtype=torch.float64) * 0.5 - 3).reshape(7, 1).half(),
        # value(i) = i * 1000 - 5000 (I64 also one value beyond 32 bits).
        "i32": (torch.arange(5, dtype=torch.int64) * 1000 - 5000).int(),
        "i64": torch.tensor([-5000, -4000, 1 << 40], dtype=torch.int64),
        "u8": torch.arange(11, dtype=torch.uint8) * 23,  # odd length: later tensors are re-aligned
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }
    meta = {"format": "pt", "producer": "make_io_goldens.py", "note": "unicode \u00e9"}
    path = os.path.join(out_dir, "python_safetensors.safetensors")
    if os.path.exists(path):  # metadata key order is arbitrary: rewrite only on a real change
        with safe_open(path, "pt") as f:
            if f.metadata() == meta and set(f.keys()) == set(tensors) and all(
                    torch.equal(f.get_tensor(k), v) and f.get_tensor(k).dtype == v.dtype
                    for k, v in tensors.items()):
                print(f"{path} unchanged", file=sys.stderr)
                return
    save_file(tensors, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
