#!/usr/bin/env python3
"""tools/convert_rae_checkpoint.py never guesses the DiT^DH head depth: it reads the split off
the block widths when body and head differ, needs --head-depth/--body-depth/--preset when they
are equal, and refuses options that contradict the tensor names. Runs without torch (ctest
tools_convert_depths)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from convert_rae_checkpoint import ConvertError, dit_depths  # noqa: E402


def shapes(body, head, wb, wh, plain=False):
    s = {"x_embedder.proj.weight": (wb if plain else wh, 8), "pos_embed": (1, 16, wb)}
    if not plain:
        s["s_embedder.proj.weight"] = (wb, 8)
    for i in range(body + head):
        s[f"blocks.{i}.norm1.weight"] = (wb if i < body else wh,)
    return s


def raises(fn, *want):
    try:
        fn()
    except ConvertError as e:
        for w in want:
            assert w in str(e), f"'{w}' not in: {e}"
        return
    raise AssertionError("no error")


def main():
    # Different widths: the names tell; options must agree.
    assert dit_depths(shapes(12, 2, 384, 2048)) == (12, 2)
    assert dit_depths(shapes(12, 2, 384, 2048), head_depth=2) == (12, 2)
    assert dit_depths(shapes(12, 2, 384, 2048), preset="DiTDH-S") == (12, 2)
    raises(lambda: dit_depths(shapes(12, 2, 384, 2048), head_depth=3), "head depth of 3", "2 head blocks")
    raises(lambda: dit_depths(shapes(12, 2, 384, 2048), body_depth=11), "--body-depth", "2 head blocks")
    # Equal widths: no guess without an option.
    raises(lambda: dit_depths(shapes(10, 3, 512, 512)), "both 512 wide", "--head-depth")
    assert dit_depths(shapes(10, 3, 512, 512), head_depth=3) == (10, 3)
    assert dit_depths(shapes(10, 3, 512, 512), body_depth=10) == (10, 3)
    assert dit_depths(shapes(10, 2, 512, 512), preset="DiTDH-XL") == (10, 2)
    raises(lambda: dit_depths(shapes(10, 3, 512, 512), body_depth=9, head_depth=3), "!= 13 blocks")
    raises(lambda: dit_depths(shapes(10, 3, 512, 512), head_depth=13), "outside 1..12")
    # Plain LightningDiT: all blocks are body.
    assert dit_depths(shapes(6, 0, 64, 64, plain=True)) == (6, 0)
    raises(lambda: dit_depths(shapes(6, 0, 64, 64, plain=True), head_depth=2), "no head")
    raises(lambda: dit_depths({"x_embedder.proj.weight": (4, 4)}), "not a DiT")
    print("convert_rae_checkpoint depth checks: PASS")


if __name__ == "__main__":
    main()
