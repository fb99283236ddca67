#!/usr/bin/env python3
"""PyTorch CPU timings of the shapes in bench/bench_ops.cpp (same names, F32, same thread count).

Usage: bench_ops_torch.py --threads N [--min-time SECONDS] [--json OUT] [--filter SUBSTRING]
Each case runs a warm-up call, then repeats until --min-time has passed (at least 3 runs) and
reports the mean wall time per call in ms (as Google Benchmark does for bench_ops). Written for bench/compare_cpu_ops.sh.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

B, T, H, D, C = 8, 256, 6, 64, 384


def time_it(fn, min_time):
    fn()  # warm-up (allocations, kernel selection)
    runs = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while runs < 3 or time.perf_counter() - start < min_time:
        fn()
        runs += 1
    # Means over the runs, as Google Benchmark reports for bench_ops: wall time, and the CPU time
    # of the process (all threads; with --threads 1 it is robust to other load on the machine).
    wall = (time.perf_counter() - start) / runs * 1e3
    cpu = (time.process_time() - cpu_start) / runs * 1e3
    return wall, cpu, runs


def gemm_case(M, K, N):
    A = torch.randn(M, K)
    W = torch.randn(N, K) * 0.05
    out = torch.empty(M, N)

    def run():
        torch.matmul(A, W.t(), out=out)  # C = A @ W^T, as a linear layer without bias
    return run


def attention_fwd():
    qkv = torch.randn(B, T, 3, H, D)

    def run():
        with torch.no_grad():
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, D) views
            o = F.scaled_dot_product_attention(q, k, v)
            o.transpose(1, 2).contiguous()  # (B, T, H, D), the layout our op writes
    return run


def attention_fwdbwd():
    qkv = torch.randn(B, T, 3, H, D, requires_grad=True)
    dout = torch.randn(B, T, H, D)

    def run():
        qkv.grad = None
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        o.backward(dout)  # dqkv written into qkv.grad (B, T, 3, H, D)
    return run


def rmsnorm_modulate(backward):
    x = torch.randn(B, T, C, requires_grad=backward)
    w = torch.randn(C, requires_grad=backward)
    shift = torch.randn(B, C, requires_grad=backward)
    scale = torch.randn(B, C, requires_grad=backward)
    dout = torch.randn(B, T, C)

    def fwd():
        # The release's RMSNorm followed by DDTModulate with per-sample (B, 1, C) conditioning.
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
        return y * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)

    def run_fwd():
        with torch.no_grad():
            fwd()

    def run_fwdbwd():
        for t in (x, w, shift, scale):
            t.grad = None
        fwd().backward(dout)
    return run_fwdbwd if backward else run_fwd


def adamw(n, fused):
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n) * 0.01
    opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01,
                            fused=True if fused else None)

    def run():
        opt.step()
    return run


CASES = [
    ("gemm_2048x384x1152", lambda: gemm_case(2048, 384, 1152)),
    ("gemm_2048x384x1024", lambda: gemm_case(2048, 384, 1024)),
    ("gemm_2048x1024x384", lambda: gemm_case(2048, 1024, 384)),
    ("attention_fwd_B8_T256_H6_D64", attention_fwd),
    ("attention_fwdbwd_B8_T256_H6_D64", attention_fwdbwd),
    ("rmsnorm_modulate_fwd_B8_T256_C384", lambda: rmsnorm_modulate(False)),
    ("rmsnorm_modulate_fwdbwd_B8_T256_C384", lambda: rmsnorm_modulate(True)),
    ("adamw_10M", lambda: adamw(10_000_000, fused=False)),  # torch's default (foreach) path
    ("adamw_10M_fused", lambda: adamw(10_000_000, fused=True)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--json", default=None)
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results, cpu_results = {}, {}
    for name, make in CASES:
        if args.filter not in name:
            continue
        try:
            ms, cpu_ms, runs = time_it(make(), args.min_time)
        except (RuntimeError, TypeError) as e:  # e.g. fused AdamW unavailable on this build
            print(f"{name:40s} skipped: {e}", file=sys.stderr)
            continue
        results[name] = ms
        cpu_results[name] = cpu_ms
        print(f"{name:40s} {ms:10.3f} ms  cpu {cpu_ms:10.3f} ms  ({runs} runs)", file=sys.stderr)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "config": torch.__config__.parallel_info().splitlines()[:6], "ms": results, "cpu_ms": cpu_results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)
    return 0 if all(math.isfinite(v) for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
