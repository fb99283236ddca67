#!/usr/bin/env python3
"""The decoder converter round trip: tools/convert_rae_checkpoint.py decoder on the committed
release-layout file (tests/goldens/decoder/release_decoder.pt, a bare GeneralDecoder state dict)
and on a stage-1 training checkpoint built from it ({"model"/"ema": RAE state dict with
"decoder." names and encoder tensors}) must both give the tensors and the model type and config of the
committed converted_decoder.safetensors (which the C++ test loads by name). Needs torch; exits 77
(skipped) without it.
Usage: convert_decoder_roundtrip.py SOURCE_DIR WORK_DIR
"""
import json
import os
import subprocess
import sys

try:
    import torch
    from safetensors.torch import load_file
    from safetensors import safe_open
except ImportError:
    print("torch/safetensors not installed: skipped")
    sys.exit(77)

src, work = sys.argv[1:3]
os.makedirs(work, exist_ok=True)
gold = os.path.join(src, "tests", "goldens", "decoder")
tool = os.path.join(src, "tools", "convert_rae_checkpoint.py")
expect = load_file(os.path.join(gold, "converted_decoder.safetensors"))
with safe_open(os.path.join(gold, "converted_decoder.safetensors"), "pt") as f:
    assert f.metadata()["model_type"] == "ViTDecoder", f.metadata()
    expect_cfg = json.loads(f.metadata()["model_config"])

bare = torch.load(os.path.join(gold, "release_decoder.pt"), map_location="cpu", weights_only=True)
ckpt = {"ema": {"module.decoder." + k: v for k, v in bare.items()},
        "model": {"decoder." + k: torch.zeros_like(v) for k, v in bare.items()},
        "epoch": 3}
ckpt["ema"]["module.encoder.layer.0.weight"] = torch.ones(3)
torch.save(ckpt, os.path.join(work, "stage1_ckpt.pt"))

for name, pt in (("bare", os.path.join(gold, "release_decoder.pt")),
                 ("stage1", os.path.join(work, "stage1_ckpt.pt"))):
    out = os.path.join(work, name + ".safetensors")
    subprocess.run([sys.executable, tool, "decoder", pt, out, "--num-heads", "2"], check=True)
    got = load_file(out)
    assert sorted(got) == sorted(expect), (name, sorted(set(got) ^ set(expect)))
    for k in expect:
        assert torch.equal(got[k], expect[k]), (name, k)
    with safe_open(out, "pt") as f:
        assert f.metadata()["model_type"] == "ViTDecoder", (name, f.metadata())
        cfg = json.loads(f.metadata()["model_config"])
    assert cfg == expect_cfg, (name, cfg, expect_cfg)
    print(f"{name}: {len(got)} tensors, model type and config as committed")
