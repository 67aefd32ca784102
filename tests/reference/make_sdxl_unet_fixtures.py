#!/usr/bin/env python3
"""make_sdxl_unet_fixtures.py - reference outputs of diffusers' UNet2DConditionModel with the SDXL
configuration (3 levels, DownBlock2D first, linear proj_in/out, transformer depth per level, text_time
added conditioning) on models written by our own generator (`diffaug mkmodel --config tiny-sdxl`),
for tests/test_unet.c.

Every fixture is one safetensors file in tests/data/unet/ holding the inputs under the names of
UNet2DConditionModel.forward (sample, timestep, encoder_hidden_states, and added_cond_kwargs'
text_embeds + time_ids: `diffaug run --component unet` reads the file as it is) and the reference
output as `ref.sample`; its metadata records the model (config, dtype, seed, jitter: the test
recreates the same model with mkmodel, which is deterministic), the input case and seed, and the
generator versions. Same conventions as make_unet_fixtures.py (float32 reference on the stored
16-bit values, every tensor asserted finite).

Usage: /root/refenv/bin/python tests/reference/make_sdxl_unet_fixtures.py [build/diffaug] [--full]
  --full  also the full-size sdxl UNet (f16, 320/640/1280, depth 1/2/10, 2048-wide context; diffusers
          folder in $TMPDIR, deleted afterwards) at a 32x32 latent, batch 1, context 77:
          tests/data/unet/full-sdxl-f16.safetensors (inputs + output only: the test rewrites the
          weights with mkmodel from the recorded seed)
Pinned: torch 2.x CPU, diffusers 0.42.1, safetensors 0.x (tests/reference/requirements.txt).
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
from diffusers import UNet2DConditionModel

args = [a for a in sys.argv[1:] if not a.startswith("--")]
CLI = args[0] if args else "build/diffaug"
FULL = "--full" in sys.argv
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "unet")
JITTER = "0.2"

# (config, dtype, seed): the models
MODELS = [
    ("tiny-sdxl", "f32", 31),
    ("tiny-sdxl", "bf16", 32),
]
# name: (batch, h, w, timesteps, context length, time_ids per sample, input seed)
CASES = {
    "b1-16x16-L77": (1, 16, 16, [999.0], 77, [[1024, 1024, 0, 0, 1024, 1024]], 201),
    "b2-8x24-L5": (2, 8, 24, [500.5, 1.25], 5, [[768, 1344, 0, 0, 1024, 1024], [512, 512, 64, 32, 896, 1152]], 202),
    "b3-16x8-L77-tscalar": (3, 16, 8, [250.75], 77,
                            [[1024, 1024, 0, 0, 1024, 1024], [2048, 1536, 128, 0, 1024, 768], [64, 64, 0, 8, 512, 512]],
                            203),
}


def mk(config, dtype, seed, out):
    subprocess.run([CLI, "mkmodel", "--config", config, "--layout", "diffusers", "--dtype", dtype, "--seed",
                    str(seed), "--jitter", JITTER, "-o", out], check=True, stdout=subprocess.DEVNULL)


def inputs(unet, case):
    b, h, w, ts, L, ids, seed = CASES[case]
    g = torch.Generator().manual_seed(seed)
    cfg = unet.config
    sample = torch.randn(b, cfg.in_channels, h, w, generator=g)
    ehs = torch.randn(b, L, cfg.cross_attention_dim, generator=g)
    pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
    text_embeds = torch.randn(b, pooled, generator=g)
    time_ids = torch.tensor(ids, dtype=torch.float32)
    t = torch.tensor(ts, dtype=torch.float32)
    return sample, t, ehs, text_embeds, time_ids


def run(unet, sample, t, ehs, text_embeds, time_ids):
    with torch.no_grad():
        tt = t if t.numel() == sample.shape[0] else t[0]  # diffusers broadcasts a 0-d timestep
        y = unet(sample, tt, encoder_hidden_states=ehs,
                 added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
    assert torch.isfinite(y).all(), "non-finite reference"
    return y


def write(path, tensors, y, meta):
    meta = dict(meta, torch=torch.__version__, diffusers=diffusers.__version__, safetensors=safetensors.__version__,
                generator="tests/reference/make_sdxl_unet_fixtures.py")
    names = ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"]
    d = {n: x.contiguous() for n, x in zip(names, tensors)}
    d["ref.sample"] = y.contiguous()
    save_file(d, path, metadata={k: str(v) for k, v in meta.items()})
    print(f"{os.path.basename(path)}: out {tuple(y.shape)} max|ref| {y.abs().max().item():.4g}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp(prefix="sdxl-unet-fixtures-")
    try:
        for config, dtype, seed in MODELS:
            path = os.path.join(tmp, f"{config}-{dtype}")
            mk(config, dtype, seed, path)
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch.float32).eval()
            for case in CASES:
                x = inputs(unet, case)
                y = run(unet, *x)
                write(os.path.join(OUT, f"{config}-{dtype}-{case}.safetensors"), x, y,
                      dict(config=config, dtype=dtype, seed=seed, jitter=JITTER, case=case, input_seed=CASES[case][6]))
            shutil.rmtree(path)
        if FULL:
            path = os.path.join(tmp, "sdxl-f16")
            mk("sdxl", "f16", 7, path)
            for sub in ("vae", "text_encoder", "text_encoder_2"):  # only the UNet is needed
                shutil.rmtree(os.path.join(path, sub), ignore_errors=True)
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch.float32).eval()
            shutil.rmtree(path)
            CASES["b1-32x32-L77"] = (1, 32, 32, [999.0], 77, [[1024, 1024, 0, 0, 1024, 1024]], 204)
            case = "b1-32x32-L77"
            x = inputs(unet, case)
            y = run(unet, *x)
            write(os.path.join(OUT, "full-sdxl-f16.safetensors"), x, y,
                  dict(config="sdxl", dtype="f16", seed=7, jitter=JITTER, case=case, input_seed=CASES[case][6]))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
