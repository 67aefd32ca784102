#!/usr/bin/env python3
"""make_mix_fixtures.py - writes tests/data/augment/: the DiffuseMix hybrid and fractal blend computed
with numpy exactly as DiffuseMix's released code does it (augment/utils.py: combine_images with a
20-pixel np.linspace ramp stacked between np.zeros and np.ones, float32 images divided by 255, a
float64 mask, np.clip(x * 255, 0, 255).astype(np.uint8); blend_images_with_resize with alpha 0.20 on
float32 arrays), and Pillow's convert("L") for the luminance of the degenerate-output check.

These are the independent oracle for engine/augment/mix.c (test_augment.c, test_mix_fixtures).
Inputs are the pattern() images below; the C test builds the same patterns.

Regenerate (from the repository root):
    /root/refenv/bin/python tests/reference/make_mix_fixtures.py
Pinned versions: tests/reference/requirements.txt (numpy 2.4.6, Pillow 13.0.0).
Output: raw uint8 HWC files named in tests/data/augment/index.txt ("<name> <h> <w> <c> <file>").
"""
import os

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "augment")
W, H = 64, 48


def pattern(w, h, s):
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w, 3), dtype=np.uint8)
    for c in range(3):
        out[:, :, c] = ((x * 13 + y * 29 + (x * y % 17) * 9 + c * 71 + s * 101) & 255).astype(np.uint8)
    return out


def ramp_inputs():
    """256 x 40: every byte value of the original in every ramp row, against varied generated values."""
    y, x = np.mgrid[0:40, 0:256]
    orig = np.zeros((40, 256, 3), dtype=np.uint8)
    gen = np.zeros((40, 256, 3), dtype=np.uint8)
    for c in range(3):
        orig[:, :, c] = x.astype(np.uint8)
        gen[:, :, c] = ((x * 37 + y * 11 + c * 85) & 255).astype(np.uint8)
    return orig, gen


def pair_inputs():
    """256 x 256: every (hybrid byte, fractal byte) pair once per channel."""
    y, x = np.mgrid[0:256, 0:256]
    base = np.stack([x, x, (x + 128) & 255], axis=2).astype(np.uint8)
    over = np.stack([y, (y + 64) & 255, y], axis=2).astype(np.uint8)
    return base, over


def ramp_mask(n, blend_width=20):
    # the released code's construction, one axis
    return np.concatenate([np.zeros(n // 2 - blend_width // 2), np.linspace(0, 1, blend_width),
                           np.ones(n // 2 - blend_width // 2 + blend_width % 2)])


def hybrid(orig, gen, choice):
    h, w, _ = orig.shape
    if choice == "vertical":
        mask = np.tile(ramp_mask(h).reshape(-1, 1), (1, w))
    else:
        mask = np.tile(ramp_mask(w).reshape(1, -1), (h, 1))
    mask = np.tile(mask[:, :, np.newaxis], (1, 1, 3))
    o = np.array(orig, dtype=np.float32) / 255.0
    g = np.array(gen, dtype=np.float32) / 255.0
    blended = (1 - mask) * o + mask * g
    assert blended.dtype == np.float64
    return np.clip(blended * 255, 0, 255).astype(np.uint8)


def blend(base, overlay, alpha=0.20):
    b = np.array(base, dtype=np.float32)
    f = np.array(overlay, dtype=np.float32)
    out = (1 - alpha) * b + alpha * f
    assert out.dtype == np.float32
    return np.clip(out, 0, 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    I, G, F = pattern(W, H, 1), pattern(W, H, 2), pattern(W, H, 3)
    arrays = {
        "hybrid_vertical": hybrid(I, G, "vertical"),
        "hybrid_horizontal": hybrid(I, G, "horizontal"),
    }
    arrays["blend_vertical"] = blend(arrays["hybrid_vertical"], F)
    arrays["blend_horizontal"] = blend(arrays["hybrid_horizontal"], F)
    ro, rg = ramp_inputs()
    arrays["ramp_hybrid_vertical"] = hybrid(ro, rg, "vertical")
    pb, po = pair_inputs()
    arrays["pairs_blend"] = blend(pb, po)
    arrays["luma_I"] = np.array(Image.fromarray(I).convert("L"))[:, :, np.newaxis]
    arrays["luma_G"] = np.array(Image.fromarray(G).convert("L"))[:, :, np.newaxis]
    with open(os.path.join(OUT, "index.txt"), "w") as idx:
        idx.write("# name h w c file  (raw uint8, HWC); inputs: pattern(64, 48, s) for I s=1, G s=2, F s=3;\n")
        idx.write("# ramp_* from ramp_inputs(), pairs_* from pair_inputs()\n")
        for name, a in arrays.items():
            fn = name + ".bin"
            with open(os.path.join(OUT, fn), "wb") as f:
                f.write(np.ascontiguousarray(a, dtype=np.uint8).tobytes())
            idx.write(f"{name} {a.shape[0]} {a.shape[1]} {a.shape[2]} {fn}\n")


if __name__ == "__main__":
    main()
