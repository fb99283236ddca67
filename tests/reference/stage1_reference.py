"""The RAE release's stage-1 GAN pieces in PyTorch, transcribed from its definitions
(src/disc/dinodisc.py, src/disc/diffaug.py, src/train_stage1.py), for the stage-1 golden
(make_stage1_golden.py) and the PyTorch side of the device benchmark
(tests/device/torch_stage1_bench.py):

  Heads            DinoDisc's heads: per feature map SpectralConv1d(C, C, 1) -> BatchNormLocal
                   (virtual_bs 1: per sample and channel over the tokens) -> LeakyReLU(0.2) ->
                   Residual(SpectralConv1d(C, C, ks, circular) -> BatchNormLocal -> LeakyReLU),
                   (fn(x) + x) / sqrt(2) -> SpectralConv1d(C, 1, 1); logits concatenated (B, heads*L)
  dino_features    FrozenDINONoDrop.forward on a timm VisionTransformer's weights: bilinear resize
                   to the input size, x * (0.5 / std) + (0.5 - mean) / std, patch conv, CLS, the
                   position grid bilinearly resized, blocks; [last, key depths...]
  diffaug          DiffAug.aug with the seven uniforms per sample and the three flags given
  adaptive_weight  calculate_adaptive_weight: |grad rec| / (|grad gan| + 1e-6), clamped
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BatchNormLocal(nn.Module):
    def __init__(self, c, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        shape = x.size()
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # the release's x.float()
        x = x.view(x.size(0), -1, x.size(-2), x.size(-1))
        mean = x.mean([1, 3], keepdim=True)
        var = x.var([1, 3], keepdim=True, unbiased=False)
        x = (x - mean) / torch.sqrt(var + self.eps)
        x = x * self.weight[None, :, None] + self.bias[None, :, None]
        return x.view(shape)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.ratio = 1 / np.sqrt(2)

    def forward(self, x):
        return (self.fn(x).add(x)).mul_(self.ratio)


def sn_conv(cin, cout, k):
    conv = nn.Conv1d(cin, cout, kernel_size=k, padding=k // 2, padding_mode="circular")
    return torch.nn.utils.spectral_norm(conv, n_power_iterations=1, dim=0, eps=1e-12)


def block(c, k, eps):
    return nn.Sequential(sn_conv(c, c, k), BatchNormLocal(c, eps),
                         nn.LeakyReLU(negative_slope=0.2, inplace=True))


class Heads(nn.Module):
    def __init__(self, c, n, ks=9, eps=1e-6):
        super().__init__()
        self.heads = nn.ModuleList([nn.Sequential(block(c, 1, eps), Residual(block(c, ks, eps)), sn_conv(c, 1, 1))
                                    for _ in range(n)])

    def forward(self, acts):
        B = acts[0].shape[0]
        return torch.cat([h(a).view(B, -1) for h, a in zip(self.heads, acts)], dim=1)


def dino_features(vit, x, input_size, patch, grid0, key_depths=(2, 5, 8, 11)):
    """FrozenDINONoDrop.forward (no_resize False, crop_prob <= 0) -> [last, blocks in key_depths],
    each (B, C, L); `grid0`: the side of vit.pos_embed's grid."""
    x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    mean = torch.tensor((0.485, 0.456, 0.406), dtype=x.dtype, device=x.device)
    std = torch.tensor((0.229, 0.224, 0.225), dtype=x.dtype, device=x.device)
    x = x * (0.5 / std).reshape(1, 3, 1, 1) + ((0.5 - mean) / std).reshape(1, 3, 1, 1)
    x = F.conv2d(x, vit.patch_embed.proj.weight, vit.patch_embed.proj.bias, stride=patch)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([vit.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    grid = input_size // patch
    pos = vit.pos_embed
    if grid != grid0:
        pe_cls, pe_grid = pos[:, :1], pos[0, 1:]
        pe_grid = pe_grid.reshape(1, grid0, grid0, -1).permute(0, 3, 1, 2)
        pe_grid = F.interpolate(pe_grid, size=(grid, grid), mode="bilinear", align_corners=False)
        pos = torch.cat([pe_cls, pe_grid.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)
    x = x + pos
    acts = []
    for i, blk in enumerate(vit.blocks):
        x = blk(x)
        if i in key_depths:
            acts.append(x[:, 1:, :].transpose(1, 2))
    acts.insert(0, x[:, 1:, :].transpose(1, 2))
    return acts


def diffaug(x, r, flags, cutout):
    """The release's DiffAug.aug with rand01 = r (B, 7) float32 and the three flags."""
    trans, color, cut = flags
    Bn, dev = x.shape[0], x.device
    rand01 = r.t().reshape(7, Bn, 1, 1).to(dev)
    raw_h, raw_w = x.shape[-2:]
    if trans:
        dh, dw = round(raw_h * 0.125), round(raw_w * 0.125)
        th = rand01[0].mul(dh + dh + 1).floor().long() - dh
        tw = rand01[1].mul(dw + dw + 1).floor().long() - dw
        gb, gh, gw = torch.meshgrid(torch.arange(Bn, device=dev), torch.arange(raw_h, device=dev),
                                    torch.arange(raw_w, device=dev), indexing="ij")
        gh = (gh + th).add_(1).clamp_(0, raw_h + 1)
        gw = (gw + tw).add_(1).clamp_(0, raw_w + 1)
        pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
        x = pad.permute(0, 2, 3, 1).contiguous()[gb, gh, gw].permute(0, 3, 1, 2).contiguous()
    if color:
        x = x.add(rand01[2].unsqueeze(-1).sub(0.5).to(x.dtype))
        m = x.mean(dim=1, keepdim=True)
        x = x.sub(m).mul(rand01[3].unsqueeze(-1).mul(2).to(x.dtype)).add_(m)
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = x.sub(m).mul(rand01[4].unsqueeze(-1).add(0.5).to(x.dtype)).add_(m)
    if cut and cutout > 0:
        ch, cw = round(raw_h * cutout), round(raw_w * cutout)
        oh = rand01[5].mul(raw_h + (1 - ch % 2)).floor().long()
        ow = rand01[6].mul(raw_w + (1 - cw % 2)).floor().long()
        gb, gh, gw = torch.meshgrid(torch.arange(Bn, device=dev), torch.arange(ch, device=dev),
                                    torch.arange(cw, device=dev), indexing="ij")
        gh = (gh + oh).sub_(ch // 2).clamp(min=0, max=raw_h - 1)
        gw = (gw + ow).sub_(cw // 2).clamp(min=0, max=raw_w - 1)
        mask = torch.ones(Bn, raw_h, raw_w, dtype=x.dtype, device=dev)
        mask[gb, gh, gw] = 0
        x = x.mul(mask.unsqueeze(1))
    return x


def adaptive_weight(recon_loss, gan_loss, layer, max_d_weight):
    g_rec = torch.autograd.grad(recon_loss, layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss, layer, retain_graph=True)[0]
    return torch.clamp(torch.norm(g_rec) / (torch.norm(g_gan) + 1e-6), 0.0, max_d_weight).detach()


def quantize(x):
    """The discriminator step's discretisation of the fake images in [-1, 1]."""
    x = x.clamp(-1.0, 1.0)
    return torch.round((x + 1.0) * 127.5) / 127.5 - 1.0
