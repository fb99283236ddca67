#!/usr/bin/env python3
"""The demo's report (scripts/demo.sh): loss.png with both stages' curves, metrics.json with
every number the demo measured, and summary.md that states them.

  demo_report.py --out DIR --decoder-run DEC --dit-run RUN --reconstruct REC/metrics.json
                 --agreement AGREEMENT.json --timings TIMINGS.tsv [--latent-agreement F.json]

samples.png and reconstructions.png are the sampler's and `rae reconstruct`'s grids enlarged 4x.
Inputs are what the rae commands wrote: each run's metrics.jsonl (one JSON object per logged
step), `rae reconstruct`'s metrics.json, `rae eval agreement`'s JSON, and the demo's stage
timings (name<TAB>seconds lines). Needs numpy and matplotlib (tests/python/requirements.txt).
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (a dependency of matplotlib)


def read_jsonl(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    if not rows:
        sys.exit(f"demo_report: {path}: no metrics")
    return rows


def series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)


def smooth(y, width):
    if len(y) < 2 * width:
        return y
    k = np.ones(width) / width
    head = np.array([y[: i + 1].mean() for i in range(width - 1)])
    return np.concatenate([head, np.convolve(y, k, mode="valid")])


def plot_losses(dec, dit, path, gan_start):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in [("l1", "L1"), ("lpips", "LPIPS"), ("gan", "GAN (generator)"),
                       ("disc_loss", "discriminator hinge")]:
        x, y = series(dec, key)
        if len(x) and np.any(y != 0):
            keep = y != 0 if key in ("gan", "disc_loss") else slice(None)
            a1.plot(x[keep], smooth(y[keep], 10), label=label)
    if gan_start is not None:
        a1.axvline(gan_start, color="gray", ls=":", lw=1, label="GAN term starts")
    a1.set_title("stage 1: decoder (L1 + LPIPS + GAN)")
    a1.set_xlabel("step")
    a1.legend(fontsize=8)
    x, y = series(dit, "loss")
    a2.plot(x, y, color="0.8", lw=0.8, label="per step")
    a2.plot(x, smooth(y, 25), color="C0", label="moving mean (25)")
    a2.set_title("stage 2: DiT^DH flow matching")
    a2.set_xlabel("step")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def tail_mean(rows, key, n=20):
    _, y = series(rows, key)
    return float(y[-n:].mean()) if len(y) else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--decoder-run", required=True)
    p.add_argument("--dit-run", required=True)
    p.add_argument("--reconstruct", required=True)
    p.add_argument("--agreement", required=True)
    p.add_argument("--timings", required=True)
    p.add_argument("--samples-grid", required=True)
    p.add_argument("--reconstructions-grid", required=True)
    a = p.parse_args()
    # The 32 px grids, 4x larger (nearest neighbour) so that a person can see them.
    for src, name in [(a.samples_grid, "samples.png"), (a.reconstructions_grid,
                                                        "reconstructions.png")]:
        im = Image.open(src)
        im.resize((im.width * 4, im.height * 4), Image.NEAREST).save(os.path.join(a.out, name))

    dec = read_jsonl(os.path.join(a.decoder_run, "metrics.jsonl"))
    dit = read_jsonl(os.path.join(a.dit_run, "metrics.jsonl"))
    rec = json.load(open(a.reconstruct))
    agr = json.load(open(a.agreement))
    timings = []
    with open(a.timings) as f:
        for line in f:
            name, secs = line.rstrip("\n").split("\t")
            timings.append((name, float(secs)))
    run_json = json.load(open(os.path.join(a.decoder_run, "run.json")))
    gan_start = run_json.get("objective", {}).get("constants", {}).get("gan_start_step")
    plot_losses(dec, dit, os.path.join(a.out, "loss.png"), gan_start)

    metrics = {
        "class_agreement": agr["class_agreement"],
        "chance": agr["chance"],
        "class_agreement_real_images": agr["reference_agreement"],
        "samples": agr["samples"],
        "classes": agr["classes"],
        "per_class_agreeing": agr["per_class_agreeing"],
        "reconstruction_psnr_db": rec["mean"]["psnr"],
        "reconstruction_ssim": rec["mean"]["ssim"],
        "reconstruction_images": rec["count"],
        "decoder_steps": dec[-1]["step"],
        "decoder_final": {k: tail_mean(dec, k) for k in ("l1", "lpips", "gan", "disc_loss",
                                                        "disc_accuracy")},
        "dit_steps": dit[-1]["step"],
        "dit_loss_first": tail_mean(dit[:20], "loss"),
        "dit_loss_final": tail_mean(dit, "loss"),
        "seconds": {name: round(s, 1) for name, s in timings},
        "seconds_total": round(sum(s for _, s in timings), 1),
    }
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")

    m = metrics
    lines = [
        "# rae demo: images to scored samples",
        "",
        f"class agreement: {m['class_agreement']:.2f} (chance {m['chance']:.2f})",
        f"reconstruction PSNR: {m['reconstruction_psnr_db']:.2f} dB "
        f"(SSIM {m['reconstruction_ssim']:.3f}, {m['reconstruction_images']} images)",
        "",
        f"- Class agreement: the share of the {m['samples']} class-conditional samples "
        f"({m['classes']} classes) whose nearest class centroid in the frozen encoder's "
        "feature space (mean-pooled tokens of the training images) is their own class "
        f"(`rae eval agreement`); the real training images score "
        f"{m['class_agreement_real_images']:.2f} by the same rule.",
        f"- Per class, agreeing samples: {m['per_class_agreeing']}.",
        f"- Stage 1: decoder trained {m['decoder_steps']} steps (L1 + LPIPS + GAN, noise-"
        f"augmented); final L1 {m['decoder_final']['l1']:.4f}, LPIPS "
        f"{m['decoder_final']['lpips']:.4f}.",
        f"- Stage 2: DiT^DH trained {m['dit_steps']} steps on the latent cache (2 ranks, "
        f"sharded); flow-matching loss {m['dit_loss_first']:.3f} (first 20 steps) -> "
        f"{m['dit_loss_final']:.3f} (last 20).",
        "- FID is not reported: it needs InceptionV3 weights (`rae eval --inception`), which the "
        "demo does not download.",
        "",
        "| stage | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {s:.1f} |" for name, s in timings]
    lines += [f"| total | {m['seconds_total']:.1f} |", "",
              "Files: `samples.png` (one row per class), `reconstructions.png` (original | "
              "reconstruction pairs), `loss.png`, `metrics.json`.", ""]
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[:4]))


if __name__ == "__main__":
    main()
