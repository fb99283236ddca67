#!/usr/bin/env python3
"""Writes tests/goldens/diffusion/latent_norm.safetensors: the RAE release's latent
normalisation (src/stage1/rae.py, RAE.encode / RAE.decode with eps = 1e-5), computed by PyTorch
in float32 on latents in the release's (B, C, H, W) layout with (C, H, W) statistics:

    encode:  z' = (z - mean) / torch.sqrt(var + eps)
    decode:  z  = z' * torch.sqrt(var + eps) + mean

The file stores everything in rae's token layout, (B, H*W, C) latents and (H*W, C) statistics,
so tests/diffusion/test_latent_norm.cpp compares diffusion::normalize_latents /
denormalize_latents with it bit for bit. Variances span 0 (eps alone), tiny and large values.
Run through tests/reference/regen_goldens.sh.
"""
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPS = 1e-5


def to_tokens(x):  # (..., C, H, W) -> (..., H*W, C)
    return x.flatten(-2).transpose(-1, -2).contiguous()


def main():
    g = torch.Generator().manual_seed(20251202)
    B, C, H, W = 3, 6, 4, 5
    z = (torch.randn(B, C, H, W, generator=g) * 3 + 1).float()
    mean = (torch.randn(C, H, W, generator=g) * 2).float()
    var = (torch.rand(C, H, W, generator=g) * 4).float()
    var[0, 0, :] = 0.0  # eps alone
    var[1, 1, :] = 1e-7  # below eps
    var[2, 2, :] = 1e3
    norm = (z - mean) / torch.sqrt(var + EPS)  # RAE.encode
    sample = (torch.randn(B, C, H, W, generator=g)).float()
    denorm = sample * torch.sqrt(var + EPS) + mean  # RAE.decode
    out = {
        "z": to_tokens(z), "mean": to_tokens(mean), "var": to_tokens(var),
        "normalized": to_tokens(norm), "sample": to_tokens(sample), "denormalized": to_tokens(denorm),
    }
    path = os.path.join(ROOT, "tests", "goldens", "diffusion", "latent_norm.safetensors")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path, metadata={"eps": repr(EPS), "producer": "make_latent_norm_golden.py",
                                   "torch": torch.__version__})
    print("wrote", path)


if __name__ == "__main__":
    main()
