"""The RAE stage-1 decoder in PyTorch, written from the release's definitions
(src/stage1/decoders/decoder.py: GeneralDecoder built from HF ViTMAE layers; src/stage1/rae.py:
RAE.decode), for goldens and the PyTorch side of benchmarks. Functional: parameters are a dict
with the release's state_dict names.

Structure (as the release): decoder_embed (Linear latent -> width) on the (B, N, C) tokens,
a trainable CLS token prepended, the fixed 2D sin-cos position table (row 0, the CLS position, is
zero) added, pre-LN ViTMAE layers (LayerNorm eps 1e-12, separate query/key/value Linears with
bias, eager softmax attention, exact-erf GELU MLP), decoder_norm, decoder_pred (width ->
p*p*3) on every token, the CLS row dropped, then unpatchify "nhwpqc->nchpwq".
RAE.decode: z (B, C, H, W) * sqrt(var + 1e-5) + mean, -> (B, H*W, C) tokens, decoder,
unpatchify, * encoder_std + encoder_mean.
"""
import math

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ditdh_reference import sincos_1d  # noqa: E402  (the MAE/DiT 1D table, shared)

LN_EPS = 1e-12  # configs/decoder/*/config.json layer_norm_eps
STAT_EPS = 1e-5  # RAE(eps=1e-5)


def decoder_pos_embed(width, grid):
    """(1, 1 + grid*grid, width) float32: zero CLS row, then the MAE 2D table (w coordinate in
    the first half, as the release's meshgrid(w, h) order gives)."""
    gh = np.arange(grid, dtype=np.float32)
    gw = np.arange(grid, dtype=np.float32)
    g = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid, grid)
    emb = np.concatenate([sincos_1d(width // 2, g[0]), sincos_1d(width // 2, g[1])], axis=1)
    emb = np.concatenate([np.zeros([1, width]), emb], axis=0)
    return torch.from_numpy(emb).float().unsqueeze(0)


def param_shapes(latent, width, depth, mlp, patch, channels=3):
    s = {"decoder_embed.weight": (width, latent), "decoder_embed.bias": (width,)}
    for i in range(depth):
        p = f"decoder_layers.{i}."
        for n in ("query", "key", "value"):
            s[p + f"attention.attention.{n}.weight"] = (width, width)
            s[p + f"attention.attention.{n}.bias"] = (width,)
        s[p + "attention.output.dense.weight"] = (width, width)
        s[p + "attention.output.dense.bias"] = (width,)
        s[p + "intermediate.dense.weight"] = (mlp, width)
        s[p + "intermediate.dense.bias"] = (mlp,)
        s[p + "output.dense.weight"] = (width, mlp)
        s[p + "output.dense.bias"] = (width,)
        for n in ("layernorm_before", "layernorm_after"):
            s[p + n + ".weight"] = (width,)
            s[p + n + ".bias"] = (width,)
    s["decoder_norm.weight"] = (width,)
    s["decoder_norm.bias"] = (width,)
    s["decoder_pred.weight"] = (patch * patch * channels, width)
    s["decoder_pred.bias"] = (patch * patch * channels,)
    s["trainable_cls_token"] = (1, 1, width)
    return s


def random_params(gen, latent, width, depth, mlp, patch, std=0.2):
    """Random float32 parameters (LayerNorm weights near 1) under the release's names."""
    P = {}
    for n, shape in param_shapes(latent, width, depth, mlp, patch).items():
        if "layernorm" in n or n.startswith("decoder_norm"):
            base = 1.0 if n.endswith("weight") else 0.0
            P[n] = (base + 0.1 * torch.randn(*shape, generator=gen)).float()
        else:
            P[n] = (std * torch.randn(*shape, generator=gen)).float()
    return P


def layer(P, i, x, heads):
    p = f"decoder_layers.{i}."
    B, N, W = x.shape
    D = W // heads

    def lin(name, h):
        return F.linear(h, P[p + name + ".weight"], P[p + name + ".bias"])

    def split(h):  # (B, N, W) -> (B, heads, N, D)
        return h.view(B, N, heads, D).permute(0, 2, 1, 3)

    h = F.layer_norm(x, (W,), P[p + "layernorm_before.weight"], P[p + "layernorm_before.bias"], LN_EPS)
    q = split(lin("attention.attention.query", h))
    k = split(lin("attention.attention.key", h))
    v = split(lin("attention.attention.value", h))
    # The release's ViTMAESelfAttention: eager matmul / sqrt(D) / softmax / matmul.
    a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(D), dim=-1)
    a = torch.matmul(a, v).permute(0, 2, 1, 3).reshape(B, N, W)
    x = lin("attention.output.dense", a) + x
    h = F.layer_norm(x, (W,), P[p + "layernorm_after.weight"], P[p + "layernorm_after.bias"], LN_EPS)
    h = F.gelu(lin("intermediate.dense", h))  # HF "gelu": exact erf
    return lin("output.dense", h) + x


def unpatchify(logits, patch, grid, channels=3):
    B = logits.shape[0]
    x = logits.reshape(B, grid, grid, patch, patch, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(B, channels, grid * patch, grid * patch)


def decoder_forward(P, tokens, heads, patch):
    """tokens (B, N, C) -> pixels (B, 3, H, W) before the encoder mean/std (decoder + unpatchify)."""
    depth = sum(1 for n in P if n.startswith("decoder_layers.") and n.endswith("layernorm_before.weight"))
    x = F.linear(tokens, P["decoder_embed.weight"], P["decoder_embed.bias"])
    cls = P["trainable_cls_token"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + P["decoder_pos_embed"]
    for i in range(depth):
        x = layer(P, i, x, heads)
    x = F.layer_norm(x, (x.shape[-1],), P["decoder_norm.weight"], P["decoder_norm.bias"], LN_EPS)
    logits = F.linear(x, P["decoder_pred.weight"], P["decoder_pred.bias"])[:, 1:, :]
    grid = int(round(math.sqrt(logits.shape[1])))
    return unpatchify(logits, patch, grid)


def rae_decode(P, z, heads, patch, mean, var, pixel_mean, pixel_std):
    """RAE.decode: z (B, C, H, W) normalised latents -> pixels (B, 3, H', W') (unclamped)."""
    z = z * torch.sqrt(var + STAT_EPS) + mean
    b, c, h, w = z.shape
    tokens = z.view(b, c, h * w).transpose(1, 2)
    x = decoder_forward(P, tokens, heads, patch)
    return x * pixel_std.view(1, 3, 1, 1) + pixel_mean.view(1, 3, 1, 1)


def to_uint8(x):
    """The release's sampler: clamp(0, 1).mul(255) then .to(torch.uint8) (truncation), NHWC."""
    return x.clamp(0, 1).mul(255).permute(0, 2, 3, 1).to(torch.uint8)
