#!/usr/bin/env python3
"""Convert the frozen networks of stage-1 training to safetensors for rae decoder-train.

  convert_stage1_weights.py lpips --vgg VGG16.pth --lin LIN.pth --out lpips.safetensors
  convert_stage1_weights.py dino IN.pth --out dino.safetensors

lpips: the LPIPS(net="vgg") perceptual loss (models/lpips.h). --vgg is torchvision's VGG16
  ImageNet weights (vgg16-397923af.pth: features.N.weight/bias; the classifier is dropped) or a
  whole lpips.LPIPS state dict (net.sliceK.N.*); --lin holds the five linear heads
  lin{0..4}.model.1.weight (1, C, 1, 1): the lpips package's weights/v0.1/vgg.pth, or the RAE
  release's vgg_lpips checkpoint (taming-transformers' vgg.pth; same names). --lin may be omitted
  when --vgg is a whole LPIPS state dict. Written: features.{0,2,...,28}.weight (O, C, 3, 3),
  .bias (O), lin{k}.model.1.weight (1, C, 1, 1), float32, names and layouts as published.

dino: the GAN discriminator's frozen DINO ViT (the release's gan.disc.arch.dino_ckpt_path, e.g.
  dino_vit_small_patch8_224.pth, or timm's vit_small_patch8_224.dino): timm names cls_token,
  pos_embed, patch_embed.proj.*, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*,
  norm.* kept (a "module." or "backbone." prefix stripped; head.* and other extras dropped with a
  note). The release zeroes the key third of every attn.qkv.bias at load; rae does the same when
  it loads the file (softmax ignores it), so the values here are the published ones.

Reading needs no PyTorch for zip-format .pth files (torch.save since 1.6), through
convert_inception_weights.py's restricted unpickler; nothing is downloaded.
"""
import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_inception_weights import load_pth  # noqa: E402

VGG_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
             (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512),
             (26, 512, 512), (28, 512, 512)]
LIN_CHANNELS = [64, 128, 256, 512, 512]


def strip(name):
    for p in ("module.", "backbone."):
        if name.startswith(p):
            name = name[len(p):]
    return name


def lpips_tensors(vgg, lin, vgg_path, lin_path):
    out = {}
    for key, value in vgg.items():
        name = strip(key)
        m = re.fullmatch(r"net\.slice\d\.(\d+)\.(weight|bias)", name)
        if m:  # a whole lpips.LPIPS state dict
            name = f"features.{m.group(1)}.{m.group(2)}"
        if name.startswith("features."):
            out[name] = np.asarray(value)
        elif re.fullmatch(r"lin\d\.model\.1\.weight", name) and lin is None:
            out[name] = np.asarray(value)
    for key, value in (lin or {}).items():
        name = strip(key)
        if re.fullmatch(r"lin\d\.model\.1\.weight", name):
            out[name] = np.asarray(value)
    for i, ci, co in VGG_CONVS:
        for leaf, shape in (("weight", (co, ci, 3, 3)), ("bias", (co,))):
            n = f"features.{i}.{leaf}"
            if n not in out:
                raise ValueError(f"{vgg_path}: missing '{n}' (not torchvision's VGG16?)")
            if out[n].shape != shape:
                raise ValueError(f"{vgg_path}: '{n}' has shape {out[n].shape}, expected {shape}")
    for k, c in enumerate(LIN_CHANNELS):
        n = f"lin{k}.model.1.weight"
        if n not in out:
            raise ValueError(f"{lin_path or vgg_path}: missing '{n}' (the LPIPS linear heads)")
        if out[n].shape != (1, c, 1, 1):
            raise ValueError(f"{lin_path}: '{n}' has shape {out[n].shape}, expected (1, {c}, 1, 1)")
        if (out[n] < 0).any():
            print(f"note: {n} has negative weights (trained LPIPS heads are non-negative)",
                  file=sys.stderr)
    keep = {f"features.{i}.{leaf}" for i, _, _ in VGG_CONVS for leaf in ("weight", "bias")}
    keep |= {f"lin{k}.model.1.weight" for k in range(5)}
    return {n: np.ascontiguousarray(v, dtype=np.float32) for n, v in out.items() if n in keep}


DINO_LEAF = re.compile(r"(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)|"
                       r"blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias))")


def dino_tensors(state, path):
    out, dropped = {}, []
    for key, value in state.items():
        name = strip(key)
        if DINO_LEAF.fullmatch(name):
            out[name] = np.ascontiguousarray(np.asarray(value), dtype=np.float32)
        else:
            dropped.append(name)
    for n in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight"):
        if n not in out:
            raise ValueError(f"{path}: missing '{n}' (not a timm/DINO ViT state dict?)")
    if dropped:
        print(f"note: dropped {len(dropped)} tensors not used by the discriminator: "
              f"{', '.join(sorted(dropped)[:5])}{' ...' if len(dropped) > 5 else ''}", file=sys.stderr)
    return out


def save(tensors, out, fmt, sources):
    from safetensors.numpy import save_file
    tmp = out + ".tmp"
    save_file(tensors, tmp, metadata={"format": fmt, "source": ",".join(os.path.basename(s) for s in sources),
                                      "converter": "tools/convert_stage1_weights.py"})
    os.replace(tmp, out)
    print(f"wrote {len(tensors)} tensors to {out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    lp = sub.add_parser("lpips", help="VGG16 + LPIPS heads")
    lp.add_argument("--vgg", required=True)
    lp.add_argument("--lin")
    lp.add_argument("--out", required=True)
    dn = sub.add_parser("dino", help="the discriminator's DINO ViT")
    dn.add_argument("input")
    dn.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.what == "lpips":
        vgg = load_pth(a.vgg)
        lin = load_pth(a.lin) if a.lin else None
        save(lpips_tensors(vgg, lin, a.vgg, a.lin), a.out, "rae-lpips-vgg", [a.vgg] + ([a.lin] if a.lin else []))
    else:
        save(dino_tensors(load_pth(a.input), a.input), a.out, "rae-dino-vit", [a.input])


if __name__ == "__main__":
    main()
