#!/usr/bin/env python3
"""PyTorch reference values for the vision ops (src/ops/conv.h, batchnorm.h, pool.h, relu.h,
resize.h), written to tests/goldens/ops/<case>.safetensors and read by
tests/ops/test_ops_vision_golden.cpp.

Conventions: those of make_op_goldens.py (whose helpers this script uses): float64 values rounded
to float32-representable inputs, loss = sum(out * dout), gradients "d<input>". Our ops are
channels last, so every image tensor is stored NHWC (N, H, W, C) and every weight in our layout
(conv2d (O, KH, KW, C), conv1d (O, K, C)); the script permutes to PyTorch's NCHW around each
torch call.
The resize goldens are torch-fidelity's own interpolate_bilinear_2d_like_tensorflow1x run the
way its Inception runs it (uint8 -> float32, resize, (x - 128) / 128), stored as F32 (the test
demands bit equality); the float64 path is stored too. A 299 x 299 case is stored as a 64-bit
FNV-1a hash of the float32 output bytes (the full tensor would be 700 KB).
Regenerate with tests/reference/regen_goldens.sh.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_op_goldens as base  # noqa: E402  (shared helpers: reseed, randn, leaf, backprop, save)

from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x  # noqa: E402

reseed, randn, rand, leaf, backprop, save = (base.reseed, base.randn, base.rand, base.leaf,
                                             base.backprop, base.save)


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


# ---------------------------------------------------------------- conv.h
def conv2d_cases():
    # (case, N, H, W, C, O, (KH, KW), stride, padding, bias)
    specs = [("conv2d_3x3_pad1", 2, 6, 5, 3, 4, (3, 3), (1, 1), (1, 1), True),
             ("conv2d_3x3_stride2", 2, 7, 8, 3, 5, (3, 3), (2, 2), (0, 0), False),
             ("conv2d_1x7_pad03", 1, 5, 9, 4, 3, (1, 7), (1, 1), (0, 3), True),
             ("conv2d_7x1_pad30", 1, 9, 5, 4, 3, (7, 1), (1, 1), (3, 0), True),
             ("conv2d_1x1", 2, 4, 3, 6, 5, (1, 1), (1, 1), (0, 0), True),
             ("conv2d_5x5_pad2_stride21", 1, 8, 7, 2, 3, (5, 5), (2, 1), (2, 2), True)]
    for case, N, H, W, C, O, k, stride, pad, bias in specs:
        reseed(case)
        x = leaf(randn(N, H, W, C))
        w = leaf(randn(O, k[0], k[1], C, std=0.5))
        ins = {"x": x, "w": w}
        if bias:
            ins["b"] = leaf(randn(O))
        out = nhwc(F.conv2d(nchw(x), nchw(w), ins.get("b"), stride=stride, padding=pad))
        dout, grads = backprop(out, ins)
        save(case, {**ins, "out": out, "dout": dout, **grads},
             {"stride_h": stride[0], "stride_w": stride[1], "pad_h": pad[0], "pad_w": pad[1]})


def conv1d_cases():
    # The discriminator's residual conv (kernel 9, padding 4, bias) and a strided one.
    for case, N, L, C, O, K, stride, pad, bias in (("conv1d_k9_pad4", 2, 12, 4, 3, 9, 1, 4, True),
                                                   ("conv1d_k3_stride2", 2, 9, 3, 4, 3, 2, 1, False)):
        reseed(case)
        x = leaf(randn(N, L, C))
        w = leaf(randn(O, K, C, std=0.5))
        ins = {"x": x, "w": w}
        if bias:
            ins["b"] = leaf(randn(O))
        out = F.conv1d(x.transpose(1, 2), w.transpose(1, 2), ins.get("b"), stride=stride,
                       padding=pad).transpose(1, 2)
        dout, grads = backprop(out, ins)
        save(case, {**ins, "out": out, "dout": dout, **grads}, {"stride": stride, "pad": pad})


# ---------------------------------------------------------------- batchnorm.h
def batchnorm_cases():
    momentum = 0.1
    # Training form over (N, H, W) of an NHWC tensor (BatchNorm2d) and over (N, L) of an NLC one
    # (BatchNorm1d on (N, C, L)), with the running statistics' update.
    for case, shape, eps in (("batchnorm2d_train", (3, 4, 5, 6), 1e-5),
                             ("batchnorm1d_train", (4, 7, 5), 1e-5)):
        reseed(case)
        C = shape[-1]
        x = leaf(randn(*shape, std=2.0, mean=0.7))
        g, b = leaf(randn(C, std=0.3, mean=1.0)), leaf(randn(C, std=0.3))
        rm, rv = randn(C, std=0.2), rand(C, lo=0.5, hi=2.0)
        rm_new, rv_new = rm.clone(), rv.clone()
        xt = x.movedim(-1, 1)  # channels at dim 1, as PyTorch wants
        out = F.batch_norm(xt, rm_new, rv_new, g, b, training=True, momentum=momentum,
                           eps=eps).movedim(1, -1)
        dout, grads = backprop(out, {"x": x, "gamma": g, "beta": b})
        save(case, {"x": x, "gamma": g, "beta": b, "running_mean": rm, "running_var": rv,
                    "out": out, "running_mean_new": rm_new, "running_var_new": rv_new,
                    "dout": dout, **grads}, {"momentum": momentum, "eps": eps})
    reseed("batchnorm2d_eval")
    C, eps = 6, 1e-3
    x = leaf(randn(2, 3, 4, C, std=2.0))
    g, b = leaf(randn(C, std=0.3, mean=1.0)), leaf(randn(C, std=0.3))
    rm, rv = randn(C, std=0.5), rand(C, lo=0.5, hi=2.0)
    out = nhwc(F.batch_norm(nchw(x), rm, rv, g, b, training=False, eps=eps))
    dout, grads = backprop(out, {"x": x, "gamma": g, "beta": b})
    save("batchnorm2d_eval", {"x": x, "gamma": g, "beta": b, "running_mean": rm,
                              "running_var": rv, "out": out, "dout": dout, **grads}, {"eps": eps})


# ---------------------------------------------------------------- pool.h
def pool_cases():
    # (case, kind, kernel, stride, padding, count_include_pad): Inception's and VGG's pools.
    specs = [("max_pool2d_k3s2", "max", 3, 2, 0, True),
             ("max_pool2d_k3s1p1", "max", 3, 1, 1, True),
             ("max_pool2d_k2s2", "max", 2, 2, 0, True),
             ("avg_pool2d_k3s1p1_exclude_pad", "avg", 3, 1, 1, False),
             ("avg_pool2d_k3s1p1_include_pad", "avg", 3, 1, 1, True),
             ("avg_pool2d_k2s2", "avg", 2, 2, 0, True)]
    for case, kind, k, s, p, include in specs:
        reseed(case)
        x = leaf(randn(2, 7, 8, 3))
        if kind == "max":
            y = F.max_pool2d(nchw(x), k, s, p)
        else:
            y = F.avg_pool2d(nchw(x), k, s, p, count_include_pad=include)
        out = nhwc(y)
        dout, grads = backprop(out, {"x": x})
        save(case, {"x": x, "out": out, "dout": dout, **grads},
             {"kernel": k, "stride": s, "pad": p, "count_include_pad": int(include)})
    for case, oh, ow in (("adaptive_avg_pool2d_1x1", 1, 1), ("adaptive_avg_pool2d_3x2", 3, 2)):
        reseed(case)
        x = leaf(randn(2, 7, 5, 3))
        out = nhwc(F.adaptive_avg_pool2d(nchw(x), (oh, ow)))
        dout, grads = backprop(out, {"x": x})
        save(case, {"x": x, "out": out, "dout": dout, **grads}, {"oh": oh, "ow": ow})


# ---------------------------------------------------------------- relu.h
def relu_cases():
    for case, fn in (("relu", F.relu), ("leaky_relu_0p2", lambda t: F.leaky_relu(t, 0.2))):
        reseed(case)
        x = leaf(randn(4, 10, std=2.0))
        out = fn(x)
        dout, grads = backprop(out, {"x": x})
        save(case, {"x": x, "out": out, "dout": dout, **grads})


# ---------------------------------------------------------------- resize.h
def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def tf1_resize(u8_nhwc, size, dtype):
    """torch-fidelity's Inception input: uint8 -> dtype, TF1 bilinear to `size`, (x - 128) / 128."""
    x = nchw(torch.from_numpy(u8_nhwc)).to(dtype)
    x = interpolate_bilinear_2d_like_tensorflow1x(x, size=size, align_corners=False)
    return nhwc((x - 128) / 128).contiguous()


def save_raw(case, tensors, metadata=None):
    """Stores tensors as they are (F32 stays F32: the resize test compares bits)."""
    path = os.path.join(base.OUT_DIR, case + ".safetensors")
    m = {"generator": "tests/reference/make_vision_op_goldens.py", "torch": torch.__version__}
    m.update(metadata or {})
    base.save_if_changed(tensors, path, m)
    base.written.append((case, os.path.getsize(path)))


def resize_cases():
    rng = np.random.default_rng(20260416)
    for case, shape, size in (("resize_tf1_up", (2, 9, 11, 3), (13, 17)),
                              ("resize_tf1_down", (2, 15, 12, 3), (4, 7))):
        img = rng.integers(0, 256, size=shape, dtype=np.uint8)
        save_raw(case, {"x": torch.from_numpy(img), "out_f32": tf1_resize(img, size, torch.float32),
                        "out_f64": tf1_resize(img, size, torch.float64)})
    # Inception's real target size: 17 x 23 and 40 x 31 -> 299 x 299, checked by hash.
    tensors, hashes = {}, {}
    for tag, shape in (("a", (1, 17, 23, 3)), ("b", (1, 40, 31, 3))):
        img = rng.integers(0, 256, size=shape, dtype=np.uint8)
        out = tf1_resize(img, (299, 299), torch.float32)
        tensors["x_" + tag] = torch.from_numpy(img)
        hashes["fnv1a64_" + tag] = str(fnv1a64(out.numpy().tobytes()))
    save_raw("resize_tf1_299", tensors, hashes)


def main():
    torch.set_default_dtype(torch.float64)
    for make in (conv2d_cases, conv1d_cases, batchnorm_cases, pool_cases, relu_cases,
                 resize_cases):
        make()
    total = sum(n for _, n in base.written)
    for case, n in base.written:
        print(f"  {case:32s} {n:7d} bytes", file=sys.stderr)
    print(f"wrote {len(base.written)} files, {total} bytes, to {base.OUT_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
