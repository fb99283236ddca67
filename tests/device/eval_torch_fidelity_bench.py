#!/usr/bin/env python3
"""PyTorch reference for the `rae eval` feature throughput: torch-fidelity's
FeatureExtractorInceptionV3 ("inception-v3-compat", features "2048" and "logits_unbiased") on N
random 256 x 256 uint8 images, batch B, fp32, on the GPU. The weights are the parity golden's
pseudo-random ones (tests/reference/make_inception_golden.py; timing does not depend on them and
nothing is downloaded). The images come from host memory as uint8 NCHW batches, as torch-fidelity's
own loop feeds them. Prints one JSON line: images_per_s (steady state, after one warm-up batch)."""
import argparse
import json
import os
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    out = dict(name="torch-fidelity-inception", images=a.images, batch=a.batch, size=a.size)
    try:
        import numpy as np
        import torch
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sys.path.insert(0, os.path.join(root, "tests", "reference"))
        import make_inception_golden as golden
        state = {name: torch.from_numpy(golden.param_values(name, shape))
                 for name, shape in golden.param_shapes()}
        with tempfile.TemporaryDirectory() as tmp:
            pth = os.path.join(tmp, "synthetic.pth")
            torch.save(state, pth)
            model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                feature_extractor_weights_path=pth)
        model = model.cuda().eval()
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, size=(min(a.images, 1000), 3, a.size, a.size), dtype=np.uint8)
        host = torch.from_numpy(base).pin_memory()
        with torch.inference_mode():
            model(host[: a.batch].cuda(non_blocking=True))  # warm-up (cuDNN autotuning etc.)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            done = 0
            while done < a.images:
                n = min(a.batch, a.images - done)
                start = done % len(base)
                x = host[start:start + n]
                if len(x) < n:
                    x = torch.cat([x, host[: n - len(x)]])
                feats = model(x.cuda(non_blocking=True))
                _ = [f.cpu() for f in feats]  # features back on the host, as the metrics need
                done += n
            torch.cuda.synchronize()
            s = time.perf_counter() - t0
        out.update(ok=True, seconds=s, images_per_s=a.images / s,
                   torch=torch.__version__, gpu=torch.cuda.get_device_name())
    except Exception as e:  # report, do not crash the check
        out.update(ok=False, error=f"{type(e).__name__}: {e}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
