#!/usr/bin/env python3
"""PyTorch reference for bench/step_bench_cuda: the same DiT^DH training step (forward +
backward + grad-norm clip + fused AdamW + EMA) with F32 master weights and
F.scaled_dot_product_attention, written from the RAE recipe (not copied from the release), in
bf16 autocast or in TF32 (float32 tensors, TF32 matmuls and convolutions), eager or under
torch.compile (default mode; --compile-mode max-autotune where time allows).

Configurations MODEL:PRECISION:MODE (mode eager or compile); one JSON line each:
  {"name": "DiTDH-XL" (bf16) or "DiTDH-XL-tf32", "precision", "compiled", "batch",
   "images_per_s", "ms_per_step", "peak_mem_gb", "compile_s", "ok"}

  python3 torch_step_bench.py --configs XL:bf16:compile,XL:tf32:compile --batches-xl 256,128
  python3 torch_step_bench.py --configs S:bf16:eager --tiny --device cpu   # smoke test, no GPU

--ready-file R --go-file G (tests/device/check.sh): build, compile and warm up every
configuration first (compilation is CPU work that the check overlaps with its correctness
stages), release the cached blocks, create R, then wait for G before timing anything, so the
timed steps run on an otherwise idle GPU. Without G after --go-timeout seconds: exit, untimed.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "XL": dict(body_w=1152, body_d=28, body_h=16),
    "S": dict(body_w=384, body_d=12, body_h=6),
}


def swiglu_hidden(w):
    return int(2.0 / 3.0 * (w * 4))


def rope_tables(grid, head_dim, theta=10000.0):
    """EVA-style 2D RoPE: half the head dim per axis, frequencies repeated per adjacent pair."""
    dim = head_dim // 2
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    t = torch.arange(grid).float()
    f = torch.outer(t, freqs).repeat_interleave(2, dim=-1)  # (grid, dim)
    f2 = torch.cat([f[:, None, :].expand(grid, grid, dim), f[None, :, :].expand(grid, grid, dim)], -1)
    f2 = f2.reshape(grid * grid, head_dim)
    return f2.cos(), f2.sin()


def rope(x, cos, sin):
    """x (B, H, T, D); rotate_half pairs adjacent elements (x0, x1) -> (-x1, x0)."""
    x2 = x.unflatten(-1, (-1, 2))
    rot = torch.stack((-x2[..., 1], x2[..., 0]), dim=-1).flatten(-2)
    return x * cos + rot * sin


class Block(nn.Module):
    def __init__(self, w, heads):
        super().__init__()
        self.w, self.heads, self.hd = w, heads, w // heads
        hidden = swiglu_hidden(w)
        self.norm1 = nn.Parameter(torch.ones(w))
        self.norm2 = nn.Parameter(torch.ones(w))
        self.qkv = nn.Linear(w, 3 * w)
        self.proj = nn.Linear(w, w)
        self.w12 = nn.Linear(w, 2 * hidden)
        self.w3 = nn.Linear(hidden, w)
        self.ada = nn.Linear(w, 6 * w)

    def forward(self, x, c, cos, sin):
        B, T, C = x.shape
        mod = self.ada(F.silu(c))
        if mod.dim() == 2:
            mod = mod[:, None, :]
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
        h = F.rms_norm(x, (C,), self.norm1.to(x.dtype), 1e-6) * (1 + sc1) + sh1
        qkv = self.qkv(h).view(B, T, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q, k = rope(q, cos, sin).to(v.dtype), rope(k, cos, sin).to(v.dtype)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + g1 * self.proj(a.transpose(1, 2).reshape(B, T, C))
        h = F.rms_norm(x, (C,), self.norm2.to(x.dtype), 1e-6) * (1 + sc2) + sh2
        u1, u2 = self.w12(h).chunk(2, dim=-1)
        return x + g2 * self.w3(F.silu(u1) * u2)


class DiTDH(nn.Module):
    def __init__(self, body_w, body_d, body_h, head_w=2048, head_d=2, head_h=16, in_ch=768,
                 grid=16, classes=1000, fourier=256):
        super().__init__()
        self.grid = grid
        self.s_emb = nn.Linear(in_ch, body_w)
        self.x_emb = nn.Linear(in_ch, head_w)
        self.s_proj = nn.Linear(body_w, head_w)
        self.register_buffer("W", torch.randn(fourier))
        self.t0 = nn.Linear(2 * fourier, body_w)
        self.t2 = nn.Linear(body_w, body_w)
        self.labels = nn.Embedding(classes + 1, body_w)
        self.register_buffer("pos", torch.randn(grid * grid, body_w) * 0.02)
        self.body = nn.ModuleList([Block(body_w, body_h) for _ in range(body_d)])
        self.head = nn.ModuleList([Block(head_w, head_h) for _ in range(head_d)])
        self.f_norm = nn.Parameter(torch.ones(head_w))
        self.f_ada = nn.Linear(head_w, 2 * head_w)
        self.f_lin = nn.Linear(head_w, in_ch)
        for name, (h, w) in (("b", (body_h, body_w)), ("h", (head_h, head_w))):
            cs, sn = rope_tables(grid, w // h)
            self.register_buffer(name + "cos", cs)
            self.register_buffer(name + "sin", sn)

    def forward(self, x, t, y):
        a = 2 * math.pi * t[:, None] * self.W[None, :]
        temb = self.t2(F.silu(self.t0(torch.cat([a.sin(), a.cos()], -1))))
        c = temb + self.labels(y)
        s = self.s_emb(x) + self.pos
        for blk in self.body:
            s = blk(s, c, self.bcos, self.bsin)
        sp = self.s_proj(F.silu(s + temb[:, None, :]))  # per-token head condition
        h = self.x_emb(x)
        for blk in self.head:
            h = blk(h, sp, self.hcos, self.hsin)
        shift, scale = self.f_ada(F.silu(sp)).chunk(2, dim=-1)
        h = F.rms_norm(h, (h.shape[-1],), self.f_norm.to(h.dtype), 1e-6) * (1 + scale) + shift
        return self.f_lin(h)


PRECISIONS = ("bf16", "tf32")


class Config:
    """One timed configuration: a model with its optimizer and EMA, one precision, eager or
    compiled, at the first batch of `batches` that fits."""

    def __init__(self, spec, a):
        m, prec, mode = spec.split(":")
        assert m in CONFIGS and prec in PRECISIONS and mode in ("eager", "compile"), spec
        self.model_name, self.prec, self.compiled = m, prec, mode == "compile"
        self.name = "DiTDH-" + m + ("" if prec == "bf16" else "-" + prec)
        self.batches = [int(b) for b in (a.batches_xl if m == "XL" else a.batches_s).split(",")]
        self.a = a
        self.result = dict(name=self.name, precision=prec, compiled=self.compiled, ok=False)
        self.step = None

    def build(self):
        """Model, optimizer, inputs and the step function at the first batch that fits (OOM:
        the next one); warm-up steps included (for compile: the compilation)."""
        a, device = self.a, self.a.device
        for batch in self.batches:
            try:
                t0 = time.perf_counter()
                self._build(batch)
                for _ in range(a.warmup):
                    self.step()
                sync(device)
                self.result.update(batch=batch, compile_s=time.perf_counter() - t0)
                return True
            except torch.OutOfMemoryError:
                print(f"[torch_step_bench] {self.name} batch {batch}: out of memory", file=sys.stderr)
                self.result.update(batch=batch, error="out of memory")
                self.step = None
                if device == "cuda":
                    torch.cuda.empty_cache()
            except Exception as e:  # report and give up on this configuration
                self.result.update(batch=batch, error=f"{type(e).__name__}: {e}"[:300])
                print(f"[torch_step_bench] {self.name} batch {batch}: {self.result['error']}",
                      file=sys.stderr)
                self.step = None
                return False
        return False

    def _build(self, batch):
        a, device = self.a, self.a.device
        st = shared_state(self.model_name, batch, a)
        model, opt, ema, (x0, eps, t, y) = st["model"], st["opt"], st["ema"], st["data"]
        if self.compiled and "compiled" not in st:  # one compiled module: bf16 and TF32 are two
            st["compiled"] = torch.compile(model, mode=a.compile_mode)  # guarded graphs of it
        fwd = st["compiled"] if self.compiled else model
        bf16 = self.prec == "bf16"

        def step():
            xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * eps
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                out = fwd(xt, t, y)
            loss = F.mse_loss(out.float(), eps - x0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1 - 0.9995)
            return loss

        self.step = step
        self.params = sum(p.numel() for p in model.parameters())

    def time(self):
        a, device = self.a, self.a.device
        if self.step is None:
            return self.result
        try:
            self.step()  # one more warm step after the wait
            sync(device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(a.steps):
                loss = self.step()
            sync(device)
            sec = (time.perf_counter() - t0) / a.steps
            b = self.result["batch"]
            self.result.update(ok=True, images_per_s=b / sec, ms_per_step=sec * 1e3,
                               loss=float(loss.detach()), params=self.params, error=None,
                               peak_mem_gb=torch.cuda.max_memory_allocated() / 1e9
                               if device == "cuda" else 0.0)
        except Exception as e:
            self.result.update(ok=False, error=f"{type(e).__name__}: {e}"[:300])
        return self.result


_SHARED = {}


def shared_state(model_name, batch, a):
    """One model (with its AdamW and EMA) and one batch of random inputs per (model, batch),
    shared by the configurations: the process holds one set of parameters and optimizer state,
    not one per configuration (it waits beside the check's other GPU work)."""
    key = (model_name, batch)
    if key not in _SHARED:
        for k in [k for k in _SHARED if k[0] == model_name]:
            del _SHARED[k]  # a smaller batch after an out-of-memory: drop the larger one
        device = a.device
        torch.manual_seed(0)
        kw = dict(CONFIGS[model_name])
        if a.tiny:
            kw.update(head_w=64, head_d=1, head_h=2, in_ch=24, grid=4, classes=10, fourier=8)
        model = DiTDH(**kw).to(device)
        ema = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0,
                                fused=device == "cuda")
        T, C = kw.get("grid", 16) ** 2, kw.get("in_ch", 768)
        gen = torch.Generator(device=device).manual_seed(1)  # random data, never zeros
        data = (torch.randn(batch, T, C, device=device, generator=gen),
                torch.randn(batch, T, C, device=device, generator=gen),
                torch.rand(batch, device=device, generator=gen),
                torch.randint(0, kw.get("classes", 1000) + 1, (batch,), device=device, generator=gen))
        _SHARED[key] = dict(model=model, opt=opt, ema=ema, data=data)
    return _SHARED[key]


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def set_precision(prec, device):
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # bf16 autocast leaves F32 matmuls TF32 too
        torch.backends.cudnn.allow_tf32 = True


def wait_for(path, timeout):
    t0 = time.time()
    while not os.path.exists(path):
        if time.time() - t0 > timeout:
            return False
        time.sleep(0.2)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="XL:bf16:eager,S:bf16:eager",
                    help="MODEL:PRECISION:MODE,... (MODEL XL|S, PRECISION bf16|tf32, MODE eager|compile)")
    ap.add_argument("--batches-xl", default="256,128,64")
    ap.add_argument("--batches-s", default="256,128")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny model (smoke test)")
    ap.add_argument("--ready-file", default="")
    ap.add_argument("--go-file", default="")
    ap.add_argument("--go-timeout", type=float, default=600)
    a = ap.parse_args()
    configs = [Config(c, a) for c in a.configs.split(",") if c]
    for c in configs:  # compile and warm up everything before any timing
        set_precision(c.prec, a.device)
        c.build()
        print(f"[torch_step_bench] {c.name} ({'compile' if c.compiled else 'eager'}) ready: "
              f"{c.result}", file=sys.stderr, flush=True)
    if a.device == "cuda":
        torch.cuda.empty_cache()
    if a.ready_file:
        open(a.ready_file, "w").close()
    if a.go_file and not wait_for(a.go_file, a.go_timeout):
        print("[torch_step_bench] no go signal: exiting untimed", file=sys.stderr)
        for c in configs:
            c.result.update(ok=False, error="not timed (no go signal)")
            print(json.dumps(c.result), flush=True)
        return
    for c in configs:
        set_precision(c.prec, a.device)
        print(json.dumps(c.time()), flush=True)


if __name__ == "__main__":
    main()
