#!/usr/bin/env python3
"""Golden of one stage-1 training step (train/stage1.h) from a PyTorch transcription of the RAE
release's src/train_stage1.py, at a tiny config, in float64:

  encoder    tests/goldens/encoders/dinov2-reg-tiny (HF Dinov2WithRegistersModel, the release's
             Dinov2withNorm: final LayerNorm without affine, CLS + 4 registers dropped), 16 px
             input (4x4 tokens of 32 channels); images 16x16, no resize before the encoder
  decoder    the release's GeneralDecoder (vit_decoder_reference.py), width 16, 2 layers, 2 heads,
             MLP 32, patch 4; RAE.decode's * std + mean (ImageNet)
  LPIPS      the PyPI lpips package's LPIPS(net="vgg") with random VGG16 (pnet_rand) and lin
             weights, both replaced by the synthetic formula (synthetic_weights.py)
  GAN        DINO trunk: timm's VisionTransformer (patch 8, width 16, 12 blocks, 2 heads, tanh
             GELU, LayerNorm eps 1e-6: the release's FrozenDINONoDrop recipe at toy width) run as
             FrozenDINONoDrop.forward does (bilinear resize to 32, x * x_scale + x_shift, CLS +
             the 28x28 position grid bilinearly resized to 4x4, blocks, taps after blocks
             2, 5, 8, 11 and the last, first), heads as DinoDisc's (spectral-norm Conv1d with
             circular padding, BatchNormLocal virtual_bs 1, LeakyReLU 0.2, residual kernel 9),
             DiffAug as the release's (translation, colour, cutout 0.25) with given uniforms
  step       generator: L1 + LPIPS + 0.75 lambda (-mean(D(aug(recon)))) with the noise
             z + sigma eps (given), lambda = the release's calculate_adaptive_weight at
             decoder_pred.weight; discriminator (the same decoder weights: train/stage1.h's
             protocol): eval-mode reconstruction without noise, 8-bit quantisation, DiffAug,
             discriminator(fake, real) in train mode (one power iteration per forward), hinge.

Weights are not committed: every decoder, DINO, LPIPS and head parameter comes from the formula
of synthetic_weights.py with the per-name kinds below, which tests/stage1/stage1_golden.h
mirrors (and models/lpips.cpp, models/vit_encoder_grad.cpp for LPIPS and DINO). The spectral-norm
u, v start vectors, the images, the noise and the DiffAug uniforms are stored.

Writes tests/goldens/stage1/step.safetensors. Run: .venv/bin/python tests/reference/make_stage1_golden.py
"""
import json
import math
import os
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stage1_reference as sr  # noqa: E402
import vit_decoder_reference as dref  # noqa: E402
from make_op_goldens import save_if_changed  # noqa: E402
from synthetic_weights import synthetic  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "tests", "goldens", "stage1", "step.safetensors")
ENCODER = os.path.join(REPO, "tests", "goldens", "encoders", "dinov2-reg-tiny")

B, S, ENC_IN = 2, 16, 16
WIDTH, DEPTH, HEADS, MLP, PATCH, LATENT = 16, 2, 2, 32, 4, 32
DINO_W, DINO_HEADS, DINO_DEPTH, DINO_P, DINO_IN, DINO_GRID0 = 16, 2, 12, 8, 32, 28
KEY_DEPTHS, KS, NORM_EPS = (2, 5, 8, 11), 9, 1e-6
CUTOUT, PW, DW, MAXD = 0.25, 1.0, 0.75, 1e4
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)
DT = torch.float64


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ------------------------------------------------------------------ synthetic weights, by kind
def decoder_kind(name, shape):
    """(offset, a): LayerNorm weights in [0.4, 1.2), linears +-1/sqrt(fan_in), the rest +-0.05."""
    if ("layernorm" in name or name.startswith("decoder_norm")) and name.endswith(".weight"):
        return 1.0, 0.4
    if name.endswith(".weight") and len(shape) == 2:
        return -1.0, 1.0 / math.sqrt(shape[1])
    return -1.0, 0.05


def head_kind(name, shape):
    if name.endswith("weight_orig"):
        return -1.0, 1.0 / math.sqrt(shape[1] * shape[2])
    if name.endswith(".weight"):  # BatchNormLocal
        return 1.0, 0.4
    return -1.0, 0.05


def lpips_tensors():
    """models/lpips.cpp's Lpips::synthetic_tensors under torchvision / lpips names."""
    convs = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
             (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512),
             (26, 512, 512), (28, 512, 512)]
    m = {}
    for i, ci, co in convs:
        m[f"features.{i}.weight"] = synthetic(f"features.{i}.weight", (co, ci, 3, 3), -1.0,
                                              math.sqrt(6.0 / (ci * 9.0)))
        m[f"features.{i}.bias"] = synthetic(f"features.{i}.bias", (co,), -1.0, 0.05)
    for k, c in enumerate([64, 128, 256, 512, 512]):
        n = f"lin{k}.model.1.weight"
        m[n] = synthetic(n, (1, c, 1, 1), 1.0, 0.05)
    return m


def dino_tensors():
    """models/vit_encoder_grad.cpp's synthetic_dino for recipe "tiny" (timm names)."""
    C, M, p, G = DINO_W, 4 * DINO_W, DINO_P, DINO_GRID0
    m = {}

    def sym(n, s, a):
        m[n] = synthetic(n, s, -1.0, a)

    sym("patch_embed.proj.weight", (C, 3, p, p), math.sqrt(3.0 / (3.0 * p * p)))
    sym("patch_embed.proj.bias", (C,), 0.02)
    sym("cls_token", (1, 1, C), 0.05)
    sym("pos_embed", (1, 1 + G * G, C), 0.05)
    for l in range(DINO_DEPTH):
        b = f"blocks.{l}."
        for n in ("norm1", "norm2"):
            m[b + n + ".weight"] = synthetic(b + n + ".weight", (C,), 1.0, 0.4)
            sym(b + n + ".bias", (C,), 0.05)
        sym(b + "attn.qkv.weight", (3 * C, C), 1.0 / math.sqrt(C))
        sym(b + "attn.qkv.bias", (3 * C,), 0.02)
        sym(b + "attn.proj.weight", (C, C), 0.5 / math.sqrt(C))
        sym(b + "attn.proj.bias", (C,), 0.02)
        sym(b + "mlp.fc1.weight", (M, C), 1.0 / math.sqrt(C))
        sym(b + "mlp.fc1.bias", (M,), 0.02)
        sym(b + "mlp.fc2.weight", (C, M), 0.5 / math.sqrt(M))
        sym(b + "mlp.fc2.bias", (C,), 0.02)
    return m


def lpips_model():
    import lpips
    m = lpips.LPIPS(pretrained=False, net="vgg", pnet_rand=True, verbose=False)
    slices = [(1, range(0, 4)), (2, range(4, 9)), (3, range(9, 16)), (4, range(16, 23)), (5, range(23, 30))]
    where = {i: k for k, r in slices for i in r}
    sd = {}
    for n, v in lpips_tensors().items():
        if n.startswith("features."):
            i, leaf = int(n.split(".")[1]), n.split(".")[2]
            sd[f"net.slice{where[i]}.{i}.{leaf}"] = t(v)
        else:
            sd[n] = t(v)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    # scaling_layer: buffers of the constructor; lins.K: aliases of linK (one ModuleList)
    assert not unexpected and all("scaling_layer" in k or k.startswith("lins.") for k in missing), (
        missing, unexpected)
    return m.eval().to(DT)


def encoder_model():
    from transformers import Dinov2WithRegistersModel
    m = Dinov2WithRegistersModel.from_pretrained(ENCODER, attn_implementation="eager").eval()
    m.layernorm.elementwise_affine = False
    m.layernorm.weight = None
    m.layernorm.bias = None
    return m.to(DT)


def main():
    import timm
    from timm.models.vision_transformer import VisionTransformer
    rng = np.random.default_rng(2025)
    images = rng.integers(0, 256, size=(B, S, S, 3), dtype=np.uint8)
    T = (ENC_IN // 4) ** 2
    sigma = (0.8 * rng.random(B)).astype(np.float32)
    noise = (sigma[:, None, None] * rng.standard_normal((B, T, LATENT))).astype(np.float32)
    aug = [rng.random((B, 7)).astype(np.float32) for _ in range(3)]
    flags = [(True, True, True)] * 3

    # ---- models
    enc = encoder_model()
    lp = lpips_model()
    vit = VisionTransformer(img_size=224, patch_size=DINO_P, embed_dim=DINO_W, depth=DINO_DEPTH,
                            num_heads=DINO_HEADS, mlp_ratio=4.0, qkv_bias=True, num_classes=0,
                            act_layer=partial(nn.GELU, approximate="tanh"),
                            norm_layer=partial(nn.LayerNorm, eps=1e-6))
    dsd = {k: t(v) for k, v in dino_tensors().items()}
    for l in range(DINO_DEPTH):  # the release zeroes the key bias at load
        dsd[f"blocks.{l}.attn.qkv.bias"][DINO_W:2 * DINO_W] = 0
    missing, unexpected = vit.load_state_dict(dsd, strict=False)
    assert not unexpected and set(missing) <= {"norm.weight", "norm.bias"}, (missing, unexpected)
    vit = vit.eval().to(DT)
    for p in vit.parameters():
        p.requires_grad_(False)
    heads = sr.Heads(DINO_W, len(KEY_DEPTHS) + 1, KS, NORM_EPS)
    init_uv = {}
    with torch.no_grad():
        for n, p in heads.named_parameters():
            shape = tuple(p.shape)
            off, a = head_kind(n, shape)
            p.copy_(t(synthetic(n, shape, off, a)))
        for n, b in heads.named_buffers():  # weight_u / weight_v: normalised synthetic vectors
            v = synthetic(n, tuple(b.shape), -1.0, 1.0).astype(np.float64)
            v = (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)
            init_uv[n] = v
            b.copy_(t(v))
    heads = heads.to(DT)
    P = {}
    for n, shape in dref.param_shapes(LATENT, WIDTH, DEPTH, MLP, PATCH).items():
        off, a = decoder_kind(n, shape)
        P[n] = t(synthetic(n, shape, off, a)).to(DT).requires_grad_(True)
    P["decoder_pos_embed"] = dref.decoder_pos_embed(WIDTH, ENC_IN // 4).to(DT)

    # ---- generator step
    x01 = t(images).to(DT).permute(0, 3, 1, 2) / 255.0
    with torch.no_grad():
        z = enc((x01 - MEAN.view(1, 3, 1, 1)) / STD.view(1, 3, 1, 1)).last_hidden_state[:, 5:]
    zn = z + t(noise).to(DT)
    out = dref.decoder_forward(P, zn, HEADS, PATCH)
    recon = out * STD.view(1, 3, 1, 1) + MEAN.view(1, 3, 1, 1)
    real_normed, recon_normed = x01 * 2 - 1, recon * 2 - 1
    rec_loss = (recon - x01).abs().mean()
    lpips_loss = lp(real_normed, recon_normed).mean()
    recon_total = rec_loss + PW * lpips_loss
    heads.eval()
    grid = DINO_IN // DINO_P

    def disc(x, k):
        x = sr.diffaug(x, t(aug[k]), flags[k], CUTOUT)
        return heads(sr.dino_features(vit, x, DINO_IN, DINO_P, DINO_GRID0, KEY_DEPTHS))

    logits_g = disc(recon_normed, 0)
    gan_loss = -torch.mean(logits_g)
    lam = sr.adaptive_weight(recon_total, gan_loss, P["decoder_pred.weight"], MAXD)
    total = recon_total + DW * lam * gan_loss
    total.backward()

    # ---- discriminator step (the same decoder weights)
    heads.zero_grad(set_to_none=True)
    with torch.no_grad():
        rd = dref.decoder_forward(P, z, HEADS, PATCH) * STD.view(1, 3, 1, 1) + MEAN.view(1, 3, 1, 1)
        fake = sr.quantize(rd * 2 - 1)
    heads.train()
    lf = disc(fake, 1)
    lr = disc(real_normed, 2)
    d_loss = 0.5 * (torch.mean(F.relu(1.0 - lr)) + torch.mean(F.relu(1.0 + lf)))
    acc = (lr > lf).double().mean()
    d_loss.backward()

    # ---- the golden
    nh, L = len(KEY_DEPTHS) + 1, grid * grid

    def ours(logits):  # (B, heads * L) -> (heads, B, L)
        return logits.detach().view(B, nh, L).permute(1, 0, 2).float().contiguous()

    def scalar(v):
        return torch.tensor([float(v.detach()) if torch.is_tensor(v) else float(v)], dtype=torch.float64)

    g = {"in.images": t(images), "draw.noise": t(noise),
         "draw.flags": torch.tensor([[int(f) for f in fl] for fl in flags], dtype=torch.int32)}
    for i, a in enumerate(aug):
        g[f"draw.aug{i}"] = t(a)
    for n, v in init_uv.items():
        g["init." + n] = t(v)
    g["enc.z"] = z.float().contiguous()
    g["g.recon"] = recon.detach().permute(0, 2, 3, 1).float().contiguous()
    g["g.logits"] = ours(logits_g)
    g["d.fake"] = fake.permute(0, 2, 3, 1).float().contiguous()
    g["d.logits_fake"] = ours(lf)
    g["d.logits_real"] = ours(lr)
    for k, v in (("l1", rec_loss), ("lpips", lpips_loss), ("gan", gan_loss), ("lambda", lam),
                 ("loss", total), ("disc_loss", d_loss), ("disc_accuracy", acc),
                 ("logits_real", lr.mean()), ("logits_fake", lf.mean())):
        g["out." + k] = scalar(v)
    for n, p in P.items():
        if p.requires_grad:
            g["grad.decoder." + n] = p.grad.float().contiguous()
    for n, p in heads.named_parameters():
        g["grad.disc." + n] = p.grad.float().contiguous()
    for n, b in heads.named_buffers():
        g["after." + n] = b.float().contiguous()
    meta = {"config": json.dumps({"B": B, "S": S, "encoder_input": ENC_IN, "width": WIDTH,
                                  "depth": DEPTH, "heads": HEADS, "mlp": MLP, "patch": PATCH,
                                  "dino": "tiny", "dino_input": DINO_IN, "kernel_size": KS,
                                  "cutout": CUTOUT, "perceptual_weight": PW, "disc_weight": DW}),
            "torch": torch.__version__, "timm": timm.__version__}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_if_changed(g, OUT, meta)
    print("l1 %.6f lpips %.6f gan %.6f lambda %.6f loss %.6f | disc %.6f acc %.3f" %
          (rec_loss, lpips_loss, gan_loss, lam, total, d_loss, acc))
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
