#!/usr/bin/env python3
"""PyTorch reference values for every op in src/ops/, written to tests/goldens/ops/<case>.safetensors.

Conventions (read by tests/ops/test_ops_golden.cpp):
- Everything is computed in float64 and stored as F64 (integer labels as I32). Inputs are first
  rounded to float32-representable values, so the C++ test can run the op in F32 on exactly the
  same inputs and measure only the op's own rounding error.
- Gradients come from autograd with loss = sum(out * dout), dout a fixed random tensor stored as
  "dout"; gradients are stored as "d<input>".
- Formulas that the RAE release defines in its own code (RoPE tables, rotate_half, 2D sin-cos
  position embedding, Gaussian Fourier features, patchify layout, EMA) are re-implemented here
  from its definitions (src/stage2/models/model_utils.py, DDT.py, src/stage1/decoders/decoder.py,
  src/utils/train_utils.py); torch supplies everything else (linear, norms, activations, SDPA,
  AdamW, clip_grad_norm_).
Files are tiny (a few KB each). Regenerate with tests/reference/regen_goldens.sh.
"""
import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "tests", "goldens", "ops")
SEED = 20260415

gen = torch.Generator()
written = []


def reseed(case):
    """Each case draws from its own stream (SEED, case name), so adding or reordering cases never
    changes the other files."""
    gen.manual_seed(SEED + zlib.crc32(case.encode()))


def randn(*shape, std=1.0, mean=0.0):
    """float32-representable float64 normal values."""
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean
    return x.float().double()


def rand(*shape, lo=0.0, hi=1.0):
    x = torch.rand(*shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo
    return x.float().double()


def leaf(x):
    return x.clone().requires_grad_(True)


def save(case, tensors, meta=None):
    os.makedirs(OUT_DIR, exist_ok=True)
    out = {}
    for k, v in tensors.items():
        v = v.detach().contiguous()
        if v.dtype == torch.float32 and not case.endswith("_d64"):  # the _d64 tables stay F32
            v = v.double()
        out[k] = v
    m = {"generator": "tests/reference/make_op_goldens.py", "torch": torch.__version__,
         "seed": str(SEED)}
    m.update({k: str(v) for k, v in (meta or {}).items()})
    path = os.path.join(OUT_DIR, case + ".safetensors")
    save_if_changed(out, path, m)
    written.append((case, os.path.getsize(path)))


def save_if_changed(tensors, path, metadata):
    """The package orders __metadata__ keys arbitrarily, so identical content can differ in bytes;
    keep the committed file unless a tensor or metadata value changed."""
    if os.path.exists(path):
        with safe_open(path, "pt") as f:
            same = (f.metadata() == metadata and set(f.keys()) == set(tensors) and
                    all(f.get_tensor(k).dtype == v.dtype and torch.equal(f.get_tensor(k), v)
                        for k, v in tensors.items()))
        if same:
            return
    save_file(tensors, path, metadata=metadata)


def backprop(out, inputs):
    """loss = sum(out * dout); returns dout and the gradients of `inputs` (dict name -> leaf)."""
    dout = randn(*out.shape)
    (out * dout).sum().backward()
    return dout, {"d" + k: v.grad for k, v in inputs.items()}


# ---------------------------------------------------------------- linear.h
def linear_cases():
    N, I, O = 6, 5, 7
    for bias in (True, False):
        reseed("linear" if bias else "linear_nobias")
        x, w = leaf(randn(N, I)), leaf(randn(O, I, std=0.5))
        ins = {"x": x, "w": w}
        if bias:
            ins["b"] = leaf(randn(O))
        out = F.linear(x, w, ins.get("b"))
        dout, grads = backprop(out, ins)
        save("linear" if bias else "linear_nobias",
             {**{k: v for k, v in ins.items()}, "out": out, "dout": dout, **grads})


def matmul_cases():
    # Batched C = alpha * op(A) @ op(B) + beta * C0 for the four transpose combinations, and the
    # autograd gradients of the plain product (what linear_backward computes with matmul).
    reseed("matmul")
    Bt, M, K, N = 3, 4, 5, 6
    alpha, beta = 0.75, -0.5
    t = {}
    for ta in (0, 1):
        for tb in (0, 1):
            A = randn(Bt, K, M) if ta else randn(Bt, M, K)
            B = randn(Bt, N, K) if tb else randn(Bt, K, N)
            C0 = randn(Bt, M, N)
            opA = A.transpose(1, 2) if ta else A
            opB = B.transpose(1, 2) if tb else B
            tag = f"t{ta}{tb}"
            t[f"A_{tag}"], t[f"B_{tag}"], t[f"C0_{tag}"] = A, B, C0
            t[f"C_{tag}"] = alpha * torch.bmm(opA, opB) + beta * C0
    A, B = leaf(randn(M, K)), leaf(randn(K, N))
    C = A @ B
    dC, grads = backprop(C, {"A": A, "B": B})
    t.update({"A2": A, "B2": B, "C2": C, "dC2": dC, "dA2": grads["dA"], "dB2": grads["dB"]})
    save("matmul", t, {"alpha": alpha, "beta": beta})


# ---------------------------------------------------------------- norm.h
def layernorm_cases():
    N, C, eps = 5, 12, 1e-6
    for affine in (True, False):
        reseed("layernorm" if affine else "layernorm_noaffine")
        x = leaf(randn(N, C, std=2.0, mean=0.5))
        ins = {"x": x}
        if affine:
            ins["w"], ins["b"] = leaf(randn(C, std=0.3, mean=1.0)), leaf(randn(C, std=0.3))
        out = F.layer_norm(x, (C,), ins.get("w"), ins.get("b"), eps)
        with torch.no_grad():
            mean = x.mean(-1)
            rstd = torch.rsqrt(x.var(-1, unbiased=False) + eps)
        dout, grads = backprop(out, ins)
        save("layernorm" if affine else "layernorm_noaffine",
             {**ins, "out": out, "mean": mean, "rstd": rstd, "dout": dout, **grads}, {"eps": eps})


def rms(x, eps):
    return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rmsnorm_cases():
    # The release's RMSNorm: x * rsqrt(mean(x^2) + eps) * weight, eps 1e-6.
    reseed("rmsnorm")
    N, C, eps = 5, 12, 1e-6
    x, w = leaf(randn(N, C, std=1.5, mean=0.3)), leaf(randn(C, std=0.3, mean=1.0))
    out = x * rms(x, eps) * w
    rstd = rms(x, eps).squeeze(-1).detach()
    dout, grads = backprop(out, {"x": x, "w": w})
    save("rmsnorm", {"x": x, "w": w, "out": out, "rstd": rstd, "dout": dout, **grads}, {"eps": eps})


def rmsnorm_modulate_cases():
    # out = rmsnorm(x; w) * (1 + scale) + shift (the release's norm1 then DDTModulate), with the
    # conditioning per sample (B, C) (the body) or per token (B, T, C) (the DDT head), and without
    # shift (wo_shift).
    B, T, C, eps = 2, 3, 8, 1e-6
    for case, per_token, with_shift in (("rmsnorm_modulate_sample", False, True),
                                        ("rmsnorm_modulate_token", True, True),
                                        ("rmsnorm_modulate_noshift", False, False)):
        reseed(case)
        cshape = (B, T, C) if per_token else (B, C)
        x, w = leaf(randn(B, T, C, mean=0.2)), leaf(randn(C, std=0.3, mean=1.0))
        scale = leaf(randn(*cshape, std=0.5))
        ins = {"x": x, "w": w, "scale": scale}
        if with_shift:
            ins["shift"] = leaf(randn(*cshape, std=0.5))
        sc = scale if per_token else scale.unsqueeze(1)
        out = x * rms(x, eps) * w * (1 + sc)
        if with_shift:
            out = out + (ins["shift"] if per_token else ins["shift"].unsqueeze(1))
        rstd = rms(x, eps).reshape(B * T).detach()
        dout, grads = backprop(out, ins)
        save(case, {**ins, "out": out, "rstd": rstd, "dout": dout, **grads}, {"eps": eps})


# ---------------------------------------------------------------- activation.h
def activation_cases():
    N, C = 4, 10
    for case, fn in (("gelu_exact", lambda x: F.gelu(x)),
                     ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
                     ("silu", F.silu)):
        reseed(case)
        x = leaf(randn(N, C, std=2.0))
        out = fn(x)
        dout, grads = backprop(out, {"x": x})
        save(case, {"x": x, "out": out, "dout": dout, **grads})
    # SwiGLU as the release's SwiGLUFFN: x1, x2 = x12.chunk(2, -1); silu(x1) * x2.
    reseed("swiglu")
    H = 6
    x12 = leaf(randn(N, 2 * H, std=1.5))
    x1, x2 = x12.chunk(2, dim=-1)
    out = F.silu(x1) * x2
    dout, grads = backprop(out, {"x12": x12})
    save("swiglu", {"x12": x12, "out": out, "dout": dout, **grads})


# ---------------------------------------------------------------- attention.h
def softmax_cases():
    reseed("softmax")
    x = leaf(randn(5, 9, std=3.0))
    out = torch.softmax(x, dim=-1)
    dout, grads = backprop(out, {"x": x})
    save("softmax", {"x": x, "out": out, "dout": dout, **grads})


def attention_cases():
    # qkv (B, T, 3, H, D) as the release's qkv Linear output reshaped; q, k, v = (B, H, T, D).
    # A small case, and a longer one (T = 67: crosses a 64-token tile boundary of flash-style
    # kernels, with larger logits so that the running max matters).
    for case, (B, T, H, D, std) in (("attention", (2, 12, 2, 8, 1.0)),
                                    ("attention_long", (1, 67, 2, 16, 1.5))):
        attention_case(case, B, T, H, D, std)


def attention_case(case, B, T, H, D, std):
    reseed(case)
    scale = 1.0 / math.sqrt(D)
    qkv = leaf(randn(B, T, 3, H, D, std=std))
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    o = F.scaled_dot_product_attention(q, k, v, scale=scale)  # (B, H, T, D)
    out = o.transpose(1, 2)  # (B, T, H, D)
    with torch.no_grad():
        lse = torch.logsumexp((q @ k.transpose(-1, -2)) * scale, dim=-1)  # (B, H, T)
    dout, grads = backprop(out, {"qkv": qkv})
    save(case, {"qkv": qkv, "out": out, "lse": lse, "dout": dout, **grads},
         {"scale": repr(scale)})


def rope_tables(grid_h, grid_w, head_dim, theta):
    """The release's VisionRotaryEmbeddingFast(dim=head_dim // 2, pt_seq_len=grid), in float64:
    per axis dim/2 frequencies theta^(-2i/dim), each repeated twice (interleaved), angle =
    position * frequency; the first `dim` channels use the row (h) position and the last `dim`
    the column (w) position; rows of the (grid_h * grid_w, head_dim) tables are tokens h * W + w.
    (For grid_h != grid_w, the natural generalisation: each axis uses its own positions.)"""
    dim = head_dim // 2
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64)[: dim // 2] / dim))
    fh = torch.repeat_interleave(torch.arange(grid_h, dtype=torch.float64)[:, None] * freqs, 2, -1)
    fw = torch.repeat_interleave(torch.arange(grid_w, dtype=torch.float64)[:, None] * freqs, 2, -1)
    ang = torch.cat([fh[:, None, :].expand(grid_h, grid_w, dim),
                     fw[None, :, :].expand(grid_h, grid_w, dim)], dim=-1)
    ang = ang.reshape(grid_h * grid_w, head_dim)
    return ang.cos(), ang.sin()


def rope_tables_release_f32(grid, head_dim, theta):
    """VisionRotaryEmbeddingFast(dim=head_dim // 2, pt_seq_len=grid) as the release computes it,
    in float32 (freqs, t = arange(n) / n * n, angles, cos/sin all float32)."""
    dim = head_dim // 2
    f32 = torch.float32
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=f32)[: dim // 2] / dim))
    t = torch.arange(grid, dtype=f32) / grid * grid
    f = torch.repeat_interleave(torch.einsum("i,f->if", t, freqs), 2, -1)
    ang = torch.cat([f[:, None, :].expand(grid, grid, dim), f[None, :, :].expand(grid, grid, dim)], -1)
    ang = ang.reshape(grid * grid, head_dim)
    return ang.cos(), ang.sin()


def rotate_half(x):
    # The release's rotate_half: pairs (x0, x1) -> (-x1, x0) over adjacent channels.
    x = x.reshape(*x.shape[:-1], -1, 2)
    x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope_cases():
    theta = 10000.0
    for case, gh, gw in (("rope", 4, 4), ("rope_nonsquare", 2, 3)):
        reseed(case)
        B, H, D = 2, 2, 8
        T = gh * gw
        cos, sin = rope_tables(gh, gw, D, theta)
        qkv = leaf(randn(B, T, 3, H, D))
        # (B, T, H, D) parts; the tables broadcast over batch and heads.
        c, s = cos[None, :, None, :], sin[None, :, None, :]
        q = qkv[:, :, 0] * c + rotate_half(qkv[:, :, 0]) * s
        k = qkv[:, :, 1] * c + rotate_half(qkv[:, :, 1]) * s
        out = torch.stack([q, k, qkv[:, :, 2]], dim=2)
        dout, grads = backprop(out, {"qkv": qkv})
        save(case, {"cos": cos, "sin": sin, "qkv": qkv, "out": out, "dout": dout, **grads},
             {"grid_h": gh, "grid_w": gw, "head_dim": D, "theta": theta})
    # Tables only, at DiT^DH-S's body configuration (16 x 16 tokens, head_dim 64), stored as the
    # release's float32 values (F32).
    cos, sin = rope_tables_release_f32(16, 64, theta)
    save("rope_tables_16x16_d64", {"cos": cos, "sin": sin},
         {"grid_h": 16, "grid_w": 16, "head_dim": 64, "theta": theta})


# ---------------------------------------------------------------- modulate.h
def modulate_cases():
    # The release's DDTModulate / DDTGate with per-sample (B, 1, C) or per-token (B, T, C) tensors.
    B, T, C = 2, 3, 8
    for case, per_token, with_shift in (("modulate_sample", False, True),
                                        ("modulate_token", True, True),
                                        ("modulate_noshift", False, False)):
        reseed(case)
        cshape = (B, T, C) if per_token else (B, C)
        x, scale = leaf(randn(B, T, C)), leaf(randn(*cshape, std=0.5))
        ins = {"x": x, "scale": scale}
        if with_shift:
            ins["shift"] = leaf(randn(*cshape, std=0.5))
        sc = scale if per_token else scale.unsqueeze(1)
        out = x * (1 + sc)
        if with_shift:
            out = out + (ins["shift"] if per_token else ins["shift"].unsqueeze(1))
        dout, grads = backprop(out, ins)
        save(case, {**ins, "out": out, "dout": dout, **grads})
    for case, per_token in (("gate_sample", False), ("gate_token", True)):
        reseed(case)
        cshape = (B, T, C) if per_token else (B, C)
        x0, y, gate = leaf(randn(B, T, C)), leaf(randn(B, T, C)), leaf(randn(*cshape, std=0.5))
        out = x0 + y * (gate if per_token else gate.unsqueeze(1))
        dres, grads = backprop(out, {"x": x0, "y": y, "gate": gate})
        # dx == dres (the residual passes the gradient through); stored to show it.
        save(case, {"x": x0, "y": y, "gate": gate, "out": out, "dres": dres, "dy": grads["dy"],
                    "dgate": grads["dgate"], "dx": grads["dx"]})


# ---------------------------------------------------------------- embed.h
def sincos_1d(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(embed_dim, grid_h, grid_w):
    # The release's get_2d_sincos_pos_embed: meshgrid(w, h), so the FIRST half of the channels
    # encodes the column (w) coordinate and the second half the row (h) coordinate. Square grids
    # in the release; grid_h != grid_w is the natural generalisation (rows h * W + w).
    gw, gh = np.meshgrid(np.arange(grid_w, dtype=np.float32), np.arange(grid_h, dtype=np.float32))
    emb_a = sincos_1d(embed_dim // 2, gw)
    emb_b = sincos_1d(embed_dim // 2, gh)
    return np.concatenate([emb_a, emb_b], axis=1)


def embed_cases():
    for case, gh, gw, C in (("sincos_pos_embed", 4, 4, 16), ("sincos_pos_embed_nonsquare", 3, 5, 8),
                            ("sincos_pos_embed_16x16", 16, 16, 32)):
        save(case, {"out": torch.from_numpy(sincos_2d(C, gh, gw))},
             {"grid_h": gh, "grid_w": gw, "dim": C})
    # GaussianFourierEmbedding: t (B) * W (F) * 2 pi -> [sin, cos]; no gradient to t or W.
    reseed("fourier_features")
    t, W = rand(5), randn(7, std=1.0)
    ang = t[:, None] * W[None, :] * 2 * math.pi
    save("fourier_features", {"t": t, "W": W, "out": torch.cat([ang.sin(), ang.cos()], dim=-1)})
    # Label table with repeated labels (backward must accumulate rows).
    reseed("embedding")
    K, C = 5, 6
    table = leaf(randn(K, C))
    labels = torch.tensor([3, 0, 3, 4, 3, 1], dtype=torch.int64)
    out = F.embedding(labels, table)
    dout, grads = backprop(out, {"table": table})
    save("embedding", {"table": table, "labels": labels.int(), "out": out, "dout": dout, **grads})
    # Patchify / unpatchify in the decoder's layout: tokens (B, h*w, p*p*C) with channel order
    # (p_h, p_w, c); unpatchify is einsum('nhwpqc->nchpwq'); patchify its inverse. Non-square image.
    reseed("patchify")
    Bn, Cn, p, h, w = 2, 3, 2, 2, 3
    img = randn(Bn, Cn, h * p, w * p)
    tokens = torch.einsum("nchpwq->nhwpqc", img.reshape(Bn, Cn, h, p, w, p)).reshape(Bn, h * w, p * p * Cn)
    back = torch.einsum("nhwpqc->nchpwq", tokens.reshape(Bn, h, w, p, p, Cn)).reshape(Bn, Cn, h * p, w * p)
    assert torch.equal(back, img)
    save("patchify", {"img": img, "tokens": tokens}, {"p": p})


# ---------------------------------------------------------------- elementwise.h
def elementwise_cases():
    reseed("mse")
    pred, target = leaf(randn(3, 4, 5)), randn(3, 4, 5)
    loss = F.mse_loss(pred, target)
    loss.backward()
    save("mse", {"pred": pred, "target": target, "loss": loss.reshape(1), "dpred": pred.grad})
    # Flow matching path: xt = (1 - t) x + t eps, target = eps - x, t per sample.
    reseed("flow_interpolate")
    x, eps, t = randn(3, 2, 4), randn(3, 2, 4), rand(3)
    tt = t[:, None, None]
    save("flow_interpolate", {"x": x, "eps": eps, "t": t, "xt": (1 - tt) * x + tt * eps,
                              "target": eps - x})
    # Row broadcast add and the sum of squares.
    reseed("add_rowwise")
    xr, row = randn(4, 6), randn(6)
    save("add_rowwise", {"x": xr, "row": row, "out": xr + row,
                         "sum_squares": (xr * xr).sum().reshape(1)})


# ---------------------------------------------------------------- optim.h
def adamw_cases():
    # torch.optim.AdamW, betas (0.9, 0.95), weight decay 0.01, several steps on changing grads.
    reseed("adamw")
    lr, b1, b2, eps, wd, steps = 1e-2, 0.9, 0.95, 1e-8, 0.01, 5
    p = torch.nn.Parameter(randn(4, 5))
    t = {"param0": p.detach().clone()}
    opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    for s in range(1, steps + 1):
        g = randn(4, 5, std=0.1 * s)
        p.grad = g.clone()
        opt.step()
        t[f"grad{s}"] = g
        t[f"param{s}"] = p.detach().clone()
        t[f"m{s}"] = opt.state[p]["exp_avg"].clone()
        t[f"v{s}"] = opt.state[p]["exp_avg_sq"].clone()
    save("adamw", t, {"lr": lr, "beta1": b1, "beta2": b2, "eps": eps, "weight_decay": wd,
                      "steps": steps})


def clip_cases():
    # torch.nn.utils.clip_grad_norm_ over 3 tensors, one case that clips and one that does not.
    for case, max_norm in (("clip_grad", 1.0), ("clip_grad_noclip", 100.0)):
        reseed(case)
        ps = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in ((3, 4), (5,), (2, 2, 2))]
        grads = [randn(*q.shape) for q in ps]
        for q, g in zip(ps, grads):
            q.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(ps, max_norm)
        t = {}
        for i, (q, g) in enumerate(zip(ps, grads)):
            t[f"g{i}"], t[f"clipped{i}"] = g, q.grad
        t["norm"] = norm.reshape(1)
        save(case, t, {"max_norm": max_norm})


def ema_cases():
    # The release's update_ema: ema.mul_(decay).add_(param, alpha=1 - decay), several steps.
    reseed("ema")
    decay, steps = 0.9, 4
    ema = randn(3, 5)
    t = {"ema0": ema.clone()}
    for s in range(1, steps + 1):
        p = randn(3, 5)
        ema = ema * decay + p * (1 - decay)
        t[f"param{s}"], t[f"ema{s}"] = p, ema.clone()
    save("ema", t, {"decay": decay, "steps": steps})


def main():
    torch.set_default_dtype(torch.float64)
    for make in (linear_cases, matmul_cases, layernorm_cases, rmsnorm_cases,
                 rmsnorm_modulate_cases, activation_cases, softmax_cases, attention_cases,
                 rope_cases, modulate_cases, embed_cases, elementwise_cases, adamw_cases,
                 clip_cases, ema_cases):
        make()
    total = sum(n for _, n in written)
    for case, n in written:
        print(f"  {case:32s} {n:7d} bytes", file=sys.stderr)
    print(f"wrote {len(written)} files, {total} bytes, to {OUT_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
