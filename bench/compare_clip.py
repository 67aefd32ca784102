#!/usr/bin/env python3
"""compare_clip.py - diffaug's CLIP forwards beside transformers on the same machine and threads.

Makes full-size random-weight models with `diffaug mkmodel` (clip-vit-l14 for the CLIP-L text
tower, which is SD 1.x's text encoder; clip-vit-b32 for the ViT-B/32 vision tower), times
  * CLIP-L text, ids [2, 77] -> last_hidden_state + pooler_output
  * ViT-B/32 vision, pixel_values [8, 3, 224, 224] -> last_hidden_state + image_embeds
with build/bench/bench_clip (median of >= 5 runs, >= 2 s) and with transformers CLIPModel
(torch.set_num_threads(THREADS), inference_mode, median of the same count after a warm-up), three
rounds alternating the two sides (the median of the three medians is printed),
prints one table and deletes the models (they are 0.6 and 1.7 GB).

With a fourth argument `sdxl` it times SDXL's two text encoders instead, as
StableDiffusionXLPipeline.encode_prompt runs them (ids [2, 77]: prompt + negative): CLIP-L/14
(text_encoder, CLIPTextModel: hidden_states[-2]) and OpenCLIP bigG/14 (text_encoder_2,
CLIPTextModelWithProjection: hidden_states[-2] and text_embeds), each on its own and the two together.
Those full-size towers (0.5 and 2.8 GB in f32) are written by transformers (random init, save_pretrained)
since mkmodel writes whole pipelines (a 10 GB f32 SDXL UNet); values do not change speed.
transformers computes every hidden state for output_hidden_states (its encode_prompt cost); ours
stops text_encoder after layer N - 1 (the last layer's output is not used) and runs all of
text_encoder_2 (text_embeds needs the last layer).

Usage: [OMP_WAIT_POLICY=PASSIVE] /root/refenv/bin/python bench/compare_clip.py [BUILD=build] [TMPDIR=/tmp] [THREADS=2] [sdxl]
The load average is printed with the table: on a shared host, other processes on the same cores
make libgomp's spinning barriers (both sides use libgomp) cost far more than the work;
OMP_WAIT_POLICY=PASSIVE (inherited by both sides) makes them sleep instead.
Pinned: torch 2.15.0, transformers 5.23.0.
"""
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import transformers
from transformers import CLIPModel

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
TMP = sys.argv[2] if len(sys.argv) > 2 else "/tmp"
THREADS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
SDXL = len(sys.argv) > 4 and sys.argv[4] == "sdxl"
REPS = 3 if SDXL else 5


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def median_time(fn, reps=REPS, min_s=2.0):
    fn()
    ts, start = [], time.perf_counter()
    while len(ts) < reps or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def ours(model, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    out = subprocess.run([os.path.join(BUILD, "bench", "bench_clip"), model, *args, "--reps", str(REPS)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return [float(l.split("median_ms")[1]) / 1e3 for l in out.splitlines() if "median_ms" in l][0]


def alternate(f_ours, f_ref, rounds=3):
    """Medians of `rounds` alternating measurements of each side: a shared host's load drifts
    during a run, and alternating spreads the drift over both sides."""
    a, b = [], []
    for _ in range(rounds):
        a.append(f_ours())
        with torch.inference_mode():
            b.append(f_ref())
    return statistics.median(a), statistics.median(b)


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def sdxl_main():
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.set_num_threads(THREADS)
    load0 = loadavg()
    rows = []
    work = tempfile.mkdtemp(prefix="diffaug-bench-sdxl-text-", dir=TMP)
    # stabilityai/stable-diffusion-xl-base-1.0 text_encoder / text_encoder_2 configs
    common = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                  layer_norm_eps=1e-5)
    cfg1 = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          projection_dim=768, hidden_act="quick_gelu", **common)
    cfg2 = CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                          projection_dim=1280, hidden_act="gelu", **common)
    ids = torch.full((2, 77), 49407, dtype=torch.int64)
    ids[:, 0] = 49406
    ids[:, 1:8] = torch.arange(321, 328)
    try:
        torch.manual_seed(1)
        models = {}
        for name, cls, cfg in (("text_encoder", CLIPTextModel, cfg1),
                               ("text_encoder_2", CLIPTextModelWithProjection, cfg2)):
            path = os.path.join(work, name)
            cls(cfg).eval().save_pretrained(path)
            models[name] = (path, cls.from_pretrained(path, dtype=torch.float32).eval())
        p1, m1 = models["text_encoder"]
        p2, m2 = models["text_encoder_2"]

        def ref1():
            return m1(ids, output_hidden_states=True).hidden_states[-2]

        def ref2():
            o = m2(ids, output_hidden_states=True)
            return o.hidden_states[-2], o.text_embeds

        args = ["--text", "2", "--vision", "0", "--sdxl"]
        t1 = alternate(lambda: ours(p1, args + ["--component", "text_encoder"]), lambda: median_time(ref1))
        rows.append(("CLIP-L/14 text_encoder: hidden_states[-2]", "ids [2, 77]", *t1))
        t2 = alternate(lambda: ours(p2, args + ["--component", "text_encoder_2"]), lambda: median_time(ref2))
        rows.append(("OpenCLIP bigG/14 text_encoder_2: hidden_states[-2] + text_embeds", "ids [2, 77]", *t2))
        rows.append(("both (SDXL encode_prompt's encoders, sum)", "ids [2, 77]", t1[0] + t2[0], t1[1] + t2[1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} cores, {THREADS} threads on both sides; "
          f"torch {torch.__version__}, transformers {transformers.__version__}; f32 weights, random (torch seed 1); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; load average {load0} before, {loadavg()} after")
    print("| network | input | diffaug ms | transformers ms | speed-up |")
    print("|---|---|---|---|---|")
    for name, shape, a, b in rows:
        print(f"| {name} | {shape} | {a * 1e3:.0f} | {b * 1e3:.0f} | {b / a:.2f}x |")


def main():
    if SDXL:
        return sdxl_main()
    torch.set_num_threads(THREADS)
    load0 = loadavg()
    rows = []
    work = tempfile.mkdtemp(prefix="diffaug-bench-clip-", dir=TMP)
    try:
        for config, what in (("clip-vit-l14", "text"), ("clip-vit-b32", "vision")):
            path = os.path.join(work, config)
            subprocess.run([os.path.join(BUILD, "diffaug"), "mkmodel", "--config", config, "--layout", "diffusers",
                            "--dtype", "f32", "--seed", "1", "-o", path], check=True, stdout=subprocess.DEVNULL)
            m = CLIPModel.from_pretrained(path, dtype=torch.float32).eval()
            if what == "text":
                ids = torch.full((2, 77), 49407, dtype=torch.int64)
                ids[:, 0] = 49406
                ids[:, 1:8] = torch.arange(321, 328)
                t_ours, t_ref = alternate(lambda: ours(path, ["--text", "2", "--vision", "0"]),
                                          lambda: median_time(lambda: m.text_model(ids)))
                rows.append(("CLIP-L/14 text (SD 1.x text encoder)", "ids [2, 77]", t_ours, t_ref))
            else:
                px = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(0))
                t_ours, t_ref = alternate(lambda: ours(path, ["--text", "0", "--vision", "8"]),
                                          lambda: median_time(lambda: m.visual_projection(m.vision_model(px).pooler_output)))
                rows.append(("ViT-B/32 vision + projection", "pixels [8, 3, 224, 224]", t_ours, t_ref))
            del m
            shutil.rmtree(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} cores, {THREADS} threads on both sides; "
          f"torch {torch.__version__}, transformers {transformers.__version__}; f32 weights, random (seed 1); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; load average {load0} before, {loadavg()} after")
    print("| network | input | diffaug ms | transformers ms | speed-up |")
    print("|---|---|---|---|---|")
    for name, shape, a, b in rows:
        print(f"| {name} | {shape} | {a * 1e3:.0f} | {b * 1e3:.0f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
