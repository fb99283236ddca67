#!/usr/bin/env python3
"""Goldens for the reconstruction metrics (sampling/image_metrics.h): PSNR as the release's
src/eval/ref_iqa.py computes it and SSIM from torchmetrics' structural_similarity_index_measure
(data_range 1.0, its defaults: Gaussian 11x11, sigma 1.5), both on uint8 images / 255 in float64.

Writes tests/goldens/sample/image_metrics.safetensors: a (P, H, W, 3) and b (P, H, W, 3) uint8
image pairs, psnr (P) and ssim (P) float64. Metadata: the torchmetrics version.

Run: .venv/bin/python tests/reference/make_metrics_golden.py   (needs torchmetrics)
"""
import os

import torch
import torchmetrics
from safetensors.torch import save_file
from torchmetrics.functional.image.ssim import structural_similarity_index_measure

H, W = 20, 24
OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "goldens",
                                    "sample", "image_metrics.safetensors"))


def main():
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    base = torch.stack([torch.sin(xx / 3.0 + c) * torch.cos(yy / 4.0 - c) for c in range(3)], -1)
    a0 = ((base * 0.4 + 0.5) * 255).clamp(0, 255)
    pairs = [
        (a0, a0 + 6 * torch.randn(H, W, 3, generator=g)),    # mild noise
        (a0, 255 - a0),                                       # inverted
        (torch.rand(H, W, 3, generator=g) * 255, a0),         # unrelated
        (a0, a0),                                             # identical (mse clamped)
    ]
    a = torch.stack([p[0] for p in pairs]).round().clamp(0, 255).to(torch.uint8)
    b = torch.stack([p[1] for p in pairs]).round().clamp(0, 255).to(torch.uint8)
    x = a.permute(0, 3, 1, 2).double() / 255.0
    y = b.permute(0, 3, 1, 2).double() / 255.0
    mse = torch.clamp(((x - y) ** 2).mean(dim=[1, 2, 3]), min=1e-10)
    psnr = 20.0 * torch.log10(1 / torch.sqrt(mse))
    ssim = structural_similarity_index_measure(target=x, preds=y, data_range=1.0, reduction="none")
    save_file({"a": a.contiguous(), "b": b.contiguous(), "psnr": psnr, "ssim": ssim.double()}, OUT,
              metadata={"torchmetrics": torchmetrics.__version__})
    print(f"wrote {OUT}: psnr {psnr.tolist()}, ssim {ssim.tolist()}")


if __name__ == "__main__":
    main()
