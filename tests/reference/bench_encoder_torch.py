"""PyTorch side of the encoder CPU benchmark (docs/perf/encoders-cpu.md).

Same models as bench/bench_encoders.cpp: a DINOv2-with-registers of the tiny-random shape
(width 64, 2 layers, 4 heads) at batch 32 and of the DINOv2-B shape at batch 4, input 224
(position grid 37x37 interpolated to 16x16), random weights, fp32, torch.inference_mode, SDPA.

Run: RAE_BENCH_THREADS=2 .venv/bin/python tests/reference/bench_encoder_torch.py
"""
import os
import time

import torch
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel


def bench(name, hidden, layers, heads, batch, min_time):
    cfg = Dinov2WithRegistersConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                    mlp_ratio=4, patch_size=14, image_size=518, num_register_tokens=4)
    model = Dinov2WithRegistersModel(cfg).eval()
    x = torch.zeros(batch, 3, 224, 224)
    with torch.inference_mode():
        model(x)  # warm-up
        n, t0 = 0, time.perf_counter()
        while True:
            model(x)
            n += 1
            el = time.perf_counter() - t0
            if el >= min_time and n >= 3:
                break
    print(f"{name}: batch {batch}, {1000 * el / n:.1f} ms/forward, {batch * n / el:.2f} img/s "
          f"({torch.get_num_threads()} threads, {cfg._attn_implementation})")


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("RAE_BENCH_THREADS", "2")))
    bench("tiny_random", 64, 2, 4, 32, 2.0)
    bench("dinov2_b", 768, 12, 12, 4, 4.0)
