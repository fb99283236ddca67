"""Goldens for the frozen encoders (tests/models/test_encoders_golden.cpp).

Creates random-initialized SMALL Hugging Face models of the three encoder families RAE uses,
saves each in the HF model-directory layout (config.json + model.safetensors via save_pretrained)
under tests/goldens/encoders/<name>/, together with input pixels and reference features computed
as the RAE release does (src/stage1/encoders/*.py): the final LayerNorm without its affine weight
and bias, CLS and register tokens dropped, ViT-MAE with mask_ratio 0 and noise = arange (no
shuffling), position embeddings interpolated by HF (interpolate_pos_encoding=True) where the
input grid differs from the config's.

Generated with transformers 5.24; the interpolate_pos_encoding code of the three models is the same
in transformers 4.56.2, the version the RAE release pins (size-based bicubic; antialias for DINOv2).

Run: .venv/bin/python tests/reference/make_encoder_goldens.py
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import (Dinov2WithRegistersConfig, Dinov2WithRegistersModel, SiglipVisionConfig,
                          SiglipVisionModel, ViTMAEConfig, ViTMAEModel)

OUT = os.path.join(os.path.dirname(__file__), "..", "goldens", "encoders")


def perturb(model, seed):
    # HF init leaves biases at 0, LayerNorm at (1, 0) and layer scales at 1: perturb every
    # parameter so that a wrong or missing one changes the output.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def drop_final_affine(norm):
    # As RAE: elementwise_affine False, weight and bias None.
    norm.elementwise_affine = False
    norm.weight = None
    norm.bias = None


def save(name, model, pixels, features, extra):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    save_file({"pixels": pixels.contiguous(), "features": features.contiguous()},
              os.path.join(d, "reference.safetensors"), metadata={k: str(v) for k, v in extra.items()})
    print(name, tuple(pixels.shape), "->", tuple(features.shape))


def dinov2():
    cfg = Dinov2WithRegistersConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4,
                                    patch_size=4, image_size=40, num_register_tokens=4,
                                    layer_norm_eps=1e-6, hidden_act="gelu", attn_implementation="eager")
    torch.manual_seed(0)
    model = Dinov2WithRegistersModel(cfg).eval()
    perturb(model, 1)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))  # 8x8 grid from 10x10
    d = os.path.join(OUT, "dinov2-reg-tiny")
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    drop_final_affine(model.layernorm)
    with torch.no_grad():
        feats = model(pixels).last_hidden_state[:, 1 + cfg.num_register_tokens:]
    save_file({"pixels": pixels, "features": feats.contiguous()}, os.path.join(d, "reference.safetensors"),
              metadata={"input_size": "32"})
    print("dinov2-reg-tiny", tuple(feats.shape))


def siglip():
    cfg = SiglipVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                             patch_size=4, image_size=32, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
                             attn_implementation="eager")
    torch.manual_seed(0)
    model = SiglipVisionModel(cfg).eval()
    perturb(model, 3)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))  # native 8x8 grid
    d = os.path.join(OUT, "siglip-tiny")
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    drop_final_affine(model.post_layernorm)
    with torch.no_grad():
        feats = model(pixels, interpolate_pos_encoding=True).last_hidden_state
    save_file({"pixels": pixels, "features": feats.contiguous()}, os.path.join(d, "reference.safetensors"),
              metadata={"input_size": "32"})
    print("siglip-tiny", tuple(feats.shape))


def mae():
    cfg = ViTMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                       patch_size=4, image_size=28, mask_ratio=0.0, layer_norm_eps=1e-12, hidden_act="gelu",
                       attn_implementation="eager")
    torch.manual_seed(0)
    model = ViTMAEModel(cfg).eval()
    perturb(model, 5)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))  # 8x8 grid from 7x7
    d = os.path.join(OUT, "mae-tiny")
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    drop_final_affine(model.layernorm)
    n = (32 // 4) ** 2
    noise = torch.arange(n).unsqueeze(0).expand(pixels.shape[0], -1).to(pixels.dtype)
    with torch.no_grad():
        feats = model(pixels, noise, interpolate_pos_encoding=True).last_hidden_state[:, 1:]
    save_file({"pixels": pixels, "features": feats.contiguous()}, os.path.join(d, "reference.safetensors"),
              metadata={"input_size": "32"})
    print("mae-tiny", tuple(feats.shape))


if __name__ == "__main__":
    dinov2()
    siglip()
    mae()
