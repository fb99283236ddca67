#!/usr/bin/env python3
"""torch-fidelity's FID Inception-v3 (FeatureExtractorInceptionV3, "inception-v3-compat") feature
throughput, the reference for bench/inception_bench_cuda.cpp (run side by side by
tests/device/check.sh). Same work as ours: uint8 (N, 256, 256, 3) images on the host, batches
copied to the device, torch-fidelity's own resize and network, "2048" + "logits_unbiased"
features plus the Mixed_6d.branch1x1 output (the sFID tensor) through a hook. Random weights
(no download; the network's cost does not depend on them). PyTorch defaults otherwise, as
torch-fidelity runs: eager, float32, cudnn.allow_tf32 = True (TF32 convolutions), the matmul
in float32; --no-tf32 turns TF32 off for the fp32 comparison.

torch_fidelity is imported normally, or (on the device machine, where it is not installed) from
--fidelity-dir, a copy of the package directory (tests/device/prepare.sh bundles it); its
package __init__ is bypassed so only the Inception module's own imports (torch) are needed.
Prints one JSON line per batch size:
  {"name": "inception-torch-tf32", "ok": true, "batch": 64, "images": 5000, "images_per_s": ...}
"""
import argparse
import importlib
import json
import os
import sys
import time
import types


def import_inception(fidelity_dir):
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        return FeatureExtractorInceptionV3
    except ImportError:
        if not fidelity_dir:
            raise
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = [os.path.abspath(fidelity_dir)]
    sys.modules["torch_fidelity"] = pkg
    return importlib.import_module("torch_fidelity.feature_extractor_inceptionv3").FeatureExtractorInceptionV3


def build(cls, torch, device):
    """torch-fidelity's module with its default (random) initialisation: its constructor's
    weight loading is skipped."""
    orig_load, orig_sd = torch.load, cls.load_state_dict
    torch.load = lambda *a, **k: {}
    cls.load_state_dict = lambda self, sd, *a, **k: None
    try:
        m = cls("inception-v3-compat", ["2048", "logits_unbiased"],
                feature_extractor_weights_path="unused")
    finally:
        torch.load, cls.load_state_dict = orig_load, orig_sd
    return m.to(device).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--batches", default="64,200")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-tf32", action="store_true")
    ap.add_argument("--fidelity-dir", default="")
    args = ap.parse_args()
    import torch
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    tag = "fp32" if args.no_tf32 else "tf32"
    name = f"inception-torch-{tag}" if args.device != "cpu" else "inception-torch-cpu"
    try:
        cls = import_inception(args.fidelity_dir)
        m = build(cls, torch, args.device)
    except Exception as e:  # noqa: BLE001  (report, do not crash the check)
        print(json.dumps({"name": name, "ok": False, "error": str(e)[:300]}), flush=True)
        return 1
    seen = {}
    m.Mixed_6d.branch1x1.register_forward_hook(lambda mod, i, o: seen.__setitem__("s", o))
    g = torch.Generator().manual_seed(0)
    pool_n = min(args.pool, args.images)
    pool = torch.randint(0, 256, (pool_n, args.size, args.size, 3), dtype=torch.uint8, generator=g)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for batch in [int(b) for b in args.batches.split(",") if b]:
        try:
            def run(n_images):
                done = 0
                while done < n_images:
                    start = done % pool_n
                    n = min(batch, n_images - done, pool_n - start)
                    x = pool[start:start + n].to(args.device, non_blocking=False).permute(0, 3, 1, 2)
                    with torch.no_grad():
                        pool_f, logits = m(x)
                        spatial = seen["s"][:, :7].permute(0, 2, 3, 1).reshape(n, -1)
                    done += n
                return pool_f, logits, spatial
            t0 = time.perf_counter()
            run(min(batch, args.images))
            sync()
            warmup = time.perf_counter() - t0
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            run(args.images)
            sync()
            s = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated() / 1e9 if args.device.startswith("cuda") else 0
            print(json.dumps({"name": name, "ok": True, "batch": batch, "images": args.images,
                              "size": args.size, "images_per_s": round(args.images / s, 2),
                              "seconds": round(s, 3), "warmup_s": round(warmup, 3),
                              "peak_mem_gb": round(peak, 3), "torch": torch.__version__}),
                  flush=True)
        except Exception as e:  # noqa: BLE001
            print(json.dumps({"name": name, "ok": False, "batch": batch, "error": str(e)[:300]}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
