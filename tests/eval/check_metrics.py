#!/usr/bin/env python3
"""The `rae eval` CLI against the reference definitions (tests/reference/eval_reference.py).

  check_metrics.py make DIR      writes DIR/samples.npz, DIR/ref.npz (features), DIR/ref_adm.npz
                                 (ADM layout: mu, sigma, mu_s, sigma_s + pool) and DIR/expected.json
  check_metrics.py compare DIR   checks DIR/m_*.json (written by eval_cli.sh) against expected.json
                                 and against each other
  check_metrics.py bad DIR       writes the malformed inputs of the error tests
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reference"))
import eval_reference as ref  # noqa: E402

METRICS = ("fid", "sfid", "inception_score", "precision", "recall")


def features(rng, n, shift, scale):
    pool = (rng.normal(size=(n, 64)) * scale + shift).astype(np.float32)
    spatial = (rng.normal(size=(n, 40)) * scale + shift * 0.5).astype(np.float32)
    logits = (rng.normal(size=(n, 12)) * 2 + np.linspace(0, 1, 12)).astype(np.float32)
    return {"pool": pool, "spatial": spatial, "logits": logits}


def precision_recall_blocked(reference, samples, k=3):
    """eval_reference.precision_recall in row blocks (the full 5200 x 5200 matrix is not needed)."""
    def radii(x):
        out = np.empty(len(x))
        for i in range(0, len(x), 1000):
            out[i:i + 1000] = np.partition(ref.squared_distances(x[i:i + 1000], x), k, axis=1)[:, k]
        return out
    r_ref, r_smp = radii(reference), radii(samples)
    in_ref = np.zeros(len(samples), bool)
    gap_s_min = np.inf
    gap_r = np.full(len(reference), np.inf)  # per reference vector, min over all samples
    for i in range(0, len(samples), 1000):
        d = ref.squared_distances(samples[i:i + 1000], reference)
        gap_s = ((d - r_ref[None, :]) / r_ref[None, :]).min(axis=1)
        in_ref[i:i + 1000] = gap_s <= 0
        gap_s_min = min(gap_s_min, np.abs(gap_s).min())
        gap_r = np.minimum(gap_r, ((d - r_smp[i:i + 1000, None]) / r_smp[i:i + 1000, None]).min(axis=0))
    in_smp = gap_r <= 0
    margin = min(gap_s_min, np.abs(gap_r).min())
    return float(in_ref.mean()), float(in_smp.mean()), margin


def make(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(12)
    # 5200 samples: IS over two ADM splits (5000 + 200); several CPU row blocks for the ranks.
    smp = features(rng, 5200, 0.1, 1.0)
    rf = features(rng, 1500, 0.0, 1.1)
    np.savez(os.path.join(d, "samples.npz"), **smp)
    np.savez(os.path.join(d, "ref.npz"), pool=rf["pool"], spatial=rf["spatial"])
    mu, sigma = ref.statistics(rf["pool"])
    mu_s, sigma_s = ref.statistics(rf["spatial"])
    np.savez(os.path.join(d, "ref_adm.npz"), mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s,
             pool=rf["pool"])
    m1, s1 = ref.statistics(smp["pool"])
    m1s, s1s = ref.statistics(smp["spatial"])
    precision, recall, margin = precision_recall_blocked(rf["pool"], smp["pool"])
    assert margin > 1e-5, f"precision/recall decisions too close to call ({margin})"
    expected = {
        "fid": ref.frechet_distance(m1, s1, mu, sigma),
        "sfid": ref.frechet_distance(m1s, s1s, mu_s, sigma_s),
        "inception_score": ref.inception_score(smp["logits"])[0],
        "inception_score_splits": ref.inception_score(smp["logits"])[1],
        "precision": precision,
        "recall": recall,
        "decision_margin": margin,
    }
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("expected:", {k: expected[k] for k in METRICS})


def load(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def compare(d):
    exp = load(d, "expected.json")
    failures = []

    def check(name, a, b, key, tol, relative):
        diff = abs(a[key] - b[key])
        bound = tol * abs(b[key]) if relative else tol
        status = "ok" if diff <= bound else "FAIL"
        print(f"{status:4} {name:34} {key:16} {a[key]!r:24} vs {b[key]!r:24} diff {diff:.2e}")
        if diff > bound:
            failures.append(f"{name} {key}")

    tolerances = {"fid": (1e-6, True), "sfid": (1e-6, True), "inception_score": (1e-9, True),
                  "precision": (0, False), "recall": (0, False)}
    runs = sorted(f for f in os.listdir(d) if f.startswith("m_") and f.endswith(".json"))
    assert "m_np1.json" in runs, runs
    base = load(d, "m_np1.json")
    for run in runs:
        m = load(d, run)
        for key, (tol, relative) in tolerances.items():
            check(f"{run} vs reference", m, exp, key, tol, relative)
        if run != "m_np1.json":
            for key in METRICS:  # any rank count, any input layout: the same numbers
                check(f"{run} vs m_np1.json", m, base, key, 1e-9, False)
    assert base["counts"]["samples"] == 5200 and base["counts"]["reference_vectors"] == 1500
    assert base["inception_score_splits"] == [
        base["inception_score_splits"][0], base["inception_score_splits"][1]]
    # The stats file written by `rae eval stats` holds numpy's statistics and the pool rows.
    st = np.load(os.path.join(d, "ref_stats.npz"))
    rf = np.load(os.path.join(d, "ref.npz"))
    mu, sigma = ref.statistics(rf["pool"])
    for key, want in (("mu", mu), ("sigma", sigma)):
        err = np.abs(st[key] - want).max() / np.abs(want).max()
        print(f"{'ok' if err < 1e-12 else 'FAIL':4} ref_stats.npz {key} relative error {err:.2e}")
        if err >= 1e-12:
            failures.append(f"ref_stats {key}")
    if not np.array_equal(st["pool"], rf["pool"]):
        failures.append("ref_stats pool rows")
    if failures:
        print("FAILED:", ", ".join(failures))
        sys.exit(1)
    print("all metrics agree")


def bad(d):
    os.makedirs(d, exist_ok=True)
    np.savez(os.path.join(d, "float_images.npz"), arr_0=np.zeros((4, 8, 8, 3), np.float32))
    np.savez(os.path.join(d, "channels_first.npz"), arr_0=np.zeros((4, 3, 8, 8), np.uint8))
    np.savez(os.path.join(d, "images.npz"), arr_0=np.zeros((4, 8, 8, 3), np.uint8))
    rng = np.random.default_rng(1)
    np.savez(os.path.join(d, "feats.npz"), **features(rng, 50, 0.0, 1.0))
    f = features(rng, 50, 0.0, 1.0)
    np.savez(os.path.join(d, "feats_pool63.npz"), pool=f["pool"][:, :63], spatial=f["spatial"],
             logits=f["logits"])
    with open(os.path.join(d, "feats.npz"), "rb") as src:
        data = src.read()
    with open(os.path.join(d, "truncated.npz"), "wb") as dst:
        dst.write(data[: len(data) // 2])


if __name__ == "__main__":
    {"make": make, "compare": compare, "bad": bad}[sys.argv[1]](sys.argv[2])
