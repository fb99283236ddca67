#!/usr/bin/env python3
"""PyTorch baseline for bench/bench_step_cpu.cpp: the same DiT^DH (body 384 x 6 with 6 heads,
head 768 x 1 with 12 heads, 16 x 16 tokens of 768 channels, batch 8), one training step =
forward + MSE backward + clip + fused-free AdamW + EMA, float32, on the CPU.

Run: OMP_NUM_THREADS=N .venv/bin/python tests/reference/bench_step_torch.py [--threads N]
"""
import argparse
import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope(head_dim, g):
    dim = head_dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    f = torch.einsum("i,f->if", torch.arange(g).float(), freqs).repeat_interleave(2, -1)
    full = torch.cat([f[:, None, :].expand(g, g, dim), f[None, :, :].expand(g, g, dim)], -1)
    full = full.reshape(g * g, head_dim)
    return full.cos(), full.sin()


def rotate_half(x):
    x = x.reshape(*x.shape[:-1], -1, 2)
    a, b = x.unbind(-1)
    return torch.stack((-b, a), -1).flatten(-2)


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Block(nn.Module):
    def __init__(self, w, heads, g):
        super().__init__()
        self.heads = heads
        h = int(2 / 3 * int(w * 4.0))
        self.norm1, self.norm2 = RMSNorm(w), RMSNorm(w)
        self.qkv, self.proj = nn.Linear(w, 3 * w), nn.Linear(w, w)
        self.w12, self.w3 = nn.Linear(w, 2 * h), nn.Linear(h, w)
        self.ada = nn.Linear(w, 6 * w)
        cos, sin = rope(w // heads, g)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def forward(self, x, c):
        B, N, W = x.shape
        if c.dim() < x.dim():
            c = c.unsqueeze(1)
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(c)).chunk(6, -1)
        h = self.norm1(x) * (1 + sc1) + sh1
        q, k, v = self.qkv(h).reshape(B, N, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q = q * self.cos + rotate_half(q) * self.sin
        k = k * self.cos + rotate_half(k) * self.sin
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, W)
        x = x + g1 * self.proj(a)
        u1, u2 = self.w12(self.norm2(x) * (1 + sc2) + sh2).chunk(2, -1)
        return x + g2 * self.w3(F.silu(u1) * u2)


class DiTDH(nn.Module):
    def __init__(self, C=768, g=16, K=1000, wb=384, db=6, hb=6, wh=768, dh=1, hh=12):
        super().__init__()
        self.s_emb, self.x_emb = nn.Linear(C, wb), nn.Linear(C, wh)
        self.s_proj = nn.Linear(wb, wh)
        self.register_buffer("W", torch.randn(256))
        self.t0, self.t2 = nn.Linear(512, wb), nn.Linear(wb, wb)
        self.table = nn.Embedding(K + 1, wb)
        self.register_buffer("pos", torch.randn(1, g * g, wb) * 0.1)
        self.body = nn.ModuleList([Block(wb, hb, g) for _ in range(db)])
        self.head = nn.ModuleList([Block(wh, hh, g) for _ in range(dh)])
        self.fnorm, self.flin, self.fada = RMSNorm(wh), nn.Linear(wh, C), nn.Linear(wh, 2 * wh)

    def forward(self, x, t, y):
        tt = t[:, None] * self.W[None] * 2 * math.pi
        temb = self.t2(F.silu(self.t0(torch.cat([tt.sin(), tt.cos()], -1))))
        c = F.silu(temb + self.table(y))
        s = self.s_emb(x) + self.pos
        for b in self.body:
            s = b(s, c)
        s = self.s_proj(F.silu(temb[:, None] + s))
        h = self.x_emb(x)
        for b in self.head:
            h = b(h, s)
        shift, scale = self.fada(F.silu(s)).chunk(2, -1)
        return self.flin(self.fnorm(h) * (1 + scale) + shift)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = DiTDH()
    ema = copy.deepcopy(m).requires_grad_(False)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0,
                            foreach=True)
    B = 8
    x = torch.randn(B, 256, 768)
    y = torch.randint(0, 1000, (B,))

    def step():
        t = torch.rand(B)
        eps = torch.randn_like(x)
        xt = (1 - t[:, None, None]) * x + t[:, None, None] * eps
        opt.zero_grad(set_to_none=False)
        loss = ((m(xt, t, y) - (eps - x)) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), m.parameters()):
                pe.mul_(0.9995).add_(p, alpha=0.0005)

    for _ in range(2):
        step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.iters):
        step()
    dt = (time.perf_counter() - t0) / args.iters
    cpu = (time.process_time() - c0) / args.iters
    n = sum(p.numel() for p in m.parameters())
    print(f"torch {torch.__version__}, threads {args.threads}: {dt * 1e3:.1f} ms/step "
          f"(process CPU {cpu * 1e3:.1f} ms/step), "
          f"{B / dt:.2f} samples/s, {n / 1e6:.1f}M params")


if __name__ == "__main__":
    main()
