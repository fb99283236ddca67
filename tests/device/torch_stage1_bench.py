#!/usr/bin/env python3
"""The RAE release's stage-1 training step in PyTorch (src/train_stage1.py at --precision bf16),
for the device check beside `rae decoder-train` (tests/device/stage1_check.sh): time per step and
peak GPU memory (torch.cuda.max_memory_allocated) at a per-GPU batch, one GPU.

Networks at the recipe's shapes with random weights (nothing downloaded): the encoder a
DINOv2-with-registers-base (transformers; random init), the ViT-XL decoder (the functional
transcription in tests/reference/vit_decoder_reference.py, eager attention as HF ViTMAE's default
"eager"), LPIPS (the lpips package's VGG network, random VGG16: pnet_rand), the DINO ViT-S/8
discriminator (timm VisionTransformer) with the release's heads and DiffAug
(tests/reference/stage1_reference.py). One step = the generator update (L1 + LPIPS + adaptive
0.75 lambda GAN, AdamW) and the discriminator update (fresh eval reconstruction, quantised,
hinge), both under torch.autocast(bfloat16) as the release. Prints one JSON line:
{"name": "torch_release_bB", "batch", "images_per_s", "s_per_step", "peak_mem_gib", "ok"} or
{"ok": false, "error": ...} (e.g. CUDA out of memory).
--tiny: toy sizes on the CPU (to check the script runs).
"""
import argparse
import json
import math
import os
import sys
import time
from functools import partial

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    name = f"torch_release_b{a.batch}"
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        import lpips
        from timm.models.vision_transformer import VisionTransformer
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel
        import stage1_reference as sr
        import vit_decoder_reference as dref
    except Exception as e:  # a missing package on the device image
        print(json.dumps({"name": name, "batch": a.batch, "ok": False, "error": f"import: {e}"}))
        return
    dev = "cpu" if a.tiny else "cuda"
    S, ENC_IN, PATCH_E = (32, 28, 14) if a.tiny else (256, 224, 14)
    W, D, H, M = (32, 2, 2, 64) if a.tiny else (1152, 28, 16, 4096)
    C_ENC = 64 if a.tiny else 768
    DW, DDEPTH, DHEADS, DP, DIN = (16, 12, 2, 8, 32) if a.tiny else (384, 12, 6, 8, 224)
    torch.manual_seed(0)
    try:
        cfg = Dinov2WithRegistersConfig(hidden_size=C_ENC, num_hidden_layers=2 if a.tiny else 12,
                                        num_attention_heads=4 if a.tiny else 12, patch_size=PATCH_E,
                                        image_size=518, num_register_tokens=4, attn_implementation="sdpa")
        enc = Dinov2WithRegistersModel(cfg).to(dev).eval().requires_grad_(False)
        enc.layernorm.elementwise_affine = False
        enc.layernorm.weight = None
        enc.layernorm.bias = None
        grid = ENC_IN // PATCH_E
        patch = S // grid
        P = {n: (0.02 * torch.randn(*s)).to(dev).requires_grad_(True)
             for n, s in dref.param_shapes(C_ENC, W, D, M, patch).items()}
        P["decoder_pos_embed"] = dref.decoder_pos_embed(W, grid).to(dev)
        lp = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).to(dev).eval().requires_grad_(False)
        vit = VisionTransformer(img_size=DIN, patch_size=DP, embed_dim=DW, depth=DDEPTH, num_heads=DHEADS,
                                num_classes=0, act_layer=partial(nn.GELU, approximate="tanh"),
                                norm_layer=partial(nn.LayerNorm, eps=1e-6)).to(dev).eval().requires_grad_(False)
        heads = sr.Heads(DW, 5).to(dev)
        opt_g = torch.optim.AdamW([p for p in P.values() if p.requires_grad], lr=2e-4, betas=(0.9, 0.95),
                                  weight_decay=0.0, fused=not a.tiny)
        opt_d = torch.optim.AdamW(heads.parameters(), lr=2e-4, betas=(0.9, 0.95), weight_decay=0.0,
                                  fused=not a.tiny)
        mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
        ac = dict(device_type="cpu" if a.tiny else "cuda", dtype=torch.bfloat16, enabled=not a.tiny)

        def disc(x):
            r = torch.rand(x.shape[0], 7, device=dev)
            x = sr.diffaug(x, r, (True, True, True), 0.0)
            return heads(sr.dino_features(vit, x, DIN, DP, DIN // DP))

        def step(images):
            with torch.no_grad():
                x = F.interpolate(images, size=(ENC_IN, ENC_IN), mode="bicubic", align_corners=False)
                z = enc((x - mean) / std).last_hidden_state[:, 5:]
            sigma = 0.8 * torch.rand(z.shape[0], 1, 1, device=dev)
            zn = z + sigma * torch.randn_like(z)
            opt_g.zero_grad(set_to_none=True)
            heads.eval()
            with torch.autocast(**ac):
                recon = dref.decoder_forward(P, zn, H, patch) * std + mean
                rec = (recon - images).abs().mean()
                lpl = lp(images * 2 - 1, recon * 2 - 1).mean()
                total_rec = rec + lpl
                gan = -torch.mean(disc(recon * 2 - 1))
            lam = sr.adaptive_weight(total_rec, gan, P["decoder_pred.weight"], 1e4)
            (total_rec + 0.75 * lam * gan).backward()
            opt_g.step()
            opt_d.zero_grad(set_to_none=True)
            heads.train()
            with torch.autocast(**ac):
                with torch.no_grad():
                    fake = sr.quantize(dref.decoder_forward(P, z, H, patch) * std + mean)
                lf, lr = disc(fake * 2 - 1), disc(images * 2 - 1)
                d_loss = 0.5 * (torch.mean(F.relu(1.0 - lr)) + torch.mean(F.relu(1.0 + lf)))
            d_loss.backward()
            opt_d.step()
            return float(rec), float(d_loss)

        images = torch.rand(a.batch, 3, S, S, device=dev)
        times = []
        for i in range(a.steps):
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            rec, dl = step(images)
            if dev == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            print(f"step {i}: {times[-1]:.3f} s  l1 {rec:.4f}  disc {dl:.4f}", file=sys.stderr)
        timed = sorted(times[2:]) if len(times) > 2 else times
        med = timed[len(timed) // 2]
        peak = torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None
        print(json.dumps({"name": name, "batch": a.batch, "ok": True, "images_per_s": a.batch / med,
                          "s_per_step": med, "peak_mem_gib": peak, "torch": torch.__version__}))
    except Exception as e:
        msg = str(e).splitlines()[0][:300]
        peak = None
        try:
            peak = torch.cuda.max_memory_allocated() / 2**30
        except Exception:
            pass
        print(json.dumps({"name": name, "batch": a.batch, "ok": False, "error": msg, "peak_mem_gib": peak}))


if __name__ == "__main__":
    main()
