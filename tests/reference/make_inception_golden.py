#!/usr/bin/env python3
"""Parity golden for models::InceptionV3 against torch-fidelity's FeatureExtractorInceptionV3
(inception-v3-compat, the TF-graph FID network), with deterministic pseudo-random weights.

Inception has 24M parameters (96 MB in float32): too big to commit. So the weights come from a
formula both sides compute identically, and only the images' sizes and the outputs are stored:
  key(name)    = FNV-1a 64 of the parameter name (torch-fidelity's name, e.g.
                 "Mixed_6d.branch1x1.bn.running_var")
  z(name, i)   = splitmix64 finalizer of key + (i + 1) * 0x9E3779B97F4A7C15 (mod 2^64), i the
                 flat index in the torch layout
  u            = (z >> 40) / 2^24, in [0, 1) with 24 bits (exact in float32 and float64)
  value        = float32(t * a) in double, t = 2u - 1 (symmetric) or 2u + 1 (positive), per kind:
                 conv weight    t = 2u - 1, a = sqrt(6 / fan_in)   (He-uniform)
                 bn weight      t = 2u + 1, a = 0.5                (gamma in [0.5, 1.5))
                 bn bias        t = 2u - 1, a = 0.1
                 bn running_mean t = 2u - 1, a = 0.1
                 bn running_var t = 2u + 1, a = 0.5
                 fc weight      t = 2u - 1, a = sqrt(6 / 2048);    fc bias t = 2u - 1, a = 0.1
  (one double multiply, then the float32 rounding: no operation a compiler could fuse.)
Images: uint8 pixels (z >> 56) of key("image:<tag>") over the flat (N, H, W, 3) index.
tests/eval/test_inception.cpp builds the same weights and images, writes them to a temporary
safetensors file and loads it with InceptionV3::load.

The script also proves the conversion path: it writes the weights as a .pth (torch.save, as the
published files), converts it with tools/convert_inception_weights.py (its numpy zip reader and
its torch reader) and checks the converted tensors equal the formula's, bit for bit; then it
builds torch-fidelity's module from that .pth (strict load_state_dict: names and shapes are
torch-fidelity's own) and records its outputs:
  pool    "2048" features (N, 2048)
  logits  "logits_unbiased" (N, 1008), what torch-fidelity's IS and the ADM suite's softmax use
  spatial the ADM suite's sFID features: TF's mixed_6/conv:0 is torch-fidelity's
          Mixed_6d.branch1x1 output (after its ReLU; torch-fidelity's own TF-to-PyTorch weight
          map names mixed_6/conv -> Mixed_6d.branch1x1), first 7 channels, flattened in TF's NHWC
          order: (N, 17, 17, 7) -> (N, 2023)
for images of 64x64 (two), 256x256, 299x299 and 200x300 (H x W) in float32 (the real path) and
the 64x64 pair also in float64 (the module in double precision; see run_torch).
Writes tests/goldens/inception/parity.safetensors (about 190 KB).
"""
import math
import os
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_inception_weights as conv  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_op_goldens import save_if_changed  # noqa: E402
from synthetic_weights import fnv1a64, splitmix_stream, synthetic  # noqa: E402

from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3  # noqa: E402

OUT = os.path.join(ROOT, "tests", "goldens", "inception", "parity.safetensors")
# A tiny torch.save'd state dict for the converter's CI test (tests/eval/convert_inception_check.py),
# which has no torch: the zip format, a float64 tensor, an int64 counter and a "module." prefix.
TINY_PTH = os.path.join(ROOT, "tests", "goldens", "inception", "tiny_state.pth")
# (tag, N, H, W): the sizes, non-square included; "s64" has two images (a batch).
IMAGES = [("s64", 2, 64, 64), ("s256", 1, 256, 256), ("s299", 1, 299, 299), ("s200x300", 1, 200, 300)]
F64_TAGS = ("s64",)


def kind_of(name, shape):
    """(t offset, a) with t = 2u + offset: the formula's per-kind scale."""
    if name.endswith(".conv.weight"):
        return -1.0, math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
    if name.endswith(".bn.weight") or name.endswith(".bn.running_var"):
        return 1.0, 0.5
    if name.endswith(".bn.bias") or name.endswith(".bn.running_mean") or name == "fc.bias":
        return -1.0, 0.1
    if name == "fc.weight":
        return -1.0, math.sqrt(6.0 / 2048)
    raise ValueError(name)


def param_values(name, shape):
    off, a = kind_of(name, shape)
    return synthetic(name, shape, off, a)


def image(tag, n, h, w):
    z = splitmix_stream(fnv1a64("image:" + tag), n * h * w * 3)
    return (z >> np.uint64(56)).astype(np.uint8).reshape(n, h, w, 3)


def param_shapes():
    """torch-fidelity's parameter names and shapes (num_batches_tracked excluded), from a module
    built without loading weights."""
    orig = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, sd, *a, **k: None
    real_load = torch.load
    torch.load = lambda *a, **k: {}
    try:
        m = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                        feature_extractor_weights_path="unused")
    finally:
        FeatureExtractorInceptionV3.load_state_dict = orig
        torch.load = real_load
    return [(k, tuple(v.shape)) for k, v in m.state_dict().items()
            if not k.endswith("num_batches_tracked")]


def run_torch(pth, imgs, dtype):
    """torch-fidelity's forward. For float64 (its feature_extractor_internal_dtype option maps
    "float64" to float32 in this version, and its outputs are cast to float32) the module is
    converted with .double() and the internal dtype set by hand; pool features come from a hook
    on AvgPool (before the cast) and the unbiased logits are pool @ fc.weight^T, as its forward."""
    m = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                    feature_extractor_weights_path=pth)
    if dtype == torch.float64:
        m = m.double()
        m.feature_extractor_internal_dtype = torch.float64
    seen = {}
    m.Mixed_6d.branch1x1.register_forward_hook(lambda mod, i, o: seen.__setitem__("spatial", o))
    m.AvgPool.register_forward_hook(lambda mod, i, o: seen.__setitem__("pool", o))
    with torch.no_grad():
        pool32, logits32 = m(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous())
        sp = seen["spatial"][:, :7].permute(0, 2, 3, 1).reshape(imgs.shape[0], -1)
        if dtype == torch.float64:
            pool = seen["pool"].flatten(1)
            return pool, pool.mm(m.fc.weight.T), sp
    return pool32, logits32, sp


def write_tiny_pth():
    state = {"module.Conv2d_1a_3x3.conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3, 1, 1) * 0.5,
             "module.Conv2d_1a_3x3.bn.running_var": torch.linspace(0.5, 2.0, 2, dtype=torch.float64),
             "module.Conv2d_1a_3x3.bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
             # a non-contiguous source (a transposed view) exercises the strided rebuild
             "module.fc.bias": torch.arange(12, dtype=torch.float32).reshape(3, 4).t().contiguous().t()[0]}
    if os.path.exists(TINY_PTH):  # keep the committed bytes when the content is the same
        old = torch.load(TINY_PTH, weights_only=True)
        if old.keys() == state.keys() and all(
                old[k].dtype == v.dtype and torch.equal(old[k], v) for k, v in state.items()):
            return
    torch.save(state, TINY_PTH)


def main():
    write_tiny_pth()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    shapes = param_shapes()
    state = {name: torch.from_numpy(param_values(name, shape)) for name, shape in shapes}
    print(f"{len(state)} tensors, {sum(v.numel() for v in state.values())} parameters",
          file=sys.stderr)
    out = {}
    meta = {"generator": "tests/reference/make_inception_golden.py", "torch": torch.__version__,
            "images": ",".join(f"{t}:{n}x{h}x{w}" for t, n, h, w in IMAGES),
            "f64": ",".join(F64_TAGS)}
    import torch_fidelity
    meta["torch_fidelity"] = torch_fidelity.__version__
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "inception-random.pth")
        torch.save(state, pth)
        # The converter path: both readers give exactly the formula's tensors.
        for use_torch in (False, True):
            got = conv.convert(conv.load_pth(pth, use_torch=use_torch), pth)
            assert set(got) == set(state), "converter changed the name set"
            for k, v in got.items():
                assert v.dtype == np.float32 and np.array_equal(v, state[k].numpy()), k
        print("converter: both readers reproduce the formula's tensors", file=sys.stderr)
        for tag, n, h, w in IMAGES:
            imgs = image(tag, n, h, w)
            pool, logits, sp = run_torch(pth, imgs, torch.float32)
            out[f"{tag}.pool"], out[f"{tag}.logits"], out[f"{tag}.spatial"] = pool, logits, sp
            if tag in F64_TAGS:
                p64, l64, s64 = run_torch(pth, imgs, torch.float64)
                out[f"{tag}.pool_f64"], out[f"{tag}.logits_f64"] = p64, l64
                out[f"{tag}.spatial_f64"] = s64
                for a, b, what in ((pool, p64, "pool"), (logits, l64, "logits"), (sp, s64, "spatial")):
                    err = (a.double() - b).abs().max().item() / b.abs().max().item()
                    print(f"  torch f32 vs f64 {tag} {what}: normalized error {err:.2e}", file=sys.stderr)
            print(f"  {tag}: pool max {pool.abs().max():.3f} mean {pool.mean():.3f}, logits max "
                  f"{logits.abs().max():.3f}, spatial max {sp.abs().max():.3f}", file=sys.stderr)
        # A few formula values, so the C++ side can tell a formula slip from a model bug.
        for name in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.weight"):
            out["check." + name] = state[name].flatten()[:8].clone()
    out = {k: v.contiguous() for k, v in out.items()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_if_changed(out, OUT, meta)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
