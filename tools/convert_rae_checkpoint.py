#!/usr/bin/env python3
"""Convert RAE release .pt files to safetensors for the C++ tools.

  stage 2 (DiT^DH):  convert_rae_checkpoint.py stage2 IN.pt OUT.safetensors [--which ema|model]
                       [--preset DiTDH-XL] [--num-heads 16,16] [--body-depth N] [--head-depth N]
  decoder model.pt:  convert_rae_checkpoint.py decoder IN.pt OUT.safetensors
                       [--preset ViT-XL] [--num-heads 16] [--which ema|model]
  stat.pt:           convert_rae_checkpoint.py stats IN.pt OUT.safetensors

Stage-2 release checkpoints hold {"model": state_dict, "ema": state_dict, ...} (or a bare state
dict). Names are kept as in the release (blocks.0.attn.qkv.weight, ...), wrapper prefixes
("module.", "_orig_mod.") are stripped, and the RoPE tables (enc_feat_rope.*, dec_feat_rope.*),
which the C++ model rebuilds, are dropped. The model's type and config go into the metadata
("model_type", "model_config") so `rae model-forward` / `rae sample` build it without guessing.

Depths are never guessed. The number of blocks comes from the tensor names; where the body and
the head have different widths, the names also tell where the head starts. Where they have the
same width they do not, and --head-depth (or --body-depth, or a --preset whose head depth is
known) must say it; an option that contradicts the names is an error.

Decoders: the release's decoder .pt (GeneralDecoder.state_dict(), as src/extract_decoder.py
writes it), or a stage-1 training checkpoint ({"model"/"ema": RAE state dict}, whose decoder
names carry a "decoder." prefix and whose encoder/discriminator tensors are dropped). The names
stay the release's (decoder_embed.weight, decoder_layers.0.attention.attention.query.weight, ...,
trainable_cls_token, decoder_pos_embed) and the architecture goes into the metadata as model
type "ViTDecoder" with its config (head counts from --preset or --num-heads; else the release's
12 for width 768, 16 for 1024 and 1152).
"""
import argparse
import json
import math
import sys

# Head counts (body, head) and head depths of the release presets; decoder head counts.
DECODER_PRESET_HEADS = {"ViT-B": 12, "ViT-L": 16, "ViT-XL": 16}
PRESET_HEADS = {"DiTDH-S": (6, 16), "DiTDH-B": (12, 16), "DiTDH-L": (16, 16), "DiTDH-XL": (16, 16)}
PRESET_HEAD_DEPTH = {"DiTDH-S": 2, "DiTDH-B": 2, "DiTDH-L": 2, "DiTDH-XL": 2}


class ConvertError(Exception):
    pass


def dit_depths(shapes, body_depth=None, head_depth=None, preset=None):
    """(body_depth, head_depth) of a DiT^DH state dict from its tensor shapes {name: shape}.

    Raises ConvertError when the names cannot tell and no option does, or when an option
    contradicts the names."""
    depth = 0
    while f"blocks.{depth}.norm1.weight" in shapes:
        depth += 1
    if depth == 0:
        raise ConvertError("no blocks.N.norm1.weight tensors: not a DiT state dict")
    if "s_embedder.proj.weight" not in shapes:  # plain LightningDiT: every block is body
        if head_depth not in (None, 0):
            raise ConvertError(f"--head-depth {head_depth}: a plain LightningDiT has no head")
        return depth, 0
    body_width = shapes["s_embedder.proj.weight"][0]
    head_width = shapes["x_embedder.proj.weight"][0]
    if body_depth is not None and head_depth is not None and body_depth + head_depth != depth:
        raise ConvertError(f"--body-depth {body_depth} + --head-depth {head_depth} != {depth} blocks")
    wanted_head = head_depth if head_depth is not None else (
        depth - body_depth if body_depth is not None else None)
    source = "--head-depth" if head_depth is not None else "--body-depth"
    if wanted_head is None and preset is not None:
        wanted_head, source = PRESET_HEAD_DEPTH[preset], f"--preset {preset}"
    if body_width != head_width:
        widths = [shapes[f"blocks.{i}.norm1.weight"][0] for i in range(depth)]
        body = 0
        while body < depth and widths[body] == body_width:
            body += 1
        if any(w != head_width for w in widths[body:]):
            raise ConvertError(f"block widths {widths} are not {body_width} (body) then {head_width} (head)")
        if wanted_head is not None and wanted_head != depth - body:
            raise ConvertError(f"{source} says a head depth of {wanted_head}, the tensor names "
                               f"have {depth - body} head blocks ({body} of width {body_width}, "
                               f"then {depth - body} of width {head_width})")
        return body, depth - body
    if wanted_head is None:
        raise ConvertError(f"body and head are both {body_width} wide, so the tensor names do not "
                           f"tell where the head starts among the {depth} blocks: give --head-depth "
                           f"(or --body-depth, or --preset)")
    if not 1 <= wanted_head < depth:
        raise ConvertError(f"{source}: head depth {wanted_head} outside 1..{depth - 1}")
    return depth - wanted_head, wanted_head


def load_pt(path):
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # older pickles with non-tensor objects (e.g. OmegaConf in the dict)
        return torch.load(path, map_location="cpu", weights_only=False)


def strip(name):
    for p in ("module.", "_orig_mod."):
        while name.startswith(p):
            name = name[len(p):]
    return name.replace("._orig_mod.", ".")


def flatten(obj, prefix=""):
    import torch
    out = {}
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    return out


def contiguous_f32(t):
    t = t.detach().cpu()
    if t.is_floating_point():
        t = t.float()
    return t.contiguous()


def stage2(args):
    import torch
    from safetensors.torch import save_file
    ck = load_pt(args.input)
    sd = ck[args.which] if isinstance(ck, dict) and args.which in ck else ck
    if not isinstance(sd, dict):
        sys.exit(f"{args.input}: no '{args.which}' state dict")
    out = {}
    for k, v in sd.items():
        k = strip(k)
        if k.startswith(("enc_feat_rope.", "dec_feat_rope.", "feat_rope.")):
            continue
        if isinstance(v, torch.Tensor):
            out[k] = contiguous_f32(v)
    try:
        body, head = dit_depths({k: tuple(v.shape) for k, v in out.items()}, args.body_depth,
                                args.head_depth, args.preset)
    except ConvertError as e:
        sys.exit(f"{args.input}: {e}")
    if args.num_heads:
        heads = tuple(int(h) for h in args.num_heads.split(","))
    elif args.preset in PRESET_HEADS:
        heads = PRESET_HEADS[args.preset]
    else:
        sys.exit("give --preset or --num-heads (head counts are not in the state dict)")
    plain = head == 0
    s_w = out["x_embedder.proj.weight"] if plain else out["s_embedder.proj.weight"]
    x_w = out["x_embedder.proj.weight"]
    table = out["y_embedder.embedding_table.weight"]
    cfg = dict(name=args.preset or "converted", in_channels=s_w.shape[1],
               grid=int(round(math.sqrt(out["pos_embed"].shape[1]))),
               num_classes=table.shape[0] - 1, body_width=s_w.shape[0], body_depth=body,
               body_heads=heads[0], head_width=0 if plain else x_w.shape[0], head_depth=head,
               head_heads=0 if plain else heads[1], mlp_ratio=4.0, class_dropout=0.1,
               fourier_size=out["t_embedder.W"].shape[0])
    meta = {"model_type": "DiT" if plain else "DiTDH", "model_config": json.dumps(cfg),
            "source": args.input}
    save_file(out, args.output, metadata=meta)
    n = sum(v.numel() for k, v in out.items() if k not in ("pos_embed", "t_embedder.W"))
    print(f"wrote {args.output}: {len(out)} tensors, {n / 1e6:.1f}M parameters, config {cfg}")


def decoder(args):
    from safetensors.torch import save_file
    ck = load_pt(args.input)
    if isinstance(ck, dict) and isinstance(ck.get(args.which), dict):
        ck = ck[args.which]
    elif isinstance(ck, dict) and isinstance(ck.get("model"), dict):
        ck = ck["model"]
    out, dropped = {}, []
    for k, v in flatten(ck).items():
        k = strip(k)
        if k.startswith("decoder."):  # a whole RAE state dict
            k = k[len("decoder."):]
        if k.startswith("decoder_") or k == "trainable_cls_token":
            out[k] = contiguous_f32(v)
        else:
            dropped.append(k)
    if "decoder_embed.weight" not in out:
        sys.exit(f"{args.input}: no decoder_embed.weight: not a decoder state dict")
    width, latent = out["decoder_embed.weight"].shape
    depth = 0
    while f"decoder_layers.{depth}.layernorm_before.weight" in out:
        depth += 1
    patch = int(round(math.sqrt(out["decoder_pred.weight"].shape[0] / 3)))
    grid = int(round(math.sqrt(out["decoder_pos_embed"].shape[1] - 1)))
    if args.num_heads:
        heads = int(args.num_heads)
    elif args.preset in DECODER_PRESET_HEADS:
        heads = DECODER_PRESET_HEADS[args.preset]
    else:
        heads = {768: 12, 1024: 16, 1152: 16}.get(width, max(1, width // 64))
    cfg = dict(name=args.preset or "converted", latent_channels=latent, width=width, depth=depth,
               heads=heads, mlp_hidden=out["decoder_layers.0.intermediate.dense.weight"].shape[0],
               patch=patch, grid=grid, channels=3, ln_eps=1e-12)
    meta = {"model_type": "ViTDecoder", "model_config": json.dumps(cfg), "source": args.input}
    save_file(out, args.output, metadata=meta)
    n = sum(v.numel() for k, v in out.items() if k != "decoder_pos_embed")
    print(f"wrote {args.output}: {len(out)} tensors, {n / 1e6:.1f}M parameters, config {cfg}" +
          (f"; dropped {len(dropped)} non-decoder tensors" if dropped else ""))


def plain_file(args):
    from safetensors.torch import save_file
    ck = load_pt(args.input)
    if isinstance(ck, dict) and "model" in ck and isinstance(ck["model"], dict):
        ck = ck["model"]
    out = {strip(k): contiguous_f32(v) for k, v in flatten(ck).items()}
    save_file(out, args.output, metadata={"source": args.input})
    print(f"wrote {args.output}: {len(out)} tensors: " +
          ", ".join(f"{k}{tuple(v.shape)}" for k, v in list(out.items())[:6]) +
          (" ..." if len(out) > 6 else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["stage2", "decoder", "stats"])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--which", default="ema", choices=["ema", "model"])
    p.add_argument("--preset", choices=sorted(PRESET_HEADS) + sorted(DECODER_PRESET_HEADS))
    p.add_argument("--num-heads", help="stage 2: body,head head counts, e.g. 16,16; decoder: 16")
    p.add_argument("--body-depth", type=int, help="body blocks (checked against the names)")
    p.add_argument("--head-depth", type=int, help="head blocks (checked against the names)")
    args = p.parse_args()
    presets = DECODER_PRESET_HEADS if args.kind == "decoder" else PRESET_HEADS
    if args.preset and args.preset not in presets:
        p.error(f"--preset {args.preset} is not a {args.kind} preset (choose from {sorted(presets)})")
    {"stage2": stage2, "decoder": decoder, "stats": plain_file}[args.kind](args)


if __name__ == "__main__":
    main()
