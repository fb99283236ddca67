"""Goldens for the image pipeline (tests/data/test_images_preprocess.cpp).

Writes small input images with PIL (RGB, grayscale and CMYK JPEGs, a PNG named .JPEG, a palette
PNG) into tests/goldens/images/, runs the RAE release's preprocessing on them
(PIL open + convert("RGB") -> ADM center_crop_arr -> [horizontal flip] -> ToTensor ->
F.interpolate(bicubic, align_corners=False) -> (x - mean) / std) and saves the intermediate and
final arrays to tests/goldens/images/preprocess.safetensors. Also records PyTorch's bicubic
interpolation with antialias and a scale factor (as HF Dinov2 interpolates position embeddings).

Run: .venv/bin/python tests/reference/make_preprocess_goldens.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "goldens", "images")
CROP = 32       # stands in for 256 (small goldens); same code path
ENC = 28        # stands in for 224 (the 256 -> 224 ratio)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def center_crop_arr(pil_image, image_size):
    # guided-diffusion / RAE src/utils/train_utils.py
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return Image.fromarray(arr[crop_y: crop_y + image_size, crop_x: crop_x + image_size])


def smooth_image(w, h, seed):
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for c in range(3):
        fx, fy, ph = g.uniform(0.02, 0.2), g.uniform(0.02, 0.2), g.uniform(0, 6.28)
        v = 0.5 + 0.35 * np.sin(fx * xx + ph) * np.cos(fy * yy) + 0.1 * g.standard_normal((h, w))
        chans.append(v)
    arr = np.clip(np.stack(chans, -1) * 255 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def make_inputs():
    files = []
    im = smooth_image(200, 150, 1)  # BOX halving twice (150 -> 75 -> 37) then bicubic down
    im.save(os.path.join(OUT, "rgb.jpg"), quality=90)
    files.append("rgb.jpg")
    smooth_image(90, 120, 2).convert("L").save(os.path.join(OUT, "gray.jpg"), quality=90)
    files.append("gray.jpg")
    smooth_image(130, 97, 3).convert("CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=90)
    files.append("cmyk.jpg")
    rgba = smooth_image(61, 77, 4).convert("RGBA")  # upscaling path; alpha dropped by convert
    rgba.save(os.path.join(OUT, "png_named.JPEG"), format="PNG")
    files.append("png_named.JPEG")
    smooth_image(80, 80, 5).convert("P", palette=Image.ADAPTIVE, colors=64).save(os.path.join(OUT, "palette.png"))
    files.append("palette.png")
    return files


def main():
    os.makedirs(OUT, exist_ok=True)
    files = make_inputs()
    tensors = {}
    for i, name in enumerate(files):
        with open(os.path.join(OUT, name), "rb") as f:
            img = Image.open(f)
            img = img.convert("RGB")  # torchvision's pil_loader
        tensors[f"{i}.decoded"] = torch.from_numpy(np.array(img))
        crop = center_crop_arr(img, CROP)
        tensors[f"{i}.crop"] = torch.from_numpy(np.array(crop))
        for tag, view in (("enc", crop), ("enc_flip", crop.transpose(Image.FLIP_LEFT_RIGHT))):
            x = torch.from_numpy(np.array(view)).permute(2, 0, 1).float().div(255).unsqueeze(0)  # ToTensor
            x = F.interpolate(x, size=(ENC, ENC), mode="bicubic", align_corners=False)
            x = (x - MEAN) / STD
            tensors[f"{i}.{tag}"] = x[0].contiguous()
    # Position-embedding style interpolation: antialiased bicubic with a scale factor (HF Dinov2:
    # grid + 0.1 over sqrt(num_positions)), and plain bicubic to a size (HF ViT-MAE, SigLIP).
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(1, 8, 7, 7, generator=g)
    tensors["pos.src"] = pos[0].contiguous()
    sf = (4 + 0.1) / 7
    tensors["pos.aa_down"] = F.interpolate(pos, scale_factor=(sf, sf), mode="bicubic", align_corners=False,
                                           antialias=True)[0].contiguous()
    sf_up = (9 + 0.1) / 7
    tensors["pos.aa_up"] = F.interpolate(pos, scale_factor=(sf_up, sf_up), mode="bicubic", align_corners=False,
                                         antialias=True)[0].contiguous()
    tensors["pos.size_up"] = F.interpolate(pos, size=(9, 9), mode="bicubic", align_corners=False)[0].contiguous()
    tensors["pos.size_down"] = F.interpolate(pos, size=(4, 4), mode="bicubic", align_corners=False)[0].contiguous()
    meta = {"files": ",".join(files), "crop": str(CROP), "enc": str(ENC),
            "pillow": Image.__version__, "torch": torch.__version__}
    save_file(tensors, os.path.join(OUT, "preprocess.safetensors"), metadata=meta)
    print("wrote", len(tensors), "tensors for", files)


if __name__ == "__main__":
    main()
