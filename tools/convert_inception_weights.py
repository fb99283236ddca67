#!/usr/bin/env python3
"""Convert the FID Inception-v3 weights (.pth) to safetensors for rae's models::InceptionV3.

  convert_inception_weights.py IN.pth OUT.safetensors

Accepts torch-fidelity's weights-inception-2015-12-05-6726825d.pth and pytorch-fid's
pt_inception-2015-12-05-6726825d.pth (the same TF-graph network, the same parameter names as
torch-fidelity's FeatureExtractorInceptionV3: Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.
running_mean, ..., fc.weight, fc.bias). Names and layouts are kept exactly (conv weights
(O, C, KH, KW), batch norm unfolded: weight, bias, running_mean, running_var); the C++ loader
folds batch norm into the convolutions and permutes to its channels-last layout at load time,
so this file stays a faithful copy of the .pth. Dropped: num_batches_tracked buffers (unused in
inference). Stripped: a "module." wrapper prefix. Anything else that is not a conv weight, a
batch-norm tensor or fc.weight/fc.bias is an error naming the key.

Reading the .pth needs no PyTorch when it is in the zip format (every torch.save since 1.6): a
restricted unpickler that only rebuilds tensors. The legacy (pre-1.6) format is read with torch
when it is installed. Values are stored as float32. Nothing is downloaded.
"""
import argparse
import collections
import os
import pickle
import sys
import zipfile

import numpy as np

FORMAT = "rae-inception-v3-fid"
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                   "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
                   "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                   "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name):
        if name not in _STORAGE_DTYPES:
            raise ValueError(f"unsupported storage type torch.{name}")
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2 for numpy: a strided view into the storage, copied."""
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class _ZipUnpickler(pickle.Unpickler):
    """Unpickles a torch zip checkpoint into numpy arrays; refuses every other global."""

    def __init__(self, fp, archive, prefix):
        super().__init__(fp)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not a tensor checkpoint)")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind}")
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
        if dtype is None:  # newer torch: a torch.storage.TypedStorage dtype object
            raise pickle.UnpicklingError(f"unsupported storage {storage_type!r}")
        data = self.archive.read(f"{self.prefix}data/{key}")
        return np.frombuffer(data, dtype=dtype, count=numel)


def load_pth_zip(path):
    with zipfile.ZipFile(path) as archive:
        pkl = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the zip, found {len(pkl)}")
        prefix = pkl[0][: -len("data.pkl")]
        with archive.open(pkl[0]) as fp:
            return _ZipUnpickler(fp, archive, prefix).load()


def load_pth(path, use_torch=None):
    """The state dict of `path` as {name: numpy array}. use_torch: None = zip reader when the
    file is a zip, else torch; True/False forces one (tests use both)."""
    if use_torch is None:
        use_torch = not zipfile.is_zipfile(path)
    if not use_torch:
        obj = load_pth_zip(path)
    else:
        try:
            import torch
        except ImportError:
            sys.exit(f"{path}: legacy (pre-1.6) .pth format; reading it needs PyTorch installed")
        obj = torch.load(path, map_location="cpu", weights_only=True)
        obj = {k: v.numpy() for k, v in obj.items()}
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def convert(state, path=""):
    """Checks names and shapes and returns {name: float32 array} in the .pth's layout."""
    out = {}
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name.endswith("num_batches_tracked"):
            continue
        arr = np.asarray(value)
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith(".conv.weight"):
            ok = arr.ndim == 4
        elif ".bn." in name and leaf in ("weight", "bias", "running_mean", "running_var"):
            ok = arr.ndim == 1
        elif name == "fc.weight":
            ok = arr.shape == (1008, 2048)
        elif name == "fc.bias":
            ok = arr.shape == (1008,)
        else:
            raise ValueError(f"{path}: unexpected tensor '{key}' {arr.shape}: not an FID "
                             f"Inception-v3 parameter")
        if not ok:
            raise ValueError(f"{path}: tensor '{key}' has shape {arr.shape}")
        out[name] = np.ascontiguousarray(arr, dtype=np.float32)
    for required in ("fc.weight", "fc.bias", "Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var"):
        if required not in out:
            raise ValueError(f"{path}: missing tensor '{required}' (not the FID Inception-v3?)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="the .pth file (torch-fidelity's or pytorch-fid's)")
    ap.add_argument("output", help="the .safetensors file to write")
    args = ap.parse_args()
    from safetensors.numpy import save_file
    tensors = convert(load_pth(args.input), args.input)
    tmp = args.output + ".tmp"
    save_file(tensors, tmp, metadata={"format": FORMAT, "source": os.path.basename(args.input),
                                      "converter": "tools/convert_inception_weights.py"})
    os.replace(tmp, args.output)
    print(f"wrote {len(tensors)} tensors to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
