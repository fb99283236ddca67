"""Goldens for image decoding against PIL's defaults (tests/data/test_image_cases.cpp).

Writes small PNG and JPEG files into tests/goldens/images/cases/: every PNG color type and bit
depth (1, 2, 4, 8, 16; gray, gray+alpha, RGB, RGBA, palette; with tRNS), and damaged variants of
a valid PNG and JPEG (truncated, missing trailer, corrupt data, bad CRCs, junk, headers that claim
a huge size). For each file, cases.json records what PIL (ImageFile.LOAD_TRUNCATED_IMAGES = False,
the default; MAX_IMAGE_PIXELS default) does: "ok" with the RGB bytes of
Image.open(f).convert("RGB") in <name>.rgb, or "error" with PIL's exception; and where rae
deliberately differs, "rae" says what rae does and why.

PNGs are written by the small encoder below (zlib + struct), so that bit depths PIL cannot write
are covered. Run: .venv/bin/python tests/reference/make_image_cases_goldens.py
"""
import io
import json
import os
import struct
import warnings
import zlib

import numpy as np
import PIL
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "goldens", "images", "cases")
W, H = 7, 5


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, color_type, depth, rows, extra=b"", plte=None):
    """rows: list of bytes, each one scanline (without the filter byte)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    body = chunk(b"IHDR", ihdr)
    if plte is not None:
        body += chunk(b"PLTE", plte)
    body += extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def pack_bits(values, depth):
    """Packs a row of small integers MSB first (PNG sub-byte depths)."""
    out, acc, n = bytearray(), 0, 0
    for v in values:
        acc = (acc << depth) | int(v)
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def samples(depth, count, seed):
    """A spread of values of a bit depth, extremes included."""
    g = np.random.default_rng(seed)
    top = (1 << depth) - 1
    v = g.integers(0, top + 1, size=count)
    v[:4] = [0, top, top // 2, min(top, 255)]
    if depth == 16:
        v[4:8] = [1, 255, 256, 300]
    return v


def rows_of(values, depth, per_pixel):
    rows = []
    stride = W * per_pixel
    for y in range(H):
        part = values[y * stride:(y + 1) * stride]
        if depth == 16:
            rows.append(b"".join(struct.pack(">H", int(v)) for v in part))
        elif depth == 8:
            rows.append(bytes(int(v) for v in part))
        else:
            rows.append(pack_bits(part, depth))
    return rows


def png_variants():
    files = {}
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
    depths = {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}
    names = {0: "gray", 2: "rgb", 3: "palette", 4: "gray_alpha", 6: "rgba"}
    for ct, ds in depths.items():
        for d in ds:
            ch = channels[ct]
            vals = samples(d, W * H * ch, seed=ct * 100 + d)
            plte = None
            if ct == 3:
                n = 1 << d
                plte = bytes(int(x) for x in np.random.default_rng(d).integers(0, 256, size=3 * n))
            files[f"{names[ct]}{d}.png"] = png(W, H, ct, d, rows_of(vals, d, ch), plte=plte)
    # Transparency chunks: dropped by convert("RGB") (no compositing).
    vals = samples(8, W * H * 3, 7)
    trns = chunk(b"tRNS", struct.pack(">HHH", 10, 20, 30))
    files["rgb8_trns.png"] = png(W, H, 2, 8, rows_of(vals, 8, 3), extra=trns)
    vals = samples(16, W * H, 8)
    files["gray16_trns.png"] = png(W, H, 0, 16, rows_of(vals, 16, 1), extra=chunk(b"tRNS", struct.pack(">H", 300)))
    vals = samples(4, W * H, 9)
    plte = bytes(range(48))
    files["palette4_trns.png"] = png(W, H, 3, 4, rows_of(vals, 4, 1), plte=plte,
                                     extra=chunk(b"tRNS", bytes([0, 128, 255])))
    return files


def chunks_of(data):
    pos, out = 8, []
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        out.append((data[pos + 4:pos + 8], pos, n))
        pos += 12 + n
    return out


def smooth_rgb(w, h, seed):
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    arr = np.stack([0.5 + 0.4 * np.sin(g.uniform(0.1, 0.5) * xx + c) * np.cos(g.uniform(0.1, 0.5) * yy)
                    for c in range(3)], -1)
    return np.clip(arr * 255 + 0.5, 0, 255).astype(np.uint8)


def damaged():
    files = {}
    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(24, 16, 1)).save(buf, "PNG")
    p = buf.getvalue()
    files["png_ok.png"] = p
    files["png_half.png"] = p[:len(p) // 2]
    files["png_no_iend.png"] = p[:-12]
    files["png_trailing_junk.png"] = p + b"junkjunk"
    idat = [c for c in chunks_of(p) if c[0] == b"IDAT"][0]
    c = bytearray(p)
    c[idat[1] + 8 + idat[2] // 2] ^= 0x55
    s = idat[1] + 4  # corrupt data with a matching CRC: the zlib stream is broken
    c[s + 4 + idat[2]:s + 8 + idat[2]] = struct.pack(">I", zlib.crc32(bytes(c[s:s + 4 + idat[2]])) & 0xFFFFFFFF)
    files["png_corrupt_data.png"] = bytes(c)
    c = bytearray(p)
    c[8 + 8 + 13] ^= 1
    files["png_ihdr_crc.png"] = bytes(c)
    files["png_text_crc.png"] = p[:33] + struct.pack(">I", 3) + b"tEXta\x00b" + b"\0\0\0\0" + p[33:]
    c = bytearray(p)
    c[idat[1] + 8 + idat[2]] ^= 1
    files["png_idat_crc.png"] = bytes(c)
    bomb = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    files["png_bomb.png"] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bomb) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")

    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(64, 48, 2)).save(buf, "JPEG", quality=90)
    j = buf.getvalue()
    files["jpeg_ok.jpg"] = j
    files["jpeg_half.jpg"] = j[:len(j) // 2]
    files["jpeg_no_eoi.jpg"] = j[:-2]
    files["jpeg_header_only.jpg"] = j[:j.find(b"\xff\xda") + 14]
    files["jpeg_trailing_junk.jpg"] = j + b"garbage"
    c = bytearray(j)
    for i in range(len(j) // 2, len(j) // 2 + 20):
        c[i] ^= 0x5A
    files["jpeg_corrupt_data.jpg"] = bytes(c)
    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(24, 16, 3)).save(buf, "JPEG", quality=90, progressive=True)
    jp = buf.getvalue()
    files["jpeg_progressive_ok.jpg"] = jp
    files["jpeg_progressive_half.jpg"] = jp[:len(jp) // 2]
    # Headers claiming 20000 x 20000 (the audit's small file), then a little scan data: SOF0
    # dimensions patched.
    sof = j.find(b"\xff\xc0")
    c = bytearray(j[:j.find(b"\xff\xda") + 64])
    c[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    files["jpeg_bomb.jpg"] = bytes(c)
    return files


# Where rae deliberately differs from PIL (the C++ test checks rae's behaviour).
RAE_DIFFERS = {
    "png_idat_crc.png": "error: a CRC mismatch in image data is corruption (PIL skips IDAT CRCs)",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    files = png_variants()
    files.update(damaged())
    cases = []
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        case = {"file": name}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im = Image.open(io.BytesIO(data))
                case["pil_mode"] = im.mode
                rgb = np.asarray(im.convert("RGB"))
            case["pil"] = "ok"
            case["size"] = [int(rgb.shape[1]), int(rgb.shape[0])]
            # Pixels are compared only where they are defined: not for data PIL decodes through
            # libjpeg's corrupt-data recovery (the two libjpeg-turbo builds may recover differently).
            if "corrupt" not in name:
                case["rgb"] = name.rsplit(".", 1)[0] + ".rgb"
                with open(os.path.join(OUT, case["rgb"]), "wb") as f:
                    f.write(rgb.tobytes())
        except Exception as e:  # noqa: BLE001 - recording PIL's verdict
            case["pil"] = "error"
            case["pil_error"] = f"{type(e).__name__}: {e}"
        if name in RAE_DIFFERS:
            case["rae"] = RAE_DIFFERS[name]
        cases.append(case)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"pil_version": PIL.__version__, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, PIL {PIL.__version__}")


if __name__ == "__main__":
    main()
