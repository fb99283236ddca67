#!/usr/bin/env python3
"""CI check of tools/convert_inception_weights.py without PyTorch: its zip reader on a real
torch.save'd file (tests/goldens/inception/tiny_state.pth, written by
tests/reference/make_inception_golden.py), and convert()'s name and shape rules. (The full
conversion of a 24M-parameter Inception, with both readers, is checked bit for bit by that
generator against the weights torch-fidelity's module then loads.)
Usage: convert_inception_check.py REPO_ROOT"""
import os
import sys

import numpy as np

root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "tools"))
import convert_inception_weights as conv  # noqa: E402

state = conv.load_pth(os.path.join(root, "tests", "goldens", "inception", "tiny_state.pth"),
                      use_torch=False)
w = state["module.Conv2d_1a_3x3.conv.weight"]
assert w.dtype == np.float32 and w.shape == (2, 3, 1, 1), (w.dtype, w.shape)
assert np.array_equal(w.ravel(), np.arange(6, dtype=np.float32) * 0.5), w.ravel()
rv = state["module.Conv2d_1a_3x3.bn.running_var"]
assert rv.dtype == np.float64 and np.array_equal(rv, [0.5, 2.0]), rv
assert int(state["module.Conv2d_1a_3x3.bn.num_batches_tracked"]) == 7
assert np.array_equal(state["module.fc.bias"], [0, 1, 2, 3]), state["module.fc.bias"]  # strided


def error_of(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return ""


# convert(): "module." stripped, num_batches_tracked dropped, float32 out, required names checked.
full = {"module." + k: v for k, v in {
    "fc.weight": np.zeros((1008, 2048), np.float32), "fc.bias": np.zeros(1008, np.float64),
    "Conv2d_1a_3x3.conv.weight": np.zeros((32, 3, 3, 3), np.float32),
    "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(3),
    "Mixed_7c.branch_pool.bn.running_var": np.ones(192, np.float32)}.items()}
out = conv.convert(full, "x.pth")
assert set(out) == {"fc.weight", "fc.bias", "Conv2d_1a_3x3.conv.weight",
                    "Mixed_7c.branch_pool.bn.running_var"}, sorted(out)
assert all(v.dtype == np.float32 for v in out.values())
msg = error_of(lambda: conv.convert({**full, "AuxLogits.fc.weight": np.zeros((1000, 768))}, "x.pth"))
assert "AuxLogits.fc.weight" in msg and "x.pth" in msg, msg
msg = error_of(lambda: conv.convert({**full, "module.fc.weight": np.zeros((1000, 2048))}, "x.pth"))
assert "fc.weight" in msg and "(1000, 2048)" in msg, msg
msg = error_of(lambda: conv.convert({k: v for k, v in full.items() if "fc.bias" not in k}, "x.pth"))
assert "missing tensor 'fc.bias'" in msg, msg
print("convert_inception_weights: zip reader and name rules OK")
