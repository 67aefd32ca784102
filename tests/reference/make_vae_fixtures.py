#!/usr/bin/env python3
"""make_vae_fixtures.py - reference outputs of the SD kl-f8 VAE (diffusers AutoencoderKL) on the
random-weight models our own generator writes, for tests/test_vae.c.

For each dtype (f32, f16, bf16) it runs `diffaug mkmodel --config tiny-sd15 --layout diffusers
--dtype D --seed 11 --jitter 0.1` (deterministic, so the C test recreates the same file), loads
vae/ with AutoencoderKL.from_pretrained(torch_dtype=float32) -- for 16-bit files the reference is
float32 arithmetic on the upcast 16-bit weights, which is what our kernels compute -- and runs:
  enc0: sample [2, 3, 40, 56] U(-1, 1)        -> mean, logvar (latent_dist), noise, posterior sample
  enc1: sample [1, 3, 16, 24]                 -> mean, logvar
  dec0: z      [2, 4, 5, 7]  N(0, 1)          -> sample [2, 3, 40, 56]
  dec1: z      [1, 4, 3, 2]                   -> sample [1, 3, 24, 16]
Written to tests/data/vae/tiny-<dtype>.safetensors (tensor names "<case>.<name>"; metadata:
versions, seeds, the mkmodel command).

With --full: the full-size sd15 VAE (mkmodel --config sd15 --layout diffusers --dtype f16 --seed 5
--jitter 0.1, written to a temporary folder in /tmp and deleted afterwards), decoder on z [1, 4, 8, 8]
-> [1, 3, 64, 64] and encoder on that size -> tests/data/vae/sd15-f16.safetensors (test tagged slow).

Every reference tensor is asserted finite. Pinned: torch 2.15 (CPU), diffusers 0.42.1, safetensors 0.8.
Usage: /root/refenv/bin/python tests/reference/make_vae_fixtures.py build/diffaug [--full]
"""
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

import diffusers
import safetensors
from diffusers import AutoencoderKL

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "vae")
SEED_MODEL_TINY, SEED_MODEL_FULL, JITTER = 11, 5, "0.1"


def mkmodel(cli, config, dtype, seed, out):
    cmd = [cli, "mkmodel", "--config", config, "--layout", "diffusers", "--dtype", dtype, "--seed", str(seed),
           "--jitter", JITTER, "-o", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return " ".join(cmd[1:-2])


def finite(name, t):
    assert torch.isfinite(t).all(), f"{name}: non-finite reference values"
    return t.contiguous()


def load_vae(path):
    vae, info = AutoencoderKL.from_pretrained(path, torch_dtype=torch.float32, output_loading_info=True)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info.get(k), f"{path}: {k} {info.get(k)}"
    vae.eval()
    return vae


@torch.no_grad()
def encode(vae, out, case, shape, seed, with_sample):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1
    dist = vae.encode(x).latent_dist
    out[f"{case}.sample"] = x
    out[f"{case}.mean"] = finite(case + ".mean", dist.mean)
    out[f"{case}.logvar"] = finite(case + ".logvar", dist.logvar)
    if with_sample:
        noise = torch.randn(dist.mean.shape, generator=g, dtype=torch.float32)
        out[f"{case}.noise"] = noise
        # DiagonalGaussianDistribution.sample: mean + std * randn
        out[f"{case}.posterior"] = finite(case + ".posterior", dist.mean + dist.std * noise)


@torch.no_grad()
def decode(vae, out, case, shape, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g, dtype=torch.float32)
    out[f"{case}.z"] = z
    out[f"{case}.sample"] = finite(case + ".sample", vae.decode(z).sample)


def meta(cmd, seeds):
    return {"generator": "tests/reference/make_vae_fixtures.py", "torch": torch.__version__,
            "diffusers": diffusers.__version__, "safetensors": safetensors.__version__,
            "mkmodel": cmd, "input_seeds": seeds}


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else "build/diffaug"
    full = "--full" in sys.argv
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="vae-fix-", dir="/tmp")
    try:
        if not full:
            for dtype in ("f32", "f16", "bf16"):
                path = os.path.join(tmp, f"tiny-{dtype}")
                cmd = mkmodel(cli, "tiny-sd15", dtype, SEED_MODEL_TINY, path)
                vae = load_vae(os.path.join(path, "vae"))
                out = {}
                encode(vae, out, "enc0", (2, 3, 40, 56), 101, True)
                encode(vae, out, "enc1", (1, 3, 16, 24), 102, False)
                decode(vae, out, "dec0", (2, 4, 5, 7), 103)
                decode(vae, out, "dec1", (1, 4, 3, 2), 104)
                dst = os.path.join(OUT, f"tiny-{dtype}.safetensors")
                save_file(out, dst, metadata=meta(cmd, "enc0 101, enc1 102, dec0 103, dec1 104"))
                print(dst, {k: tuple(v.shape) for k, v in out.items()})
        else:
            path = os.path.join(tmp, "sd15-f16")
            cmd = mkmodel(cli, "sd15", "f16", SEED_MODEL_FULL, path)
            vae = load_vae(os.path.join(path, "vae"))
            out = {}
            decode(vae, out, "dec0", (1, 4, 8, 8), 201)
            encode(vae, out, "enc0", (1, 3, 64, 64), 202, False)
            dst = os.path.join(OUT, "sd15-f16.safetensors")
            save_file(out, dst, metadata=meta(cmd, "dec0 201, enc0 202"))
            print(dst, {k: tuple(v.shape) for k, v in out.items()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
