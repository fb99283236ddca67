"""Reads the event file written by tb_write_sample with the tensorboard package (its CRC-checking
record reader, its Event protobuf, and its EventAccumulator as the dashboard uses it) and checks
every value.     python check_tensorboard.py DIR
"""
import glob
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000030000000208020000001216f14d0000001849444154"
    "78da63f8cfc0c0f09f8181e13f1384facfc000003bec05fdb03ed70d0000000049454e44ae426082".replace(" ", ""))


def main(d):
    (path,) = glob.glob(d + "/events.out.tfevents.*")
    reader, n = PyRecordReader_New(path), 0
    while True:
        try:
            reader.GetNext()  # raises DataLossError on a bad CRC
        except errors.OutOfRangeError:
            break
        n += 1
    assert n == 8, n  # version + 6 scalars + 1 image
    events = list(event_file_loader.LegacyEventFileLoader(path).Load())
    assert events[0].file_version == "brain.Event:2"
    assert events[0].wall_time > 1.6e9
    img = [v for e in events for v in e.summary.value if v.tag == "samples/grid"]
    assert len(img) == 1
    im = img[0].image
    assert (im.height, im.width, im.colorspace) == (2, 3, 3), im
    assert im.encoded_image_string == PNG

    acc = event_accumulator.EventAccumulator(path, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [s.step for s in loss] == [1, 2, 3]
    assert [s.value for s in loss] == [np.float32(1.0 / s) for s in (1, 2, 3)]
    assert [s.value for s in acc.Scalars("train/lr")] == [np.float32(1e-4)] * 3
    (image,) = acc.Images("samples/grid")
    assert (image.step, image.height, image.width) == (2, 2, 3)
    assert image.encoded_image_string == PNG
    print(f"{path}: {n} records, CRCs verified; scalars and the PNG image read back by tensorboard")


if __name__ == "__main__":
    main(sys.argv[1])
