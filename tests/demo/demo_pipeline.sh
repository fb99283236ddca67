#!/usr/bin/env bash
# demo_pipeline.sh RAE SRC WORK PYTHON: scripts/demo-run.sh with 20 decoder steps, 40 DiT steps
# and 4 sampling steps into WORK/out, then checks its outputs; and that a DEMO_OUT holding
# something else is refused, untouched.
set -euo pipefail
RAE=$1 SRC=$2 WORK=$3 PY=$4
rm -rf "$WORK"
mkdir -p "$WORK/other"
fail() { echo "FAIL: $*"; exit 1; }
echo keep > "$WORK/other/file"
DEMO_OUT="$WORK/other" DEMO_PYTHON="$PY" bash "$SRC/scripts/demo-run.sh" "$RAE" > "$WORK/refused.log" 2>&1 &&
  fail "a DEMO_OUT with other files was not refused"
grep -q "is not a previous demo's output" "$WORK/refused.log" || fail "no message: $(cat "$WORK/refused.log")"
[ "$(cat "$WORK/other/file")" = keep ] || fail "the other folder was touched"
for run in 1 2; do  # the second run replaces the first's output
  DEMO_OUT="$WORK/out" DEMO_PYTHON="$PY" DEMO_DECODER_STEPS=20 DEMO_DIT_STEPS=40 \
    DEMO_SAMPLE_STEPS=4 bash "$SRC/scripts/demo-run.sh" "$RAE" > "$WORK/run$run.log" 2>&1 ||
    { tail -30 "$WORK/run$run.log"; fail "demo-run.sh (run $run)"; }
done
O=$WORK/out
for f in samples.png reconstructions.png loss.png metrics.json summary.md; do
  [ -s "$O/$f" ] || fail "no $O/$f"
done
grep -Eq '^class agreement: [0-9]\.[0-9]{2} \(chance 0\.10\)$' "$O/summary.md" ||
  fail "summary.md has no class-agreement line: $(head -5 "$O/summary.md")"
grep -Eq '^reconstruction PSNR: [0-9.]+ dB' "$O/summary.md" || fail "summary.md has no PSNR line"
"$PY" - "$O" <<'PYEOF'
import json, sys
from PIL import Image
o = sys.argv[1]
m = json.load(open(f"{o}/metrics.json"))
assert 0 <= m["class_agreement"] <= 1 and m["chance"] == 0.1, m
assert m["decoder_steps"] == 20 and m["dit_steps"] == 40, m
assert m["reconstruction_psnr_db"] > 5, m
s = Image.open(f"{o}/samples.png")
assert s.size == (4 * (2 + 10 * 34), 4 * (2 + 10 * 34)), s.size  # 10 x 10 cells of 32 px, 4x
print("demo outputs: agreement", m["class_agreement"], "PSNR", round(m["reconstruction_psnr_db"], 2))
PYEOF
echo PASS
