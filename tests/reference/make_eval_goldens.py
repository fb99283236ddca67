#!/usr/bin/env python3
"""Writes tests/goldens/eval/*.npz: inputs (float16 values, exact in float32) and the metrics the
reference definitions in eval_reference.py give on them (FID with scipy.linalg.sqrtm, Inception
Score, precision/recall). Run through tests/reference/regen_goldens.sh; needs numpy and scipy.
"""
import os
import sys

import numpy as np
import scipy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_reference as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "eval")


def f16(x):
    return np.asarray(x, dtype=np.float16)


def fid_cases(rng):
    d = 32
    cases = {}
    # Random: correlated Gaussians with different means and covariances.
    a1, a2 = rng.normal(size=(d, d)), rng.normal(size=(d, d)) * 0.7
    cases["random"] = (rng.normal(size=(300, d)) @ a1, rng.normal(size=(300, d)) @ a2 + 0.4)
    # Rank-deficient: fewer samples than dimensions, so both covariances are singular and the
    # product has zero eigenvalues (scipy's sqrtm warns; the trace still converges).
    cases["rankdef"] = (rng.normal(size=(24, d)), rng.normal(size=(20, d)) * 1.2 + 0.1)
    # Ill-conditioned: a spectrum from 1 down to 1e-6 (variances), rotated differently per set.
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    spec = np.diag(np.logspace(0, -3, d))
    cases["illcond"] = (rng.normal(size=(200, d)) @ spec @ q1, rng.normal(size=(200, d)) @ spec @ q2)
    # Same distribution: two halves of one sample; FID is small next to the traces.
    x = rng.normal(size=(400, d)) @ a1
    cases["samedist"] = (x[:200], x[200:])
    arrays = {}
    for name, (x1, x2) in cases.items():
        x1, x2 = f16(x1), f16(x2)
        m1, s1 = ref.statistics(x1)
        m2, s2 = ref.statistics(x2)
        arrays[f"{name}_x1"], arrays[f"{name}_x2"] = x1, x2
        arrays[f"{name}_fid"] = np.array([ref.frechet_distance(m1, s1, m2, s2)])
        arrays[f"{name}_mu1"], arrays[f"{name}_sigma1"] = m1, s1
        print(f"fid {name}: {arrays[f'{name}_fid'][0]:.12g}", file=sys.stderr)
    # Identical statistics: FID = 0 up to rounding (checked with an absolute tolerance).
    m1, s1 = ref.statistics(arrays["random_x1"])
    arrays["identical_fid"] = np.array([ref.frechet_distance(m1, s1, m1, s1)])
    return arrays


def is_case(rng):
    # 5500 samples: the default split size 5000 gives a full and a partial split.
    logits = f16(rng.normal(size=(5500, 10)) * 3 + np.linspace(0, 2, 10))
    arrays = {"logits": logits}
    for split in (5000, 1000):
        score, splits = ref.inception_score(logits, split)
        arrays[f"is_{split}"] = np.array([score])
        arrays[f"is_{split}_splits"] = np.array(splits)
        print(f"IS split {split}: {score:.12g} over {len(splits)} splits", file=sys.stderr)
    return arrays


def pr_case(rng):
    d = 32
    for attempt in range(100):
        reference = f16(rng.normal(size=(300, d)))
        samples = f16(rng.normal(size=(400, d)) * 0.8 + 0.25)
        margin = ref.decision_margin(reference, samples)
        if margin > 1e-4:
            break
    else:
        raise RuntimeError("no draw with a safe decision margin")
    precision, recall, r_ref, r_smp, _ = ref.precision_recall(reference, samples)
    print(f"PR: precision {precision} recall {recall} (margin {margin:.2e})", file=sys.stderr)
    return {"reference": reference, "samples": samples, "radii_reference": r_ref,
            "radii_samples": r_smp, "precision": np.array([precision]),
            "recall": np.array([recall])}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20260212)
    print(f"numpy {np.__version__} scipy {scipy.__version__}", file=sys.stderr)
    for name, fn in (("fid_cases", fid_cases), ("is_case", is_case), ("pr_case", pr_case)):
        path = os.path.join(OUT, f"{name}.npz")
        np.savez(path, **fn(rng))
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
