#!/usr/bin/env python3
"""The `rae eval` CLI against the reference definitions (tests/reference/eval_reference.py).

  check_metrics.py make DIR      writes DIR/samples.npz, DIR/ref.npz (features), DIR/ref_adm.npz
                                 (ADM layout: mu, sigma, mu_s, sigma_s + pool) and DIR/expected.json
  check_metrics.py compare DIR   checks DIR/m_*.json (written by eval_cli.sh) against expected.json
                                 and against each other
  check_metrics.py bad DIR       writes the malformed inputs of the error tests
  check_metrics.py images DIR    writes DIR/images.npz (5 images) and DIR/refdir/*.png (4 images)
  check_metrics.py check_images DIR   checks the network run's outputs (eval_cli.sh network)
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


def png_bytes(img):
    """A minimal RGB PNG writer (zlib, filter 0): no imaging package needed."""
    import struct
    import zlib
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + \
        chunk(b"IEND", b"")


def images(d):
    os.makedirs(os.path.join(d, "refdir"), exist_ok=True)
    rng = np.random.default_rng(5)
    np.savez(os.path.join(d, "images.npz"), arr_0=rng.integers(0, 256, (5, 40, 48, 3), np.uint8))
    ref_imgs = rng.integers(0, 256, (4, 40, 48, 3), np.uint8)
    np.save(os.path.join(d, "ref_images.npy"), ref_imgs)
    for i, img in enumerate(ref_imgs):
        with open(os.path.join(d, "refdir", f"r{i}.png"), "wb") as f:
            f.write(png_bytes(img))


def check_images(d):
    f1, f3 = np.load(os.path.join(d, "f_np1.npz")), np.load(os.path.join(d, "f_np3.npz"))
    shapes = {"pool": (5, 2048), "spatial": (5, 2023), "logits": (5, 1008)}
    for key, shape in shapes.items():
        assert f1[key].shape == shape and f1[key].dtype == np.float32, (key, f1[key].shape)
        assert np.array_equal(f1[key], f3[key]), f"{key}: 1 and 3 ranks differ"
        assert np.isfinite(f1[key]).all(), key
    st = np.load(os.path.join(d, "ref_stats.npz"))
    assert np.array_equal(st["arr_0"], np.load(os.path.join(d, "ref_images.npy"))), "arr_0"
    assert st["mu"].shape == (2048,) and st["sigma"].shape == (2048, 2048), "mu/sigma"
    assert st["mu_s"].shape == (2023,) and st["sigma_s"].shape == (2023, 2023), "mu_s/sigma_s"
    m = load(d, "m.json")
    for key in METRICS:
        assert np.isfinite(m[key]), key
    assert m["counts"]["samples"] == 5 and m["counts"]["reference_vectors"] == 4, m["counts"]
    assert m["inputs"]["extractor"]["weights"].startswith("synthetic"), m["inputs"]["extractor"]
    # The samples' IS from the dumped logits (reference definition) equals the run's.
    is_ref = ref.inception_score(f1["logits"])[0]
    assert abs(m["inception_score"] - is_ref) <= 1e-9 * is_ref, (m["inception_score"], is_ref)
    print("network run ok:", {k: m[k] for k in METRICS})


if __name__ == "__main__":
    {"make": make, "compare": compare, "bad": bad, "images": images,
     "check_images": check_images}[sys.argv[1]](sys.argv[2])
