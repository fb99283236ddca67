#!/usr/bin/env python3
"""Goldens for the C++ stage-1 decoder (models/vit_decoder.h), from the PyTorch transcription of
the release's GeneralDecoder and RAE.decode in vit_decoder_reference.py. Preset "ViT-micro":
8-channel 4x4 latents, width 16, 2 layers of 2 heads, MLP 32, patch 4 (16x16 pixels).

Writes tests/goldens/decoder/:
  micro_decoder.safetensors  param.* (float32, the release's names, decoder_pos_embed included),
                             in.z (B, T, C) tokens, in.r (B, 3, 16, 16); out = decoder + unpatchify
                             and grad.* of loss = sum(out * r) for EVERY parameter and for z,
                             computed in float64; pipe.*: RAE.decode in float32 as the release runs
                             it (z (B, C, H, W) normalised, stat mean/var (C, H, W)) -> pipe.pixels
                             (unclamped) and pipe.u8 (B, H, W, 3) = the sampler's uint8 conversion.
  release_decoder.pt         the same parameters as a release decoder file (a bare
                             GeneralDecoder.state_dict(), as src/extract_decoder.py saves it).
  converted_decoder.safetensors  tools/convert_rae_checkpoint.py decoder release_decoder.pt
                             --num-heads 2 (the round trip the C++ test loads by name).

Run: .venv/bin/python tests/reference/make_decoder_golden.py
"""
import os
import subprocess
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_decoder_reference as ref  # noqa: E402

LATENT, GRID, WIDTH, DEPTH, HEADS, MLP, PATCH = 8, 4, 16, 2, 2, 32, 4
B = 2
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "goldens", "decoder"))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def main():
    gen = torch.Generator().manual_seed(11)
    params = ref.random_params(gen, LATENT, WIDTH, DEPTH, MLP, PATCH)
    pos = ref.decoder_pos_embed(WIDTH, GRID)
    T = GRID * GRID
    z = torch.randn(B, T, LATENT, generator=gen).float()
    r = torch.randn(B, 3, GRID * PATCH, GRID * PATCH, generator=gen).float()

    P = {n: v.double().clone().requires_grad_(True) for n, v in params.items()}
    P["decoder_pos_embed"] = pos.double()
    zz = z.double().clone().requires_grad_(True)
    out = ref.decoder_forward(P, zz, HEADS, PATCH)
    (out * r.double()).sum().backward()

    golden = {"param." + n: v.contiguous() for n, v in params.items()}
    golden["param.decoder_pos_embed"] = pos.contiguous()
    for n in params:
        golden["grad." + n] = P[n].grad.float().contiguous()
    golden["grad.z"] = zz.grad.float().contiguous()
    golden["in.z"] = z
    golden["in.r"] = r
    golden["out"] = out.detach().float().contiguous()

    # RAE.decode in float32 on normalised (B, C, H, W) latents, then the sampler's uint8.
    zn = torch.randn(B, LATENT, GRID, GRID, generator=gen).float()
    mean = (0.5 * torch.randn(LATENT, GRID, GRID, generator=gen)).float()
    var = (0.2 + torch.rand(LATENT, GRID, GRID, generator=gen) * 2).float()
    F32 = dict(params)
    F32["decoder_pos_embed"] = pos
    with torch.no_grad():
        pix = ref.rae_decode(F32, zn, HEADS, PATCH, mean, var, IMAGENET_MEAN, IMAGENET_STD)
    golden["pipe.z"] = zn
    golden["pipe.mean"] = mean
    golden["pipe.var"] = var
    golden["pipe.pixels"] = pix.contiguous()
    golden["pipe.u8"] = ref.to_uint8(pix).contiguous()

    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "micro_decoder.safetensors")
    save_file(golden, path)
    clamped = ((pix < 0) | (pix > 1)).float().mean().item()
    print(f"wrote {path}: {len(golden)} tensors; pixels in [{pix.min():.3f}, {pix.max():.3f}], "
          f"{100 * clamped:.0f}% clamped")

    # The release's decoder file and its conversion.
    sd = {n: v.clone() for n, v in params.items()}
    sd["decoder_pos_embed"] = pos.clone()
    pt = os.path.join(OUT_DIR, "release_decoder.pt")
    torch.save(sd, pt)
    # Relative names: the converter records its input path in the file's metadata.
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_rae_checkpoint.py"),
                    "decoder", "release_decoder.pt", "converted_decoder.safetensors",
                    "--num-heads", str(HEADS)], check=True, cwd=OUT_DIR)


if __name__ == "__main__":
    main()
