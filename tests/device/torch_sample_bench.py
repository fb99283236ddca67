#!/usr/bin/env python3
"""PyTorch reference for `rae sample` and the stage-1 decoder on one GPU, following the release's
sampling code path (src/sample_ddp.py): the model in eval mode under bf16 autocast, the batch
doubled as [z; z] with [y; null] labels, DiTwDDTHead.forward_with_cfg (the whole 2B batch through
the model, then torch.where on the guidance interval), torchdiffeq's fixed-grid Euler over the
release's float32 grid shift(1 - linspace(0, 0.999, 50)), the conditional half kept, then
RAE.decode (ViTMAE decoder with eager attention), clamp, * 255, uint8 on the host. The DiT^DH is
torch_step_bench.DiTDH (SDPA attention, as the release's NormAttention with fused_attn), the
decoder vit_decoder_reference.py; weights are random (timing only).

Prints one JSON object per measurement:
  torch_sample_latents  images/s of sampling alone (the second timed batch onwards)
  torch_sample_decoded  images/s of sampling + decoding + uint8
  torch_decoder_<prec>  the decoder forward alone (batch --decoder-batch), eager

  python3 torch_sample_bench.py --batch 125 --steps 50 --cfg-scale 1.5 [--decoder-batch 64]
  python3 torch_sample_bench.py --tiny --device cpu       # smoke test without a GPU
"""
import argparse
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from torch_step_bench import CONFIGS, DiTDH  # noqa: E402
import vit_decoder_reference as dec_ref  # noqa: E402

DECODER_XL = dict(width=1152, depth=28, heads=16, mlp=4096)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def make_decoder(latent, grid, cfg, device, dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    P = dec_ref.random_params(gen, latent, cfg["width"], cfg["depth"], cfg["mlp"], 16, std=0.02)
    P["decoder_pos_embed"] = dec_ref.decoder_pos_embed(cfg["width"], grid)
    return {k: v.to(device=device, dtype=dtype) for k, v in P.items()}


def forward_with_cfg(model, x, t, y, cfg_scale, t_min, t_max):
    half = x[: len(x) // 2]
    out = model(torch.cat([half, half], dim=0), t, y)
    cond, uncond = torch.split(out, len(out) // 2, dim=0)
    th = t[: len(t) // 2]
    inside = ((th >= t_min) & (th <= t_max)).view(-1, *[1] * (cond.dim() - 1))
    half_eps = torch.where(inside, uncond + cfg_scale * (cond - uncond), cond)
    return torch.cat([half_eps, half_eps], dim=0)


def sample_batch(model, n, a, shift, T, C, classes, device):
    z = torch.randn(n, T, C, device=device)
    y = torch.randint(0, classes, (n,), device=device)
    guided = a.cfg_scale > 1.0
    if guided:
        z = torch.cat([z, z], dim=0)
        y = torch.cat([y, torch.full((n,), classes, device=device)], dim=0)
    ts = 1 - torch.linspace(0, 1 - 1 / 1000, a.steps)
    ts = (shift * ts / (1 + (shift - 1) * ts)).to(device)
    x = z
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=a.bf16):
        for t0, t1 in zip(ts[:-1], ts[1:]):
            t = torch.ones(x.size(0), device=device) * t0
            if guided:
                v = forward_with_cfg(model, x, t, y, a.cfg_scale, 0.0, 1.0)
            else:
                v = model(x, t, y)
            x = x + (t1 - t0) * v
    return x[:n] if guided else x


def decode_to_uint8(P, z, heads, device, bf16):
    mean = torch.tensor([0.485, 0.456, 0.406], device=device)
    std = torch.tensor([0.229, 0.224, 0.225], device=device)
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        x = dec_ref.decoder_forward(P, z, heads, 16)
        x = x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    return x.clamp(0, 1).mul(255).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8).numpy()


def bench_sampling(a, device):
    kw = dict(CONFIGS["XL"])
    T, C, classes = 256, 768, 1000
    dcfg = DECODER_XL
    if a.tiny:
        kw.update(body_w=32, body_d=1, body_h=2, head_w=64, head_d=1, head_h=2, in_ch=24, grid=4,
                  classes=10, fourier=8)
        T, C, classes = 16, 24, 10
        dcfg = dict(width=32, depth=1, heads=2, mlp=64)
    torch.manual_seed(0)
    model = DiTDH(**kw).to(device).eval()
    P = make_decoder(C, int(math.isqrt(T)), dcfg, device)
    shift = math.sqrt(T * C / 4096) if not a.tiny else 1.0
    lat, full = [], []
    try:
        with torch.no_grad():
            for i in range(a.batches):
                sync(device)
                t0 = time.perf_counter()
                x = sample_batch(model, a.batch, a, shift, T, C, classes, device)
                sync(device)
                t1 = time.perf_counter()
                decode_to_uint8(P, x, dcfg["heads"], device, a.bf16)
                t2 = time.perf_counter()
                lat.append(a.batch / (t1 - t0))
                full.append(a.batch / (t2 - t0))
        steady = slice(1, None) if len(lat) > 1 else slice(0, None)
        for name, rates in (("torch_sample_latents", lat), ("torch_sample_decoded", full)):
            r = rates[steady]
            print(json.dumps(dict(name=name, ok=True, batch=a.batch, steps=a.steps,
                                  cfg_scale=a.cfg_scale, bf16=a.bf16,
                                  images_per_s=sum(r) / len(r), images_per_s_all=rates)), flush=True)
    except torch.OutOfMemoryError:
        for name in ("torch_sample_latents", "torch_sample_decoded"):
            print(json.dumps(dict(name=name, ok=False, batch=a.batch, error="out of memory")),
                  flush=True)


def bench_decoder(a, device):
    cfg = DECODER_XL if not a.tiny else dict(width=32, depth=1, heads=2, mlp=64)
    T, C = (256, 768) if not a.tiny else (16, 24)
    grid = int(math.isqrt(T))
    P = make_decoder(C, grid, cfg, device)
    z = torch.randn(a.decoder_batch, T, C, device=device)
    for prec in ("bf16", "fp32"):
        name = f"torch_decoder_{prec}"
        try:
            with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16,
                                                 enabled=prec == "bf16"):
                dec_ref.decoder_forward(P, z, cfg["heads"], 16)
                sync(device)
                t0 = time.perf_counter()
                for _ in range(a.iters):
                    dec_ref.decoder_forward(P, z, cfg["heads"], 16)
                sync(device)
            s = (time.perf_counter() - t0) / a.iters
            r = dict(name=name, ok=True, batch=a.decoder_batch, ms_per_forward=s * 1e3,
                     images_per_s=a.decoder_batch / s)
        except torch.OutOfMemoryError:
            r = dict(name=name, ok=False, batch=a.decoder_batch, error="out of memory")
        print(json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=125, help="the release's --per-proc-batch-size")
    ap.add_argument("--batches", type=int, default=2, help="timed batches (the first is warm-up)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg-scale", type=float, default=1.5)
    ap.add_argument("--fp32", dest="bf16", action="store_false", help="no bf16 autocast")
    ap.add_argument("--decoder-batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--only", choices=["sample", "decoder"], default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # sample_ddp.py's --tf32 default
        torch.backends.cudnn.allow_tf32 = True
    if a.only in (None, "decoder"):
        bench_decoder(a, a.device)
    if a.only in (None, "sample"):
        bench_sampling(a, a.device)


if __name__ == "__main__":
    main()
