#!/usr/bin/env python3
"""tools/convert_stage1_weights.py round trips (skipped, exit 77, without torch/torchvision/timm):
  lpips: torchvision's VGG16 state dict (features + classifier) and the lpips package's
         vgg.pth (lin heads), torch.save'd; also a whole lpips.LPIPS state dict alone. The
         output holds exactly the 26 VGG16 feature tensors and 5 heads (the names and shapes
         models/lpips.cpp reads), values equal to the inputs.
  dino:  timm's vit_small_patch8_224 state dict under a "module." prefix (DDP), head dropped;
         the blocks, embeddings and norm kept with their values.
Usage: convert_weights_check.py SRC_DIR WORK_DIR
"""
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torchvision
    import timm
    import safetensors.numpy  # noqa: F401
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

src, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
tool = os.path.join(src, "tools", "convert_stage1_weights.py")


def run(*args):
    subprocess.run([sys.executable, tool, *args], check=True)


def load(path):
    from safetensors.numpy import load_file
    return load_file(path)


torch.manual_seed(0)
vgg = torchvision.models.vgg16(weights=None).state_dict()
torch.save(vgg, os.path.join(work, "vgg16.pth"))
lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate([64, 128, 256, 512, 512])}
torch.save(lins, os.path.join(work, "vgg_lin.pth"))
run("lpips", "--vgg", os.path.join(work, "vgg16.pth"), "--lin", os.path.join(work, "vgg_lin.pth"),
    "--out", os.path.join(work, "lpips.safetensors"))
out = load(os.path.join(work, "lpips.safetensors"))
convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
want = {f"features.{i}.{leaf}" for i in convs for leaf in ("weight", "bias")} | set(lins)
assert set(out) == want, sorted(set(out) ^ want)
for n in want:
    ref = (vgg[n] if n.startswith("features.") else lins[n]).numpy()
    assert out[n].shape == ref.shape and np.array_equal(out[n], ref), n

# A whole lpips.LPIPS state dict (net.sliceK.N.* and the heads) converts alone.
whole = {}
slices = {i: k for k, r in enumerate([range(0, 4), range(4, 9), range(9, 16), range(16, 23), range(23, 30)], 1)
          for i in r}
for n, v in vgg.items():
    if n.startswith("features."):
        i, leaf = int(n.split(".")[1]), n.split(".")[2]
        whole[f"net.slice{slices[i]}.{i}.{leaf}"] = v
whole.update(lins)
whole["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
torch.save(whole, os.path.join(work, "lpips_whole.pth"))
run("lpips", "--vgg", os.path.join(work, "lpips_whole.pth"), "--out", os.path.join(work, "lpips2.safetensors"))
out2 = load(os.path.join(work, "lpips2.safetensors"))
assert set(out2) == want and all(np.array_equal(out2[n], out[n]) for n in want)

vit = timm.create_model("vit_small_patch8_224", pretrained=False).state_dict()
torch.save({"module." + k: v for k, v in vit.items()}, os.path.join(work, "dino.pth"))
run("dino", os.path.join(work, "dino.pth"), "--out", os.path.join(work, "dino.safetensors"))
d = load(os.path.join(work, "dino.safetensors"))
kept = {k for k in vit if not k.startswith("head")}
assert set(d) == kept, sorted(set(d) ^ kept)
assert all(np.array_equal(d[k], vit[k].numpy()) for k in kept)
assert d["pos_embed"].shape == (1, 785, 384) and d["patch_embed.proj.weight"].shape == (384, 3, 8, 8)
print(f"lpips: {len(out)} tensors, dino: {len(d)} tensors: converted exactly")
