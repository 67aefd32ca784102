#!/usr/bin/env python3
"""compare_unet.py - the SD 1.x UNet forward on the CPU: diffaug (build/bench/bench_unet) beside
diffusers' UNet2DConditionModel on the same weights, in the same run, same thread count.

FLOPs come from torch.utils.flop_counter.FlopCounterMode over the diffusers model on the meta
device (convs, linears, attention matmuls: 2 x MACs), so GFLOP/s counts the same work for both.
The diffusers peer computes in float32 on the f16 weights upcast (PyTorch's CPU f16 convolutions are
not a fair peer); diffaug keeps the weights f16 and converts while packing. Peak memory: diffaug's
VmHWM (bench_unet, its own process: weights mapped + arena + scratch); PyTorch's ru_maxrss of this
process after its forward (f32 weights resident).

Usage: /root/refenv/bin/python bench/compare_unet.py [--model DIR|sdxl] [--shapes 1x32x32,2x64x64] [--reps N]
  --model  a diffusers folder (or unet folder) in f16; default: mkmodel sd15 f16 into /tmp/unet-bench.
           `sdxl`: bench_unet's preset (random f16 weights written once to $TMPDIR) beside diffusers'
           UNet2DConditionModel built from SDXL base 1.0's unet config with torch's random init (speed
           does not depend on the values); text_embeds [B, 1280] and time_ids [B, 6] on both sides.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import diffusers
from diffusers import UNet2DConditionModel

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="/tmp/unet-bench/sd15-f16")
ap.add_argument("--shapes", default="1x32x32,2x64x64")
ap.add_argument("--reps", type=int, default=1)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--build", default="build")
a = ap.parse_args()

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the fields that differ from diffusers' defaults)
SDXL_UNET = dict(addition_embed_type="text_time", addition_embed_type_num_heads=64, addition_time_embed_dim=256,
                 attention_head_dim=[5, 10, 20], block_out_channels=[320, 640, 1280], cross_attention_dim=2048,
                 down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 projection_class_embeddings_input_dim=2816, sample_size=128, transformer_layers_per_block=[1, 2, 10],
                 use_linear_projection=True, layers_per_block=2, in_channels=4, out_channels=4)
preset = a.model == "sdxl"
if preset:
    pass
elif not os.path.exists(a.model):
    subprocess.run([f"{a.build}/diffaug", "mkmodel", "--config", "sd15", "--layout", "diffusers", "--dtype", "f16",
                    "--seed", "1", "-o", a.model], check=True)
unet_dir = None if preset else (a.model if os.path.exists(os.path.join(a.model, "config.json"))
                                else os.path.join(a.model, "unet"))
torch.set_num_threads(a.threads)
env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

peak = subprocess.run([f"{a.build}/bench/bench_peak", "--export"], capture_output=True, text=True, env=env).stdout
peak_gflops = float([w.split("=")[1] for w in peak.split() if w.startswith("DIFFAUG_PEAK_GFLOPS")][0])

cfg = SDXL_UNET if preset else UNet2DConditionModel.load_config(unet_dir)
with torch.device("meta"):
    meta_unet = UNet2DConditionModel.from_config(cfg)


def added(b, make):
    """added_cond_kwargs of an SDXL UNet (None for SD 1.x)."""
    if cfg.get("addition_embed_type") != "text_time":
        return None
    pooled = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
    return dict(text_embeds=make(b, pooled), time_ids=make(b, 6))


def flops(b, h, w, L=77):
    with torch.device("meta"), FlopCounterMode(display=False) as fc:
        meta_unet(torch.empty(b, cfg["in_channels"], h, w), torch.empty(b),
                  encoder_hidden_states=torch.empty(b, L, cfg["cross_attention_dim"]),
                  added_cond_kwargs=added(b, torch.empty))
    return fc.get_total_flops()


if preset:
    unet = UNet2DConditionModel.from_config(cfg).eval()
else:
    unet = UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=torch.float32).eval()
print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} cpu: "
      + open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")
      + f", {os.cpu_count()} cores, threads {a.threads}; torch {torch.__version__}, diffusers {diffusers.__version__}; "
      f"FMA peak {peak_gflops} GFLOP/s (bench_peak); load average {os.getloadavg()[0]:.2f}")
rows = []
for shp in a.shapes.split(","):
    b, h, w = (int(v) for v in shp.split("x"))
    fl = flops(b, h, w)
    out = subprocess.run([f"{a.build}/bench/bench_unet", a.model, str(b), str(h), str(w), "77", str(a.reps)],
                         capture_output=True, text=True, env=env, check=True).stdout
    ours = json.loads(out)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, cfg["in_channels"], h, w, generator=g)
    e = torch.randn(b, 77, cfg["cross_attention_dim"], generator=g)
    t = torch.tensor([999.0 - 250.5 * i for i in range(b)])
    ac = added(b, lambda *shape: torch.randn(*shape, generator=g))
    best = 1e30
    with torch.no_grad():
        for _ in range(a.reps):
            t0 = time.perf_counter()
            unet(x, t, encoder_hidden_states=e, added_cond_kwargs=ac)
            best = min(best, time.perf_counter() - t0)
    torch_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    r = dict(shape=f"{b}x{h}x{w}", tflop=fl / 1e12, ours_s=ours["best_s"], ours_first_s=ours["first_s"],
             ours_gflops=fl / ours["best_s"] / 1e9, ours_peak_pct=100 * fl / ours["best_s"] / 1e9 / peak_gflops,
             ours_vmhwm_gib=ours["vmhwm_kb"] / 2**20, arena_mib=ours["arena_bytes"] / 2**20,
             scratch_mib=ours["scratch_bytes"] / 2**20, torch_s=best, torch_gflops=fl / best / 1e9,
             torch_maxrss_gib=torch_rss / 2**30, speedup=best / ours["best_s"],
             load_avg=os.getloadavg()[0])
    rows.append(r)
    print(json.dumps(r), flush=True)
