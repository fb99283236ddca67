#!/usr/bin/env python3
"""Goldens for the C++ DiT^DH and LightningDiT: tiny DiTwDDTHead and LightningDiT models written
from the RAE release's description (src/stage2/models/DDT.py, lightningDiT.py, model_utils.py)
in PyTorch, computed in float64 from float32 parameters. Writes
tests/goldens/dit/tiny_ditdh.safetensors and tiny_dit.safetensors with the parameters, inputs,
the output, the loss, EVERY parameter gradient and the losses of 10 AdamW steps (clipped).

Run: .venv/bin/python tests/reference/make_dit_golden.py        (DiT^DH)
     .venv/bin/python tests/reference/make_dit_golden.py plain  (LightningDiT)
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(0)
DT = torch.float64

# The C++ preset "DiTDH-micro" with 8 channels, a 4x4 grid and 5 classes.
C, G, K = 8, 4, 5
BODY_W, BODY_D, BODY_H = 16, 2, 2
HEAD_W, HEAD_D, HEAD_H = 24, 1, 2
FOURIER = 8
MLP_RATIO = 4.0
T = G * G
B = 3
EPS = 1e-6


def swiglu_hidden(w):
    return int(2 / 3 * int(w * MLP_RATIO))


def sincos_1d(dim, pos):
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, g):
    gh = np.arange(g, dtype=np.float32)
    gw = np.arange(g, dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, g, g)  # w first
    emb_h = sincos_1d(dim // 2, grid[0])
    emb_w = sincos_1d(dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


def rope_tables(head_dim, g):
    dim = head_dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    t = torch.arange(g) / g * g
    f = torch.einsum("i,f->if", t, freqs)
    f = f.repeat_interleave(2, dim=-1)  # (g, dim), pairs (n r) with r = 2
    fh = f[:, None, :].expand(g, g, dim)
    fw = f[None, :, :].expand(g, g, dim)
    full = torch.cat([fh, fw], dim=-1).reshape(g * g, head_dim)
    return full.cos().to(DT), full.sin().to(DT)


def rotate_half(x):
    x = x.reshape(*x.shape[:-1], -1, 2)
    x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


# ---- parameters (random everywhere, so adaLN and the final layer are exercised) ----
import sys

PLAIN = len(sys.argv) > 1 and sys.argv[1] == "plain"
if PLAIN:
    HEAD_D = 0
FINAL_W = BODY_W if PLAIN else HEAD_W
params = {}


def add(name, *shape, std=0.2):
    params[name] = (torch.randn(*shape) * std).float()


add("x_embedder.proj.weight", FINAL_W, C, 1, 1)
add("x_embedder.proj.bias", FINAL_W)
if not PLAIN:
    add("s_embedder.proj.weight", BODY_W, C, 1, 1)
    add("s_embedder.proj.bias", BODY_W)
    add("s_projector.weight", HEAD_W, BODY_W)
    add("s_projector.bias", HEAD_W)
add("t_embedder.mlp.0.weight", BODY_W, 2 * FOURIER)
add("t_embedder.mlp.0.bias", BODY_W)
add("t_embedder.mlp.2.weight", BODY_W, BODY_W)
add("t_embedder.mlp.2.bias", BODY_W)
add("y_embedder.embedding_table.weight", K + 1, BODY_W, std=0.5)
for i in range(BODY_D + HEAD_D):
    w = BODY_W if i < BODY_D else HEAD_W
    h = swiglu_hidden(w)
    p = f"blocks.{i}."
    params[p + "norm1.weight"] = (1 + 0.1 * torch.randn(w)).float()
    add(p + "attn.qkv.weight", 3 * w, w)
    add(p + "attn.qkv.bias", 3 * w)
    add(p + "attn.proj.weight", w, w)
    add(p + "attn.proj.bias", w)
    params[p + "norm2.weight"] = (1 + 0.1 * torch.randn(w)).float()
    add(p + "mlp.w12.weight", 2 * h, w)
    add(p + "mlp.w12.bias", 2 * h)
    add(p + "mlp.w3.weight", w, h)
    add(p + "mlp.w3.bias", w)
    add(p + "adaLN_modulation.1.weight", 6 * w, w)
    add(p + "adaLN_modulation.1.bias", 6 * w)
params["final_layer.norm_final.weight"] = (1 + 0.1 * torch.randn(FINAL_W)).float()
add("final_layer.linear.weight", C, FINAL_W)
add("final_layer.linear.bias", C)
add("final_layer.adaLN_modulation.1.weight", 2 * FINAL_W, FINAL_W)
add("final_layer.adaLN_modulation.1.bias", 2 * FINAL_W)
buffers = {
    "t_embedder.W": torch.randn(FOURIER).float(),
    "pos_embed": torch.from_numpy(sincos_2d(BODY_W, G)).float().unsqueeze(0),
}

BODY_ROPE = rope_tables(BODY_W // BODY_H, G)
HEAD_ROPE = rope_tables(HEAD_W // HEAD_H, G)


def block(P, i, x, c, heads, rope):
    p = f"blocks.{i}."
    Bn, N, W = x.shape
    if c.dim() < x.dim():
        c = c.unsqueeze(1)
    mod = F.linear(F.silu(c), P[p + "adaLN_modulation.1.weight"], P[p + "adaLN_modulation.1.bias"])
    sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
    h = rmsnorm(x, P[p + "norm1.weight"]) * (1 + sc1) + sh1
    qkv = F.linear(h, P[p + "attn.qkv.weight"], P[p + "attn.qkv.bias"])
    qkv = qkv.reshape(Bn, N, 3, heads, W // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    cos, sin = rope
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    a = F.scaled_dot_product_attention(q, k, v)
    a = a.transpose(1, 2).reshape(Bn, N, W)
    x = x + g1 * F.linear(a, P[p + "attn.proj.weight"], P[p + "attn.proj.bias"])
    h = rmsnorm(x, P[p + "norm2.weight"]) * (1 + sc2) + sh2
    u = F.linear(h, P[p + "mlp.w12.weight"], P[p + "mlp.w12.bias"])
    u1, u2 = u.chunk(2, dim=-1)
    x = x + g2 * F.linear(F.silu(u1) * u2, P[p + "mlp.w3.weight"], P[p + "mlp.w3.bias"])
    return x


def forward(P, x_img, t, y):
    """x_img (B, C, H, W) as the release takes it; returns (B, C, H, W)."""
    W_f = P["t_embedder.W"]
    tt = t[:, None] * W_f[None, :] * 2 * math.pi
    tf = torch.cat([torch.sin(tt), torch.cos(tt)], dim=-1)
    temb = F.linear(F.silu(F.linear(tf, P["t_embedder.mlp.0.weight"], P["t_embedder.mlp.0.bias"])),
                    P["t_embedder.mlp.2.weight"], P["t_embedder.mlp.2.bias"])
    yemb = P["y_embedder.embedding_table.weight"][y]
    if PLAIN:  # LightningDiT: c = t + y, x embedded once, final layer per sample
        c = temb + yemb
        x = F.conv2d(x_img, P["x_embedder.proj.weight"], P["x_embedder.proj.bias"]).flatten(2).transpose(1, 2)
        x = x + P["pos_embed"]
        for i in range(BODY_D):
            x = block(P, i, x, c, BODY_H, BODY_ROPE)
        mod = F.linear(F.silu(c), P["final_layer.adaLN_modulation.1.weight"],
                       P["final_layer.adaLN_modulation.1.bias"]).unsqueeze(1)
        shift, scale = mod.chunk(2, dim=-1)
        x = rmsnorm(x, P["final_layer.norm_final.weight"]) * (1 + scale) + shift
        x = F.linear(x, P["final_layer.linear.weight"], P["final_layer.linear.bias"])
        return x.reshape(x.shape[0], G, G, C).permute(0, 3, 1, 2)
    c = F.silu(temb + yemb)
    s = F.conv2d(x_img, P["s_embedder.proj.weight"], P["s_embedder.proj.bias"]).flatten(2).transpose(1, 2)
    s = s + P["pos_embed"]
    for i in range(BODY_D):
        s = block(P, i, s, c, BODY_H, BODY_ROPE)
    s = F.silu(temb.unsqueeze(1).repeat(1, s.shape[1], 1) + s)
    s = F.linear(s, P["s_projector.weight"], P["s_projector.bias"])
    x = F.conv2d(x_img, P["x_embedder.proj.weight"], P["x_embedder.proj.bias"]).flatten(2).transpose(1, 2)
    for i in range(BODY_D, BODY_D + HEAD_D):
        x = block(P, i, x, s, HEAD_H, HEAD_ROPE)
    mod = F.linear(F.silu(s), P["final_layer.adaLN_modulation.1.weight"],
                   P["final_layer.adaLN_modulation.1.bias"])
    shift, scale = mod.chunk(2, dim=-1)
    x = rmsnorm(x, P["final_layer.norm_final.weight"]) * (1 + scale) + shift
    x = F.linear(x, P["final_layer.linear.weight"], P["final_layer.linear.bias"])  # (B, T, C)
    # unpatchify with p = 1: (B, T, C) -> (B, C, H, W)
    return x.reshape(x.shape[0], G, G, C).permute(0, 3, 1, 2)


x_img = torch.randn(B, C, G, G).float()
target_img = torch.randn(B, C, G, G).float()
t = torch.tensor([0.15, 0.5, 0.93]).float()
y = torch.tensor([1, K, 3], dtype=torch.int32)  # one null-class label

P = {n: v.to(DT).clone().requires_grad_(True) for n, v in params.items()}
P.update({n: v.to(DT) for n, v in buffers.items()})
out = forward(P, x_img.to(DT), t.to(DT), y.long())
loss = ((out - target_img.to(DT)) ** 2).mean()
loss.backward()


def tokens(img):  # (B, C, H, W) -> (B, T, C)
    return img.flatten(2).transpose(1, 2).contiguous()


golden = {}
for n, v in params.items():
    golden["param." + n] = v.contiguous()
    golden["grad." + n] = P[n].grad.float().contiguous()
for n, v in buffers.items():
    golden["param." + n] = v.contiguous()
golden["in.x"] = tokens(x_img)
golden["in.target"] = tokens(target_img)
golden["in.t"] = t
golden["in.y"] = y
golden["out"] = tokens(out.detach().float())
golden["loss"] = torch.tensor([loss.item()], dtype=torch.float64)

# 10 AdamW steps on the same batch with global-norm clipping (the trainer's update).
LR, BETAS, WD, CLIP = 1e-2, (0.9, 0.95), 0.01, 0.5
Q = {n: v.to(DT).clone().requires_grad_(True) for n, v in params.items()}
opt = torch.optim.AdamW(list(Q.values()), lr=LR, betas=BETAS, eps=1e-8, weight_decay=WD)
losses, norms = [], []
for step in range(10):
    opt.zero_grad()
    R = dict(Q)
    R.update({n: v.to(DT) for n, v in buffers.items()})
    l = ((forward(R, x_img.to(DT), t.to(DT), y.long()) - target_img.to(DT)) ** 2).mean()
    l.backward()
    norms.append(torch.nn.utils.clip_grad_norm_(list(Q.values()), CLIP).item())
    opt.step()
    losses.append(l.item())
golden["adam.losses"] = torch.tensor(losses, dtype=torch.float64)
golden["adam.grad_norms"] = torch.tensor(norms, dtype=torch.float64)
golden["adam.hparams"] = torch.tensor([LR, BETAS[0], BETAS[1], WD, CLIP], dtype=torch.float64)

name = "tiny_dit.safetensors" if PLAIN else "tiny_ditdh.safetensors"
path = os.path.join(os.path.dirname(__file__), "..", "goldens", "dit", name)
save_file(golden, path)
print(f"wrote {os.path.normpath(path)}: {len(golden)} tensors, loss {loss.item():.6f}, "
      f"adam losses {losses[0]:.5f} -> {losses[-1]:.5f}")
