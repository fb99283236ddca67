#!/usr/bin/env python3
"""Goldens for the C++ DiT^DH and LightningDiT: tiny DiTwDDTHead and LightningDiT models written
from the RAE release's description (src/stage2/models/DDT.py, lightningDiT.py, model_utils.py)
in PyTorch (ditdh_reference.py), computed in float64 from float32 parameters. Writes
tests/goldens/dit/tiny_ditdh.safetensors and tiny_dit.safetensors with the parameters, inputs,
the output, the loss, EVERY parameter gradient and the losses of 10 AdamW steps (clipped).

Run: .venv/bin/python tests/reference/make_dit_golden.py        (DiT^DH)
     .venv/bin/python tests/reference/make_dit_golden.py plain  (LightningDiT)
"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ditdh_reference as ref  # noqa: E402

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


# ---- parameters (random everywhere, so adaLN and the final layer are exercised) ----
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
    "pos_embed": torch.from_numpy(ref.sincos_2d(BODY_W, G)).float().unsqueeze(0),
}

ARCH = dict(C=C, G=G, BODY_W=BODY_W, BODY_D=BODY_D, BODY_H=BODY_H, HEAD_W=HEAD_W,
            HEAD_D=HEAD_D, HEAD_H=HEAD_H, EPS=EPS)


def forward(P, x_img, t, y):
    """x_img (B, C, H, W) as the release takes it; returns (B, C, H, W)."""
    return ref.forward(P, x_img, t, y, ARCH)


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
