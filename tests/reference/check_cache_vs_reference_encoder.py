"""End-to-end check of `rae cache` against the RAE release's pipeline in Python (not a ctest: it
needs PyTorch, PIL and transformers).

For the first N images of a cache made with a Hugging Face encoder directory and --dtype f32, it
recomputes every latent the way RAE does (PIL open + convert RGB -> ADM center_crop_arr -> [flip] ->
ToTensor -> F.interpolate bicubic to the encoder input -> (x - mean) / std -> HF model -> final
LayerNorm without affine, CLS/registers dropped) and prints the largest difference.

  rae make-dataset --out DS --classes 10 --per-class 30
  rae cache --data DS --encoder tests/goldens/encoders/dinov2-reg-tiny --encoder-input 32 \\
            --image-size 64 --dtype f32 --out CACHE --shard-size 32
  python tests/reference/check_cache_vs_reference_encoder.py DS CACHE tests/goldens/encoders/dinov2-reg-tiny 32 64
"""
import json
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.datasets import ImageFolder
from transformers import AutoConfig, AutoModel

sys.path.insert(0, os.path.dirname(__file__))
from make_preprocess_goldens import center_crop_arr  # noqa: E402


def main(ds, cache, model_dir, enc_input, image_size, n=40):
    cfg = AutoConfig.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    norm = model.post_layernorm if hasattr(model, "post_layernorm") else model.layernorm
    norm.elementwise_affine, norm.weight, norm.bias = False, None, None
    if cfg.model_type == "dinov2_with_registers":
        drop = 1 + cfg.num_register_tokens
    else:
        drop = 1 if cfg.model_type == "vit_mae" else 0
    if cfg.model_type.startswith("siglip"):
        mean, std = [0.5] * 3, [0.5] * 3
    else:
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    samples = ImageFolder(os.path.join(ds, "train")).samples[:n]
    m = json.load(open(os.path.join(cache, "manifest.json")))
    lat, flp, lab = [], [], []
    for s in m["shards"]:
        with h5py.File(os.path.join(cache, s["file"]), "r") as f:
            lat.append(f["latents"][:]), flp.append(f["latents_flip"][:]), lab.append(f["labels"][:])
    lat, flp, lab = np.concatenate(lat), np.concatenate(flp), np.concatenate(lab)
    worst = 0.0
    for i, (path, label) in enumerate(samples):
        assert lab[i] == label, (i, lab[i], label)
        img = Image.open(path).convert("RGB")
        crop = center_crop_arr(img, image_size)
        for view, ref in ((crop, lat[i]), (crop.transpose(Image.FLIP_LEFT_RIGHT), flp[i])):
            x = torch.from_numpy(np.array(view)).permute(2, 0, 1).float().div(255).unsqueeze(0)
            if x.shape[-1] != enc_input:
                x = F.interpolate(x, size=(enc_input, enc_input), mode="bicubic", align_corners=False)
            x = (x - mean) / std
            with torch.no_grad():
                if cfg.model_type == "vit_mae":  # as RAE: mask ratio 0, noise = arange (no shuffle)
                    noise = torch.arange((enc_input // cfg.patch_size) ** 2).unsqueeze(0).float()
                    z = model(x, noise, interpolate_pos_encoding=True).last_hidden_state[0, drop:]
                elif cfg.model_type == "dinov2_with_registers":
                    z = model(x).last_hidden_state[0, drop:]
                else:
                    z = model(x, interpolate_pos_encoding=True).last_hidden_state[0, drop:]
            worst = max(worst, float((z - torch.from_numpy(ref.reshape(z.shape))).abs().max()))
    print(f"{len(samples)} images x 2 views: max |rae cache - RAE reference| = {worst:.3g}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
