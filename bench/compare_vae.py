#!/usr/bin/env python3
"""compare_vae.py - the full-size SD kl-f8 VAE on the CPU: diffaug beside diffusers, same machine, same
thread count, in one run.

Writes a full-size random-weight sd15 model (`diffaug mkmodel --config sd15 --layout diffusers --dtype
f16 --seed 1`, to a temporary folder, deleted afterwards; speed and memory do not depend on the values),
then for the decoder (latent [1, 4, 64, 64] -> [1, 3, 512, 512]) and the encoder ([1, 3, 512, 512] ->
mean/logvar [1, 4, 64, 64]) measures, each in a fresh process:
  * diffaug: `diffaug run --model <folder>/vae --component vae_decoder|vae_encoder --threads T`, wall time
    of the whole process (model open, planning, forward, output write), its CPU time (user + system)
    and its peak RSS (ru_maxrss);
  * diffusers AutoencoderKL (float32 on the CPU: the f16 file upcast at load, as CPU users run it) with
    torch.set_num_threads(T): forward wall and CPU time (best of --reps) under torch.no_grad, and peak
    RSS of that process (weights, torch runtime and activations).
The host may be shared: CPU time is the steadier number when the load average exceeds the cores.
Prints one markdown table row per measurement.

Usage: /root/refenv/bin/python bench/compare_vae.py build/diffaug [--threads 2] [--size 512] [--reps 1]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def child_diffusers(args):
    import torch
    from diffusers import AutoencoderKL
    torch.set_num_threads(args.threads)
    vae = AutoencoderKL.from_pretrained(args.vae, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    s = args.size
    best = float("inf")
    with torch.no_grad():
        for _ in range(args.reps):
            if args.part == "decoder":
                x = torch.randn((1, 4, s // 8, s // 8), generator=g)
                t0, c0 = time.perf_counter(), time.process_time()
                y = vae.decode(x).sample
            else:
                x = torch.rand((1, 3, s, s), generator=g) * 2 - 1
                t0, c0 = time.perf_counter(), time.process_time()
                y = vae.encode(x).latent_dist.mean
            if time.perf_counter() - t0 < best:
                best, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert torch.isfinite(y).all()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"time_s": best, "cpu_s": cpu, "rss": rss}))


def child_diffaug(args):
    # runs diffaug as this process's only child, so RUSAGE_CHILDREN is exactly its peak
    import numpy as np
    from safetensors.numpy import save_file
    s = args.size
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp(prefix="vae-bench-")
    try:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        if args.part == "decoder":
            save_file({"z": rng.standard_normal((1, 4, s // 8, s // 8), dtype=np.float32)}, inp)
        else:
            save_file({"sample": rng.uniform(-1, 1, (1, 3, s, s)).astype(np.float32)}, inp)
        best = float("inf")
        for _ in range(args.reps):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([args.cli, "run", "--model", args.vae, "--component", "vae_" + args.part, "--inputs", inp,
                            "-o", out, "--threads", str(args.threads)], check=True)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if time.perf_counter() - t0 < best:
                best = time.perf_counter() - t0
                cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(json.dumps({"time_s": best, "cpu_s": cpu, "rss": rss}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args, who, part):
    cmd = [sys.executable, os.path.abspath(__file__), args.cli, "--child", who, "--part", part, "--vae", args.vae,
           "--threads", str(args.threads), "--size", str(args.size), "--reps", str(args.reps)]
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default="build/diffaug")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--child")
    ap.add_argument("--part")
    ap.add_argument("--vae")
    args = ap.parse_args()
    args.cli = os.path.abspath(args.cli)
    if args.child:
        (child_diffusers if args.child == "diffusers" else child_diffaug)(args)
        return
    tmp = tempfile.mkdtemp(prefix="vae-bench-model-", dir="/tmp")
    try:
        subprocess.run([args.cli, "mkmodel", "--config", "sd15", "--layout", "diffusers", "--dtype", "f16", "--seed", "1",
                        "-o", os.path.join(tmp, "m")], check=True, stdout=subprocess.DEVNULL)
        args.vae = os.path.join(tmp, "m", "vae")
        print(f"| part | size | threads | diffaug wall (s) | diffaug CPU (s) | diffaug peak RSS (MiB) | "
              f"diffusers wall (s) | diffusers CPU (s) | diffusers peak RSS (MiB) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for part in ("decoder", "encoder"):
            a = measure(args, "diffaug", part)
            b = measure(args, "diffusers", part)
            print(f"| {part} | {args.size}x{args.size} | {args.threads} | {a['time_s']:.1f} | {a['cpu_s']:.1f} | "
                  f"{a['rss'] / 2**20:.0f} | {b['time_s']:.1f} | {b['cpu_s']:.1f} | {b['rss'] / 2**20:.0f} |",
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
