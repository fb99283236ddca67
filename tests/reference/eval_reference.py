#!/usr/bin/env python3
"""Reference definitions of the evaluation metrics in NumPy/SciPy, written from the definitions
of the ADM evaluation suite (openai/guided-diffusion evaluations/evaluator.py) and torch-fidelity:

- statistics: mu = mean over samples, sigma = numpy.cov(features, rowvar=False) (N - 1);
- FID: |mu1 - mu2|^2 + tr(s1) + tr(s2) - 2 tr(sqrtm(s1 @ s2)) with scipy.linalg.sqrtm; when the
  square root is not finite, both add 1e-6 to the diagonals and retry; the real part is kept;
- Inception Score: softmax of the logits, consecutive splits of 5000 samples, per split
  exp(mean_i KL(p_i || mean p)), the mean over splits;
- precision/recall: squared Euclidean distances; radius of a vector = the (k+1)-th smallest
  distance to its own set (itself included), k = 3; precision = fraction of samples within the
  radius of some reference vector, recall = fraction of reference vectors within the radius of
  some sample.

Used by make_eval_goldens.py (committed goldens) and by tests/eval/check_metrics.py (the CLI
tests). Float64 throughout (ADM computes the softmax in float32 and distances in float16).
"""
import warnings

import numpy as np
from scipy import linalg


def statistics(features):
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular products
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(logits, split_size=5000):
    preds = softmax(logits)
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i:i + split_size]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), [float(s) for s in scores]


def squared_distances(u, v):
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    d = (u * u).sum(1)[:, None] - 2 * u @ v.T + (v * v).sum(1)[None, :]
    return np.maximum(d, 0.0)


def manifold_radii(features, k=3):
    d = squared_distances(features, features)
    return np.partition(d, k, axis=1)[:, k]


def precision_recall(ref, samples, k=3):
    r_ref, r_smp = manifold_radii(ref, k), manifold_radii(samples, k)
    d = squared_distances(samples, ref)  # (samples, ref)
    precision = float(np.mean(np.any(d <= r_ref[None, :], axis=1)))
    recall = float(np.mean(np.any(d <= r_smp[:, None], axis=0)))
    return precision, recall, r_ref, r_smp, d


def decision_margin(ref, samples, k=3):
    """How far every precision/recall decision is from flipping: a sample is inside the reference
    manifold when min_j (d_ij - r_j) / r_j <= 0 (likewise for reference vectors), so the smallest
    |min_j (d_ij - r_j) / r_j| over all vectors bounds the relative error that could change the
    result. A float32 implementation matches this float64 one exactly when it is well above 1e-6."""
    _, _, r_ref, r_smp, d = precision_recall(ref, samples, k)
    tiny = 1e-30
    m_samples = ((d - r_ref[None, :]) / np.maximum(r_ref[None, :], tiny)).min(axis=1)
    m_ref = ((d - r_smp[:, None]) / np.maximum(r_smp[:, None], tiny)).min(axis=0)
    return float(min(np.abs(m_samples).min(), np.abs(m_ref).min()))
