#!/usr/bin/env bash
# `rae sample` as a job, on the CPU with the committed micro models (tests/goldens/sample):
#   ranks   1 and 3 ranks (and batch 1 vs 3) give byte-identical samples.npz, grid.png, PNGs and
#           latents.npz
#   resume  a run killed with SIGKILL mid-job continues from its finished chunks and ends with
#           the same bytes as an uninterrupted run
#   npz     numpy.load reads samples.npz: arr_0, uint8 (N, S, S, 3), and labels, rows in global-index
#           order (each row equal to its chunk file's image)
# Usage: sample_job.sh MODE RAE PYTHON SOURCE_DIR WORK_DIR
set -euo pipefail
MODE=$1 RAE=$2 PY=$3 SRC=$4 WORK=$5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
rm -rf "$WORK"
mkdir -p "$WORK"
G="$SRC/tests/goldens/sample"
# 5 classes x K samples of the 8-channel 4x4 DiT^DH micro, CFG with an interval, decoded by a
# random ViT-micro decoder (16x16 pixels).
common() {
  echo --model "$G/micro_model.safetensors" --decoder random:ViT-micro:7 --stats none \
    --classes 0-4 --shift-base 16 --cfg-scale 2.5 --cfg-interval 0.1,0.8 --seed 3 --progress 0.5
}

case "$MODE" in
ranks)
  "$RAE" sample $(common) --num-per-class 3 --steps 10 --batch 2 --chunk 2 --png --save-latents \
    --out "$WORK/n1"
  mpirun -np 3 "$RAE" sample $(common) --num-per-class 3 --steps 10 --batch 2 --chunk 2 --png \
    --save-latents --out "$WORK/n3"
  "$RAE" sample $(common) --num-per-class 3 --steps 10 --batch 1 --chunk 2 --out "$WORK/b1"
  "$RAE" sample $(common) --num-per-class 3 --steps 10 --batch 3 --chunk 2 --out "$WORK/b3"
  for f in samples.npz grid.png latents.npz; do
    cmp "$WORK/n1/$f" "$WORK/n3/$f"
  done
  test "$(ls "$WORK/n1/png" | wc -l)" -eq 15
  for p in "$WORK"/n1/png/*.png; do cmp "$p" "$WORK/n3/png/$(basename "$p")"; done
  cmp "$WORK/n1/samples.npz" "$WORK/b1/samples.npz"
  cmp "$WORK/n1/samples.npz" "$WORK/b3/samples.npz"
  echo "1 vs 3 ranks, batch 1 vs 2 vs 3: byte-identical"
  ;;
resume)
  # The uninterrupted reference.
  "$RAE" sample $(common) --num-per-class 40 --steps 20 --batch 2 --out "$WORK/ref" 2> "$WORK/ref.log"
  total=$(ls "$WORK/ref/chunks" | wc -l)
  # Kill with SIGKILL once a few chunks exist; more work and a retry if the run was too quick.
  killed=0
  for attempt in 1 2 3; do
    rm -rf "$WORK/run"
    "$RAE" sample $(common) --num-per-class 40 --steps 20 --batch 2 --out "$WORK/run" \
      2> "$WORK/killed.log" &
    pid=$!
    for _ in $(seq 1 3000); do
      n=$(ls "$WORK/run/chunks" 2> /dev/null | grep -c '^chunk-.*safetensors$' || true)
      if [ "$n" -ge 3 ] || ! kill -0 "$pid" 2> /dev/null; then break; fi
      sleep 0.01
    done
    kill -9 "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    done_chunks=$(ls "$WORK/run/chunks" | grep -c '^chunk-.*safetensors$' || true)
    if [ "$done_chunks" -ge 1 ] && [ "$done_chunks" -lt "$total" ]; then killed=1; break; fi
    echo "attempt $attempt: $done_chunks of $total chunks at the kill; retrying"
  done
  [ "$killed" = 1 ] || { echo "could not kill the job mid-run"; exit 1; }
  test ! -e "$WORK/run/samples.npz"
  echo "killed after $done_chunks of $total chunks"
  "$RAE" sample $(common) --num-per-class 40 --steps 20 --batch 2 --out "$WORK/run" 2> "$WORK/resume.log"
  grep -q "($done_chunks already done)" "$WORK/resume.log" || { cat "$WORK/resume.log"; exit 1; }
  cmp "$WORK/ref/samples.npz" "$WORK/run/samples.npz"
  cmp "$WORK/ref/grid.png" "$WORK/run/grid.png"
  # A rerun with other settings is refused and changes nothing.
  if "$RAE" sample $(common) --num-per-class 40 --steps 21 --batch 2 --out "$WORK/run" 2> "$WORK/other.log"; then
    echo "a rerun with other settings was accepted"; exit 1
  fi
  grep -q "holds a sampling job with other settings (sampler" "$WORK/other.log" || { cat "$WORK/other.log"; exit 1; }
  cmp "$WORK/ref/samples.npz" "$WORK/run/samples.npz"
  echo "resume after SIGKILL: byte-identical to the uninterrupted run"
  ;;
npz)
  "$RAE" sample $(common) --num-per-class 4 --steps 6 --batch 3 --chunk 3 --out "$WORK/o"
  "$PY" - "$WORK/o" <<'EOF'
import json, os, struct, sys
import numpy as np
out = sys.argv[1]
z = np.load(os.path.join(out, "samples.npz"))
assert sorted(z.files) == ["arr_0", "labels"], z.files  # readers of the ADM layout take arr_0
a = z["arr_0"]
assert z["labels"].dtype == np.int32 and z["labels"].shape == (20,)
assert a.dtype == np.uint8 and a.shape == (20, 16, 16, 3), (a.dtype, a.shape)
# Global-index order: row g is row g % 3 of chunk g // 3 (read with a minimal safetensors parser).
def chunk_images(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    e = h["images"]
    b, e2 = e["data_offsets"]
    return np.frombuffer(data[b:e2], np.uint8).reshape(e["shape"]), h["__metadata__"]
for c in range(7):
    imgs, meta = chunk_images(os.path.join(out, "chunks", f"chunk-{c:06d}.safetensors"))
    assert int(meta["first"]) == 3 * c
    assert (a[3 * c:3 * c + len(imgs)] == imgs).all(), c
assert len(np.unique(a.reshape(20, -1), axis=0)) == 20  # 20 different samples
print("samples.npz: arr_0 uint8", a.shape, "in global-index order")
EOF
  ;;
*)
  echo "unknown mode $MODE"; exit 2 ;;
esac
