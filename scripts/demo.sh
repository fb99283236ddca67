#!/usr/bin/env bash
# The README's first command: installs, builds (Release) and runs the whole system end to end on
# an embedded default, on the CPU, from images to scored samples:
#   1. a procedural class-conditional ImageFolder dataset (10 classes of real JPEG/PNG files),
#   2. the latent-cache job under mpirun (2 ranks) with the small frozen tiny-random encoder
#      (16x16x64 tokens per image), then `rae cache verify`,
#   3. stage 1: the ViT decoder trained on the images (L1 + LPIPS + GAN, noise-augmented; the
#      release's schedule shortened: the GAN term from step ~190 of 600),
#   4. stage 2: DiT^DH trained on the cache under mpirun (2 ranks, full sharding),
#   5. class-conditional sampling with classifier-free guidance under mpirun (2 ranks), the
#      samples de-normalised and decoded by the stage-1 decoder,
#   6. scoring: reconstruction PSNR/SSIM of real images (`rae reconstruct`) and the class
#      agreement of the samples in the encoder's feature space (`rae eval agreement`).
# Writes results/demo/: samples.png (one row per class), reconstructions.png, loss.png (both
# stages), metrics.json and summary.md (with `class agreement: X (chance 0.10)`); the data,
# cache, runs and raw outputs under results/demo/pipeline/. A rerun starts over.
# Knobs: see scripts/demo-run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec scripts/demo-run.sh build/src/rae
