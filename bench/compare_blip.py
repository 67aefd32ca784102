#!/usr/bin/env python3
"""compare_blip.py - BLIP captioning on the CPU: `diffaug caption` beside transformers'
BlipForConditionalGeneration.generate on the same weights and images, in the same run, same threads.

Both sides caption the same images greedily with exactly --tokens new tokens (min = max, so a random
model's caption length does not depend on when it happens to emit [SEP]) and with model loading
excluded: diffaug's rate is what `caption` prints for the generation itself (its TSV line count over
the generate time it reports), transformers' is timed around preprocessing + generate + decode.

Usage: /root/refenv/bin/python bench/compare_blip.py [--model DIR] [--batches 1,8] [--tokens 20] [--threads 2]
  --model  a BLIP folder; default: `diffaug mkmodel --config blip-base --dtype f32` into /tmp/blip-bench
           (random weights, with the test WordPiece vocabulary: speed does not depend on either)
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import time

import torch
from PIL import Image
from transformers import BlipForConditionalGeneration, BlipImageProcessorPil

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="/tmp/blip-bench/blip-base-f32")
ap.add_argument("--batches", default="1,8")
ap.add_argument("--tokens", type=int, default=20)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--build", default="build")
a = ap.parse_args()

cli = os.path.join(a.build, "diffaug")
root = os.path.dirname(a.model.rstrip("/")) or "."
if not os.path.exists(a.model):
    subprocess.run([cli, "mkmodel", "--config", "blip-base", "--layout", "diffusers", "--dtype", "f32", "--seed", "1",
                    "--vocab", "tests/data/blip/vocab", "-o", a.model], check=True)
batches = [int(b) for b in a.batches.split(",")]
n_img = max(batches)
ds = os.path.join(root, f"ds{n_img}")
if not os.path.exists(ds):
    # one class folder of n_img images (mkdataset makes 1 class x n_img)
    subprocess.run([cli, "mkdataset", "--classes", "1", "--per-class", str(n_img), "--size", "256", "--seed", "3",
                    "-o", ds], check=True)
images = sorted(glob.glob(os.path.join(ds, "*", "*")))

torch.set_num_threads(a.threads)
env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OMP_WAIT_POLICY="passive")
model = BlipForConditionalGeneration.from_pretrained(a.model, torch_dtype=torch.float32).eval()
# the PIL processor: the one transformers falls back to without torchvision, and the one diffaug equals
proc = BlipImageProcessorPil.from_pretrained(a.model) if os.path.exists(os.path.join(a.model, "preprocessor_config.json")) \
    else BlipImageProcessorPil()
print(f"# {time.strftime('%Y-%m-%d %H:%M')} threads {a.threads}, {a.tokens} new tokens, greedy; "
      f"torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}", flush=True)

for b in batches:
    sub = images[:b]
    one = os.path.join(root, f"ds-b{b}")
    if not os.path.exists(one):
        os.makedirs(os.path.join(one, "c"))
        for p in sub:
            os.symlink(os.path.abspath(p), os.path.join(one, "c", os.path.basename(p)))
    out = subprocess.run([cli, "caption", "--model", a.model, "--input", one, "-o", os.path.join(root, f"b{b}.tsv"),
                          "--max-tokens", str(a.tokens), "--min-tokens", str(a.tokens), "--batch", str(b)],
                         capture_output=True, text=True, env=env, check=True)
    rates = re.findall(r"([0-9.]+) captions/s", out.stderr + out.stdout)
    if not rates:
        sys.exit("compare_blip: `diffaug caption` printed no captions/s line:\n" + out.stderr + out.stdout)
    ours = float(rates[-1])  # the summary line (progress lines come first on a terminal)
    pil = [Image.open(p).convert("RGB") for p in sub]
    with torch.inference_mode():
        t0 = time.perf_counter()
        px = proc(images=pil, return_tensors="pt").pixel_values
        # no input_ids: BLIP's generate starts every row from [bos] itself (unconditional captioning)
        model.generate(pixel_values=px, max_new_tokens=a.tokens, min_new_tokens=a.tokens,
                       num_beams=1, do_sample=False)
        theirs = b / (time.perf_counter() - t0)
    print(f"batch {b}: diffaug {ours:.3f} captions/s, transformers {theirs:.3f} captions/s, "
          f"ratio {ours / theirs:.2f}, load average {os.getloadavg()[0]:.2f}", flush=True)
