"""Reads a run directory's TensorBoard event files with the tensorboard package's own reader and
checks them against metrics.jsonl: every record passes the reader's CRC32C checks, every file
starts with the file_version event, and each step 1..N of train/loss appears exactly once (over
all the files the run's attempts wrote) with metrics.jsonl's loss as a float32.
    python check_events.py RUN_DIR N
"""
import glob
import json
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New


def strict_records(path):
    """Number of records, raising on any CRC or truncation error (the reader's own checks)."""
    reader, n = PyRecordReader_New(path), 0
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return n
        n += 1


def main(run, steps):
    files = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
    assert files, f"no event files in {run}"
    scalars = {}  # tag -> step -> [values]
    for f in files:
        n = strict_records(f)
        events = list(event_file_loader.LegacyEventFileLoader(f).Load())
        assert len(events) == n, f"{f}: loader read {len(events)} of {n} records"
        assert events[0].file_version == "brain.Event:2", f"{f}: first event {events[0]}"
        for ev in events[1:]:
            for v in ev.summary.value:
                scalars.setdefault(v.tag, {}).setdefault(ev.step, []).append(v.simple_value)
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/samples_per_s",
                "memory/host_peak_rss_gib"):
        assert tag in scalars, f"tag {tag} missing (have {sorted(scalars)})"
    loss = scalars["train/loss"]
    twice = sorted(s for s, v in loss.items() if len(v) > 1)
    assert not twice, f"steps logged more than once: {twice[:10]}"
    assert sorted(loss) == list(range(1, steps + 1)), f"steps {sorted(loss)[:5]}..., want 1..{steps}"
    with open(os.path.join(run, "metrics.jsonl")) as fh:
        metrics = {j["step"]: j["loss"] for j in map(json.loads, fh)}
    for s, (v,) in loss.items():
        assert v == np.float32(metrics[s]), f"step {s}: event {v} vs metrics {metrics[s]}"
    print(f"{run}: {len(files)} event file(s), train/loss steps 1..{steps} once each, "
          f"equal to metrics.jsonl; tags {sorted(scalars)}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
