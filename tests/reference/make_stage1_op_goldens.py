#!/usr/bin/env python3
"""PyTorch reference values for the stage-1 ops, written to tests/goldens/ops/stage1_<case>.safetensors
and read by tests/ops/test_ops_stage1_golden.cpp. Conventions of make_op_goldens.py (float64
values of float32-representable inputs, loss = sum(out * dout), gradients "d<input>"); images NHWC
and conv weights channels last in the files, permuted around each torch call.

  resize_bilinear_*  F.interpolate(mode="bilinear", align_corners=False), forward and dx
  batchnorm_local    the release's BatchNormLocal (virtual_bs 1) on (N, L, C): out, dx, dgamma, dbeta
  spectral_norm      torch.nn.utils.spectral_norm on a Conv1d weight in training mode (one power
                     iteration): the normalised weight, u and v after, and d weight_orig
  pad_circular1d     F.pad(mode="circular"), forward and dx
  lpips_distance     the lpips package's normalize_tensor, squared difference, 1x1 lin conv
                     (no bias), spatial average, batch mean: the value and dfx
  diffaug            the release's DiffAug.aug (stage1_reference.diffaug) with given uniforms: out
                     and dx (translation, colour, cutout 0.25)
Regenerate with tests/reference/regen_goldens.sh.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_op_goldens as base  # noqa: E402
import stage1_reference as sr  # noqa: E402

reseed, randn, rand, leaf, backprop, save = (base.reseed, base.randn, base.rand, base.leaf,
                                             base.backprop, base.save)


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def resize_cases():
    for case, (N, H, W, C), (OH, OW) in (("stage1_resize_bilinear_down", (2, 9, 7, 3), (4, 5)),
                                           ("stage1_resize_bilinear_up", (1, 4, 5, 2), (9, 7)),
                                           ("stage1_resize_bilinear_8_7", (1, 32, 32, 3), (28, 28))):
        reseed(case)
        x = leaf(randn(N, H, W, C))
        out = nhwc(F.interpolate(nchw(x), size=(OH, OW), mode="bilinear", align_corners=False))
        dout, grads = backprop(out, {"x": x})
        save(case, {"x": x, "out": out, "dout": dout, **grads})


def batchnorm_local():
    case = "stage1_batchnorm_local"
    reseed(case)
    N, L, C = 3, 7, 5
    x = leaf(randn(N, L, C))
    bn = sr.BatchNormLocal(C, 1e-6).double()
    with torch.no_grad():
        bn.weight.copy_(rand(C, lo=0.5, hi=1.5))
        bn.bias.copy_(randn(C))
    out = bn(x.transpose(1, 2)).transpose(1, 2)  # the release's (N, C, L)
    dout, grads = backprop(out, {"x": x})
    save(case, {"x": x, "gamma": bn.weight.detach(), "beta": bn.bias.detach(), "out": out, "dout": dout,
                **grads, "dgamma": bn.weight.grad, "dbeta": bn.bias.grad}, {"eps": 1e-6})


def spectral_norm():
    case = "stage1_spectral_norm"
    reseed(case)
    O, C, K = 6, 4, 3
    conv = torch.nn.utils.spectral_norm(nn.Conv1d(C, O, K, bias=False).double(), n_power_iterations=1,
                                        dim=0, eps=1e-12)
    w = randn(O, C, K)
    u = F.normalize(randn(O), dim=0)
    v = F.normalize(randn(C * K), dim=0)
    with torch.no_grad():
        conv.weight_orig.copy_(w)
        conv.weight_u.copy_(u)
        conv.weight_v.copy_(v)
    conv.train()
    conv(torch.zeros(1, C, 5, dtype=torch.float64))  # the forward pre-hook: one power iteration
    w_sn = conv.weight
    dout = randn(O, C, K)
    (w_sn * dout).sum().backward()
    ours = lambda t: t.permute(0, 2, 1)  # (O, C, K) -> (O, K, C)
    v_ours = lambda t: t.view(C, K).t().reshape(-1)  # v in our (K, C) column order
    sigma = (w / w_sn.detach()).flatten()[0:1]
    save(case, {"w": ours(w), "u": u, "v": v_ours(v), "out": ours(w_sn), "u_after": conv.weight_u,
                "v_after": v_ours(conv.weight_v), "sigma": sigma, "dout": ours(dout),
                "dw": ours(conv.weight_orig.grad)})


def pad_circular():
    case = "stage1_pad_circular1d"
    reseed(case)
    N, L, C, p = 2, 6, 3, 4
    x = leaf(randn(N, L, C))
    out = F.pad(x.transpose(1, 2), (p, p), mode="circular").transpose(1, 2)
    dout, grads = backprop(out, {"x": x})
    save(case, {"x": x, "out": out, "dout": dout, **grads}, {"pad": p})


def lpips_distance():
    case = "stage1_lpips_distance"
    reseed(case)
    N, H, W, C = 2, 3, 4, 8
    fx, fy = leaf(randn(N, H, W, C)), randn(N, H, W, C)
    w = rand(C, lo=0.0, hi=0.3)
    import lpips
    nx, ny = lpips.normalize_tensor(nchw(fx)), lpips.normalize_tensor(nchw(fy))
    d = F.conv2d((nx - ny) ** 2, w.view(1, C, 1, 1))
    out = lpips.spatial_average(d, keepdim=True).mean().view(1)
    dout, grads = backprop(out, {"fx": fx})
    save(case, {"fx": fx, "fy": fy, "w": w, "out": out, "dout": dout, **grads})


def diffaug():
    case = "stage1_diffaug"
    reseed(case)
    B, S, C = 2, 16, 3
    x = leaf(randn(B, S, S, C))
    r = rand(B, 7).float()
    out = nhwc(sr.diffaug(nchw(x), r, (True, True, True), 0.25))
    dout, grads = backprop(out, {"x": x})
    save(case, {"x": x, "r": r.double(), "out": out, "dout": dout, **grads}, {"cutout": 0.25})


if __name__ == "__main__":
    resize_cases()
    batchnorm_local()
    spectral_norm()
    pad_circular()
    lpips_distance()
    diffaug()
    for case, size in base.written:
        print(f"{case}: {size} bytes")
