#!/usr/bin/env python3
"""PyTorch reference for bench/encoder_bench_cuda: DINOv2-B with registers (random weights,
transformers' Dinov2WithRegistersModel, SDPA), 224 px, fp32, tf32 and bf16 autocast (eager, or
torch.compile with --compile), inference mode. Prints one
JSON object per precision with images_per_s and peak_mem_gb."""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--precisions", default="fp32,tf32,bf16",
                    help="fp32, tf32 (TF32 matmuls), bf16 (bf16 autocast)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (names get -compile)")
    a = ap.parse_args()
    for prec in a.precisions.split(","):
        name = "DINOv2-B-enc-" + prec + ("-compile" if a.compile else "")
        try:
            from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
            cfg = Dinov2WithRegistersConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                            mlp_ratio=4, patch_size=14, image_size=518, num_register_tokens=4)
            torch.backends.cudnn.allow_tf32 = prec == "tf32"
            model = Dinov2WithRegistersModel(cfg).cuda().eval()
            if a.compile:
                model = torch.compile(model)
            gen = torch.Generator(device="cuda").manual_seed(1)  # random pixels, never constants
            x = torch.randn((a.batch, 3, 224, 224), device="cuda", generator=gen)
            amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16")
            with torch.inference_mode(), amp:
                model(x)
                if a.compile:
                    model(x)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                for _ in range(a.iters):
                    model(x)
                torch.cuda.synchronize()
            s = (time.perf_counter() - t0) / a.iters
            print(json.dumps(dict(name=name, ok=True, batch=a.batch, images_per_s=a.batch / s,
                                  ms_per_forward=s * 1e3, peak_mem_gb=torch.cuda.max_memory_allocated() / 1e9,
                                  attn=cfg._attn_implementation, compiled=a.compile)), flush=True)
            del model
            torch.cuda.empty_cache()
        except Exception as e:
            print(json.dumps(dict(name=name, ok=False, error=f"{type(e).__name__}: {e}"[:300])), flush=True)


if __name__ == "__main__":
    main()
