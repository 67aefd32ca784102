#!/usr/bin/env python3
"""make_unet_fixtures.py - reference outputs of diffusers' UNet2DConditionModel on models written by
our own generator (`diffaug mkmodel`), for tests/test_unet.c.

Every fixture is one safetensors file in tests/data/unet/ holding the inputs under the names of
UNet2DConditionModel.forward (sample, timestep, encoder_hidden_states: `diffaug run --component unet`
reads the file as it is) and the reference output as `ref.sample`; its metadata records the model
(config, dtype, seed, jitter: the test recreates the same model with mkmodel, which is
deterministic), the input case and seed, and the generator versions.

16-bit models are loaded with torch_dtype=float32: the reference computes in float32 on exactly the
16-bit values (upcast), as diffaug does. Every reference tensor is asserted finite (DESIGN.md: old
torch's baddbmm could read uninitialised memory; we use torch 2.x anyway).

Usage: /root/refenv/bin/python tests/reference/make_unet_fixtures.py [build/diffaug] [--full]
  --full  also the full-size sd15 (f16, single-file-equivalent diffusers folder in /tmp, deleted
          afterwards) at a 16x16 latent, batch 1, context 77: tests/data/unet/full-sd15-f16.safetensors
Pinned: torch 2.x CPU, diffusers 0.42.1, safetensors 0.x (tests/reference/requirements.txt).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
import safetensors
from diffusers import UNet2DConditionModel

args = [a for a in sys.argv[1:] if not a.startswith("--")]
CLI = args[0] if args else "build/diffaug"
FULL = "--full" in sys.argv
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "unet")
JITTER = "0.2"

# (config, dtype, seed): the models
MODELS = [
    ("tiny-sd15", "f32", 11),
    ("tiny-sd15", "f16", 12),
    ("tiny-sd15", "bf16", 13),
    ("tiny-ip2p", "f32", 21),
    ("tiny-ip2p", "bf16", 22),
]
# name: (batch, h, w, timesteps, context length, input seed)
CASES = {
    "b1-16x16-L77": (1, 16, 16, [999.0], 77, 101),
    "b3-8x24-L5": (3, 8, 24, [500.5, 1.25, 999.0], 5, 102),
    "b2-16x8-L77-tscalar": (2, 16, 8, [250.75], 77, 103),  # one timestep for the whole batch
}


def mk(config, dtype, seed, out):
    subprocess.run([CLI, "mkmodel", "--config", config, "--layout", "diffusers", "--dtype", dtype, "--seed",
                    str(seed), "--jitter", JITTER, "-o", out], check=True, stdout=subprocess.DEVNULL)


def inputs(unet, case):
    b, h, w, ts, L, seed = CASES[case]
    g = torch.Generator().manual_seed(seed)
    cfg = unet.config
    sample = torch.randn(b, cfg.in_channels, h, w, generator=g)
    ehs = torch.randn(b, L, cfg.cross_attention_dim, generator=g)
    t = torch.tensor(ts, dtype=torch.float32)
    return sample, t, ehs


def run(unet, sample, t, ehs):
    with torch.no_grad():
        tt = t if t.numel() == sample.shape[0] else t[0]  # diffusers broadcasts a 0-d timestep
        y = unet(sample, tt, encoder_hidden_states=ehs).sample
    assert torch.isfinite(y).all(), "non-finite reference"
    return y


def write(path, sample, t, ehs, y, meta):
    meta = dict(meta, torch=torch.__version__, diffusers=diffusers.__version__, safetensors=safetensors.__version__,
                generator="tests/reference/make_unet_fixtures.py")
    save_file({"sample": sample.contiguous(), "timestep": t.contiguous(), "encoder_hidden_states": ehs.contiguous(),
               "ref.sample": y.contiguous()}, path, metadata={k: str(v) for k, v in meta.items()})
    print(f"{os.path.basename(path)}: out {tuple(y.shape)} max|ref| {y.abs().max().item():.4g}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp(prefix="unet-fixtures-")
    try:
        for config, dtype, seed in MODELS:
            path = os.path.join(tmp, f"{config}-{dtype}")
            mk(config, dtype, seed, path)
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch.float32).eval()
            for case in CASES:
                sample, t, ehs = inputs(unet, case)
                y = run(unet, sample, t, ehs)
                write(os.path.join(OUT, f"{config}-{dtype}-{case}.safetensors"), sample, t, ehs, y,
                      dict(config=config, dtype=dtype, seed=seed, jitter=JITTER, case=case,
                           input_seed=CASES[case][5]))
        if FULL:
            path = os.path.join(tmp, "sd15-f16")
            mk("sd15", "f16", 5, path)
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch.float32).eval()
            case = "b1-16x16-L77"
            sample, t, ehs = inputs(unet, case)
            y = run(unet, sample, t, ehs)
            write(os.path.join(OUT, "full-sd15-f16.safetensors"), sample, t, ehs, y,
                  dict(config="sd15", dtype="f16", seed=5, jitter=JITTER, case=case, input_seed=CASES[case][5]))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
