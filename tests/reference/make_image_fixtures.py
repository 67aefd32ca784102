#!/usr/bin/env python3
"""make_image_fixtures.py - writes the image-module fixtures into tests/data/images/.

Independent oracles for engine/image.c:
  - PNG decoding: the expected RGB is computed with numpy from the arrays the PNGs were written from
    (our policy: grey -> RGB, low bit depths scaled by bit replication, 16 -> 8 rounded to nearest,
    tRNS -> alpha, alpha composited on white with rounding). PNGs come from Pillow where Pillow can
    write the kind (with its adaptive filters), and from a small writer below for what it cannot
    (16-bit RGB/RGBA, 2/4-bit, interlaced, colour-key tRNS). The 8-bit Pillow-written cases are
    cross-checked against Pillow's own decoding.
  - JPEG decoding: Pillow's decode + convert("RGB") (Pillow 13 uses libjpeg-turbo like us).
  - Resize: Pillow Image.resize((w, h), Image.BICUBIC).
  - CLIP: transformers' CLIPImageProcessorPil (the PIL backend; CLIPImageProcessor falls back to it
    when torchvision is absent, and the torchvision backend resizes differently).
  - [-1, 1] conversions: diffusers VaeImageProcessor pil_to_numpy/normalize and
    denormalize/numpy_to_pil.

Output: inputs (*.png, *.jpg, bad_*) plus expected/*.bin raw little-endian arrays described by
expected/index.txt, one line per array: "<name> <u8|f32> <d0> <d1> <d2> <file>".

Regenerate (from the repository root):
    /root/refenv/bin/python tests/reference/make_image_fixtures.py
Pinned versions: tests/reference/requirements.txt (Pillow 13.0.0, numpy 2.4.6, transformers 5.23.0,
diffusers 0.42.1). Deterministic: same versions give byte-identical files.
"""
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "images")
EXP = os.path.join(OUT, "expected")
W, H = 37, 23
index = []


def save_expected(name, arr):
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.uint8:
        dt = "u8"
    elif arr.dtype == np.float32:
        dt = "f32"
        assert np.all(np.isfinite(arr)), name
    else:
        raise TypeError(arr.dtype)
    shape = list(arr.shape) + [1] * (3 - arr.ndim)
    fn = name + ".bin"
    with open(os.path.join(EXP, fn), "wb") as f:
        f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    index.append(f"{name} {dt} {shape[0]} {shape[1]} {shape[2]} {fn}")


# ---- a tiny PNG writer for the kinds Pillow cannot produce ---------------------------------------
def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _pack_row(row, depth):
    """row: 1-D array of samples (already interleaved channels)."""
    if depth == 16:
        return row.astype(">u2").tobytes()
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    per = 8 // depth
    n = (len(row) + per - 1) // per
    out = bytearray(n)
    for i, v in enumerate(row):
        out[i // per] |= int(v) << (8 - depth * (i % per + 1))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, samples, color_type, depth, palette=None, trns=None, interlace=False):
    """samples: (h, w, c) integer array of raw sample values."""
    h, w, c = samples.shape
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for r in sub:
            raw += b"\x00" + _pack_row(r.reshape(-1), depth)
    data = b"\x89PNG\r\n\x1a\n"
    data += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        data += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        data += _chunk(b"tRNS", trns)
    data += _chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    data += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# ---- the policy, in numpy ------------------------------------------------------------------------
def to8(v, depth):
    v = v.astype(np.int64)
    if depth == 16:
        return ((v * 255 + 32767) // 65535).astype(np.int64)
    return v * (255 // ((1 << depth) - 1))  # bit replication == v * 255 / max exactly


def over_white(rgb, a):
    rgb = rgb.astype(np.int64)
    a = a.astype(np.int64)[..., None]
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def expand(rgb8, a8=None):
    if rgb8.ndim == 2:
        rgb8 = np.repeat(rgb8[..., None], 3, axis=2)
    if a8 is None:
        return rgb8.astype(np.uint8)
    return over_white(rgb8, a8)


def pillow_rgb_on_white(path):
    im = Image.open(path)
    im.load()
    rgba = np.asarray(im.convert("RGBA"))
    return over_white(rgba[..., :3], rgba[..., 3])


def scene(w, h, seed):
    """Smooth gradients, hard edges and noise: exercises clipping in the resize lobes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = np.where((x // 6 + y // 5) % 2 == 0, 230, 20).astype(np.float64)
    b = 255.0 * x / max(w - 1, 1)
    img = np.stack([r, g, b], axis=2) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def pattern(w, h):
    """Also generated by tests/test_image.c (pattern()), so the large inputs need no file."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    chans = [(x * 13 + y * 29 + ((x * y) % 17) * 9 + c * 71) & 255 for c in range(3)]
    return np.stack(chans, axis=2).astype(np.uint8)


def main():
    os.makedirs(EXP, exist_ok=True)
    for d in (OUT, EXP):
        for fn in os.listdir(d):
            p = os.path.join(d, fn)
            if os.path.isfile(p):
                os.remove(p)
    rng = np.random.default_rng(1234)
    rgb = scene(W, H, 1)
    grey = (rgb.astype(np.int64) @ np.array([299, 587, 114]) // 1000).astype(np.uint8)
    alpha = rng.integers(0, 256, (H, W), dtype=np.int64).astype(np.uint8)
    alpha[0, :5] = [0, 255, 1, 254, 128]
    P = lambda n: os.path.join(OUT, n)  # noqa: E731

    # -- PNG written by Pillow (adaptive filters), expected from the source arrays --
    cases = []
    Image.fromarray(rgb, "RGB").save(P("png_rgb8.png"))
    cases.append(("png_rgb8", expand(rgb)))
    rgba = np.dstack([rgb, alpha])
    Image.fromarray(rgba, "RGBA").save(P("png_rgba8.png"))
    cases.append(("png_rgba8", expand(rgb, alpha)))
    Image.fromarray(grey, "L").save(P("png_l8.png"))
    cases.append(("png_l8", expand(grey)))
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(P("png_la8.png"))
    cases.append(("png_la8", expand(grey, alpha)))
    bits = (grey > 128)
    Image.fromarray(bits).convert("1").save(P("png_l1.png"))
    cases.append(("png_l1", expand(np.where(bits, 255, 0).astype(np.uint8))))
    # palette with per-entry alpha (tRNS shorter than the palette: the rest are opaque)
    pal = rng.integers(0, 256, (40, 3), dtype=np.int64).astype(np.uint8)
    pal_alpha = rng.integers(0, 256, 25, dtype=np.int64).astype(np.uint8)
    pal_alpha[:3] = [0, 255, 77]
    idx = rng.integers(0, 40, (H, W), dtype=np.int64).astype(np.uint8)
    pim = Image.fromarray(idx, "P")
    pim.putpalette(pal.reshape(-1).tolist())
    pim.save(P("png_p8_trns.png"), transparency=bytes(pal_alpha))
    full_alpha = np.concatenate([pal_alpha, np.full(40 - 25, 255, np.uint8)])
    cases.append(("png_p8_trns", expand(pal[idx], full_alpha[idx])))
    for name, exp in cases:  # Pillow's own decode agrees on every 8-bit kind it wrote
        assert np.array_equal(pillow_rgb_on_white(P(name + ".png")), exp), name

    # -- PNG kinds Pillow cannot write --
    g16 = rng.integers(0, 65536, (H, W), dtype=np.int64)
    g16[0, :6] = [0, 65535, 128, 129, 32767, 32768]  # rounding edges of v * 255 / 65535
    write_png(P("png_l16.png"), g16[..., None], 0, 16)
    cases.append(("png_l16", expand(to8(g16, 16))))
    c16 = rng.integers(0, 65536, (H, W, 3), dtype=np.int64)
    write_png(P("png_rgb16.png"), c16, 2, 16)
    cases.append(("png_rgb16", expand(to8(c16, 16))))
    a16 = rng.integers(0, 65536, (H, W), dtype=np.int64)
    write_png(P("png_rgba16_interlaced.png"), np.dstack([c16, a16]), 6, 16, interlace=True)
    cases.append(("png_rgba16_interlaced", expand(to8(c16, 16), to8(a16, 16))))
    write_png(P("png_la16.png"), np.dstack([g16, a16]), 4, 16)
    cases.append(("png_la16", expand(to8(g16, 16), to8(a16, 16))))
    for depth in (2, 4):
        gv = rng.integers(0, 1 << depth, (H, W), dtype=np.int64)
        write_png(P(f"png_l{depth}.png"), gv[..., None], 0, depth)
        cases.append((f"png_l{depth}", expand(to8(gv, depth).astype(np.uint8))))
    # 4-bit palette with tRNS, interlaced
    pal16 = rng.integers(0, 256, (16, 3), dtype=np.int64).astype(np.uint8)
    tr16 = rng.integers(0, 256, 16, dtype=np.int64).astype(np.uint8)
    idx16 = rng.integers(0, 16, (H, W), dtype=np.int64)
    write_png(P("png_p4_trns_interlaced.png"), idx16[..., None], 3, 4, palette=pal16, trns=bytes(tr16),
              interlace=True)
    cases.append(("png_p4_trns_interlaced", expand(pal16[idx16], tr16[idx16])))
    write_png(P("png_rgb8_interlaced.png"), rgb, 2, 8, interlace=True)
    cases.append(("png_rgb8_interlaced", expand(rgb)))
    assert np.array_equal(pillow_rgb_on_white(P("png_rgb8_interlaced.png")), rgb)
    # colour-key transparency: one RGB value and one grey value are fully transparent
    key = rgb[3, 4].astype(np.int64)
    write_png(P("png_rgb8_trns.png"), rgb, 2, 8, trns=struct.pack(">HHH", *key))
    keyed = np.all(rgb == key, axis=2)
    cases.append(("png_rgb8_trns", expand(rgb, np.where(keyed, 0, 255))))
    gkey = int(grey[5, 6])
    write_png(P("png_l8_trns.png"), grey[..., None], 0, 8, trns=struct.pack(">H", gkey))
    cases.append(("png_l8_trns", expand(grey, np.where(grey == gkey, 0, 255))))
    # a 1x1 image: the smallest legal PNG
    write_png(P("png_1x1.png"), np.array([[[10, 200, 30]]]), 2, 8)
    cases.append(("png_1x1", np.array([[[10, 200, 30]]], np.uint8)))

    # -- JPEG written and decoded by Pillow --
    Image.fromarray(rgb).save(P("jpg_baseline.jpg"), quality=90)
    Image.fromarray(rgb).save(P("jpg_444.jpg"), quality=95, subsampling=0)
    Image.fromarray(rgb).save(P("jpg_progressive.jpg"), quality=85, progressive=True)
    Image.fromarray(grey, "L").save(P("jpg_grey.jpg"), quality=90)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk_arr = np.asarray(cmyk).copy()
    cmyk_arr[..., 3] = rng.integers(0, 120, (H, W))  # a real black channel
    Image.fromarray(cmyk_arr, "CMYK").save(P("jpg_cmyk.jpg"), quality=92)
    for n in ("jpg_baseline", "jpg_444", "jpg_progressive", "jpg_grey", "jpg_cmyk"):
        im = Image.open(P(n + ".jpg"))
        cases.append((n, np.asarray(im.convert("RGB"))))

    for name, arr in cases:
        assert arr.shape == ((1, 1, 3) if name == "png_1x1" else (H, W, 3)), name
        save_expected("decode_" + name, arr.astype(np.uint8))

    # -- resize: Pillow bicubic --
    src = Image.fromarray(rgb)
    for (w, h) in [(16, 10), (80, 51), (37, 7), (11, 23), (1, 1), (1, 23), (60, 12), (5, 40), (36, 22), (33, 9), (33, 15), (33, 14)]:
        save_expected(f"resize_scene_{w}x{h}", np.asarray(src.resize((w, h), Image.BICUBIC)))
    for (sw, sh, w, h) in [(512, 384, 7, 5), (512, 384, 100, 75), (64, 48, 151, 103), (300, 200, 61, 203)]:
        pim = Image.fromarray(pattern(sw, sh))
        save_expected(f"resize_pattern{sw}x{sh}_{w}x{h}", np.asarray(pim.resize((w, h), Image.BICUBIC)))

    # -- CLIPImageProcessorPil --
    from transformers import CLIPImageProcessorPil
    import transformers

    proc = CLIPImageProcessorPil()
    assert proc.size["shortest_edge"] == 224 and proc.crop_size["height"] == 224
    clip_inputs = {"scene": rgb, "pattern300x451": pattern(300, 451)}
    for n, arr in clip_inputs.items():
        pv = proc(images=Image.fromarray(arr), return_tensors="np")["pixel_values"][0]
        assert pv.shape == (3, 224, 224) and pv.dtype == np.float32
        # every 7th row keeps the fixture small while touching every column and channel
        save_expected(f"clip224_{n}_rows7", np.ascontiguousarray(pv[:, ::7, :]))
    small = CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    pv = small(images=Image.fromarray(pattern(300, 451)), return_tensors="np")["pixel_values"][0]
    save_expected("clip64_pattern300x451", pv)

    # -- diffusers VaeImageProcessor conversions --
    from diffusers.image_processor import VaeImageProcessor
    import diffusers
    import torch

    t = VaeImageProcessor.normalize(VaeImageProcessor.pil_to_numpy(Image.fromarray(rgb)))[0]
    save_expected("pm1_scene", np.ascontiguousarray(t.transpose(2, 0, 1)).astype(np.float32))
    x = rng.uniform(-1.3, 1.3, (3, H, W)).astype(np.float32)
    flat = x.reshape(-1)
    k = np.arange(256, dtype=np.float32)
    # values whose scaled form lands on or next to k + 0.5 (round-half-even territory)
    near = ((k + 0.5) / 255.0 * 2.0 - 1.0).astype(np.float32)
    flat[: 256] = near
    flat[256:512] = np.nextafter(near, np.float32(2))
    flat[512:520] = [-1, 1, 0, -0.0, -5, 5, 1e-8, -1e-8]
    xt = torch.from_numpy(x.copy())[None]
    den = VaeImageProcessor.denormalize(xt).permute(0, 2, 3, 1).float().numpy()
    u8 = np.asarray(VaeImageProcessor.numpy_to_pil(den)[0])
    save_expected("u8_from_pm1_in", x)
    save_expected("u8_from_pm1_out", u8)

    # -- bad files (the tests also cut the good ones at several points themselves) --
    def png_header(w, h):
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))

    with open(P("bad_png_side_40000.png"), "wb") as f:
        f.write(png_header(40000, 10) + _chunk(b"IEND", b""))
    with open(P("bad_png_pixels_20000x20000.png"), "wb") as f:
        f.write(png_header(20000, 20000) + _chunk(b"IEND", b""))
    with open(P("bad_png_zero_width.png"), "wb") as f:
        f.write(png_header(0, 10) + _chunk(b"IEND", b""))
    with open(P("bad_png_bad_crc.png"), "wb") as f:
        good = open(P("png_rgb8.png"), "rb").read()
        bad = bytearray(good)
        bad[50] ^= 0xFF  # inside the first IDAT: zlib or CRC failure on a critical chunk
        f.write(bytes(bad))
    jpg = bytearray(open(P("jpg_baseline.jpg"), "rb").read())
    sof = jpg.index(b"\xff\xc0")
    big = bytearray(jpg)
    big[sof + 5:sof + 9] = struct.pack(">HH", 100, 40000)  # height 100, width 40000
    with open(P("bad_jpg_side_40000.jpg"), "wb") as f:
        f.write(bytes(big))
    zero = bytearray(jpg)
    zero[sof + 5:sof + 7] = struct.pack(">H", 0)
    with open(P("bad_jpg_zero_height.jpg"), "wb") as f:
        f.write(bytes(zero))
    with open(P("bad_text.png"), "w") as f:
        f.write("this is not an image, just text with a .png name\n")
    with open(P("bad_random.jpg"), "wb") as f:
        f.write(np.random.default_rng(7).integers(0, 256, 300, dtype=np.int64).astype(np.uint8).tobytes())
    open(P("bad_empty.png"), "wb").close()

    with open(os.path.join(EXP, "index.txt"), "w") as f:
        f.write(f"# generated by tests/reference/make_image_fixtures.py: Pillow {PIL.__version__}, "
                f"numpy {np.__version__}, transformers {transformers.__version__}, "
                f"diffusers {diffusers.__version__}\n")
        f.write("\n".join(index) + "\n")
    total = sum(os.path.getsize(os.path.join(d, fn)) for d in (OUT, EXP) for fn in os.listdir(d)
                if os.path.isfile(os.path.join(d, fn)))
    print(f"wrote {len(index)} expected arrays; fixtures total {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
