"""DiT^DH (DiTwDDTHead) and the plain LightningDiT in PyTorch, written from the RAE release's
description (src/stage2/models/DDT.py, lightningDiT.py, model_utils.py): functional forward
passes over a dict of parameters with the release's state_dict names. Used by
make_dit_golden.py (model goldens) and make_sampler_golden.py (sampler parity).

`arch` is a dict: C (channels), G (grid), BODY_W/BODY_D/BODY_H, HEAD_W/HEAD_D/HEAD_H (HEAD_D = 0:
plain LightningDiT), EPS (RMSNorm eps, 1e-6).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


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


def rope_tables(head_dim, g, dtype):
    dim = head_dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    t = torch.arange(g) / g * g
    f = torch.einsum("i,f->if", t, freqs)
    f = f.repeat_interleave(2, dim=-1)  # (g, dim), pairs (n r) with r = 2
    fh = f[:, None, :].expand(g, g, dim)
    fw = f[None, :, :].expand(g, g, dim)
    full = torch.cat([fh, fw], dim=-1).reshape(g * g, head_dim)
    return full.cos().to(dtype), full.sin().to(dtype)


def rotate_half(x):
    x = x.reshape(*x.shape[:-1], -1, 2)
    x1, x2 = x.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def block(P, i, x, c, heads, rope, eps):
    p = f"blocks.{i}."
    Bn, N, W = x.shape
    if c.dim() < x.dim():
        c = c.unsqueeze(1)
    mod = F.linear(F.silu(c), P[p + "adaLN_modulation.1.weight"], P[p + "adaLN_modulation.1.bias"])
    sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
    h = rmsnorm(x, P[p + "norm1.weight"], eps) * (1 + sc1) + sh1
    qkv = F.linear(h, P[p + "attn.qkv.weight"], P[p + "attn.qkv.bias"])
    qkv = qkv.reshape(Bn, N, 3, heads, W // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    cos, sin = rope
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    a = F.scaled_dot_product_attention(q, k, v)
    a = a.transpose(1, 2).reshape(Bn, N, W)
    x = x + g1 * F.linear(a, P[p + "attn.proj.weight"], P[p + "attn.proj.bias"])
    h = rmsnorm(x, P[p + "norm2.weight"], eps) * (1 + sc2) + sh2
    u = F.linear(h, P[p + "mlp.w12.weight"], P[p + "mlp.w12.bias"])
    u1, u2 = u.chunk(2, dim=-1)
    x = x + g2 * F.linear(F.silu(u1) * u2, P[p + "mlp.w3.weight"], P[p + "mlp.w3.bias"])
    return x


def forward(P, x_img, t, y, arch):
    """x_img (B, C, H, W) as the release takes it; t (B); y (B) long. Returns (B, C, H, W)."""
    C, G, EPS = arch["C"], arch["G"], arch["EPS"]
    BODY_W, BODY_D, BODY_H = arch["BODY_W"], arch["BODY_D"], arch["BODY_H"]
    HEAD_W, HEAD_D, HEAD_H = arch["HEAD_W"], arch["HEAD_D"], arch["HEAD_H"]
    dtype = x_img.dtype
    body_rope = rope_tables(BODY_W // BODY_H, G, dtype)
    W_f = P["t_embedder.W"]
    tt = t[:, None] * W_f[None, :] * 2 * math.pi
    tf = torch.cat([torch.sin(tt), torch.cos(tt)], dim=-1)
    temb = F.linear(F.silu(F.linear(tf, P["t_embedder.mlp.0.weight"], P["t_embedder.mlp.0.bias"])),
                    P["t_embedder.mlp.2.weight"], P["t_embedder.mlp.2.bias"])
    yemb = P["y_embedder.embedding_table.weight"][y]
    if HEAD_D == 0:  # LightningDiT: c = t + y, x embedded once, final layer per sample
        c = temb + yemb
        x = F.conv2d(x_img, P["x_embedder.proj.weight"], P["x_embedder.proj.bias"]).flatten(2).transpose(1, 2)
        x = x + P["pos_embed"]
        for i in range(BODY_D):
            x = block(P, i, x, c, BODY_H, body_rope, EPS)
        mod = F.linear(F.silu(c), P["final_layer.adaLN_modulation.1.weight"],
                       P["final_layer.adaLN_modulation.1.bias"]).unsqueeze(1)
        shift, scale = mod.chunk(2, dim=-1)
        x = rmsnorm(x, P["final_layer.norm_final.weight"], EPS) * (1 + scale) + shift
        x = F.linear(x, P["final_layer.linear.weight"], P["final_layer.linear.bias"])
        return x.reshape(x.shape[0], G, G, C).permute(0, 3, 1, 2)
    head_rope = rope_tables(HEAD_W // HEAD_H, G, dtype)
    c = F.silu(temb + yemb)
    s = F.conv2d(x_img, P["s_embedder.proj.weight"], P["s_embedder.proj.bias"]).flatten(2).transpose(1, 2)
    s = s + P["pos_embed"]
    for i in range(BODY_D):
        s = block(P, i, s, c, BODY_H, body_rope, EPS)
    s = F.silu(temb.unsqueeze(1).repeat(1, s.shape[1], 1) + s)
    s = F.linear(s, P["s_projector.weight"], P["s_projector.bias"])
    x = F.conv2d(x_img, P["x_embedder.proj.weight"], P["x_embedder.proj.bias"]).flatten(2).transpose(1, 2)
    for i in range(BODY_D, BODY_D + HEAD_D):
        x = block(P, i, x, s, HEAD_H, head_rope, EPS)
    mod = F.linear(F.silu(s), P["final_layer.adaLN_modulation.1.weight"],
                   P["final_layer.adaLN_modulation.1.bias"])
    shift, scale = mod.chunk(2, dim=-1)
    x = rmsnorm(x, P["final_layer.norm_final.weight"], EPS) * (1 + scale) + shift
    x = F.linear(x, P["final_layer.linear.weight"], P["final_layer.linear.bias"])  # (B, T, C)
    # unpatchify with p = 1: (B, T, C) -> (B, C, H, W)
    return x.reshape(x.shape[0], G, G, C).permute(0, 3, 1, 2)
