#!/usr/bin/env python3
"""make_pipeline_fixtures.py - reference trajectories of diffusers' Stable Diffusion pipelines on
models written by our own generator (`diffaug mkmodel`), for tests/test_pipeline.c.

Pipelines: StableDiffusionPipeline (txt2img), StableDiffusionImg2ImgPipeline (strength 0.75),
StableDiffusionInstructPix2PixPipeline (edit), StableDiffusionXLPipeline (txt2img on tiny-sdxl: the
CosXL-style folder from `mkmodel --cosxl`, whose scheduler is EDMEulerScheduler(sigma_min=0.002,
sigma_max=120, sigma_data=1, v_prediction, exponential) as the CosXL model card sets it, and the same
weights with SDXL base's EulerDiscreteScheduler), safety checker off, float32, CPU, 10 steps, a batch
of two prompts (with different negative prompts) from one torch.Generator().manual_seed(seed), as a
user of diffusers writes it. SDXL cases also run with negative_prompt=None (force_zeros_for_empty_prompt:
zero negative embeddings) and with non-default micro-conditioning. Every random draw the pipeline makes goes through diffusers'
randn_tensor; we wrap that function in each module that imported it (the VAE's posterior sample,
the pipelines' prepare_latents, the schedulers' step noise) and record each draw in order, so the
test can (a) inject exactly these draws through the noise hook and (b) regenerate them from the
seed with our torch-compatible RNG (DA_RNG_TORCH), which proves that mode's draw order too.

One safetensors file per case in tests/data/pipeline/:
  draw.<j>      [B, 4, h, w] the j-th draw (metadata draw_kinds names each: posterior/latent/step)
  steps         [n_run, B, 4, h, w] latents after every step (callback_on_step_end)
  final         [B, 4, h, w] the final latents (output_type="latent")
  ref.image     [B, 3, H, W] vae.decode(final / scaling_factor), raw (before clamping)
  image         [B, H, W, 3] the source images (0..255 as float) for img2img / edit
metadata: model (config, dtype, seed, jitter: the test recreates it with mkmodel, which is
deterministic), mode, sampler, karras, eta, steps, strength, guidance, image_guidance, prompts and
negatives (JSON lists), size, torch_seed, versions.

Usage: /root/refenv/bin/python tests/reference/make_pipeline_fixtures.py [build/diffaug] [--only=PREFIX ...]
Pinned: torch 2.x CPU, diffusers 0.42.1, transformers 5.x (tests/reference/requirements.txt).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import diffusers
import transformers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EDMEulerScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionInstructPix2PixPipeline,
                       StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline)

args = [a for a in sys.argv[1:] if not a.startswith("--")]
ONLY = [a[len("--only="):] for a in sys.argv[1:] if a.startswith("--only=")]  # case-name prefixes to (re)write
CLI = args[0] if args else "build/diffaug"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "pipeline")
VOCAB = os.environ.get("DIFFAUG_VOCAB", os.path.join(HERE, "..", "..", "..", "shared", "data", "clip-tokenizer"))
JITTER = "0.2"
MODELS = {"sd": ("tiny-sd15", "f32", 31), "ip2p": ("tiny-ip2p", "f32", 32), "xl": ("tiny-sdxl", "f32", 33),
          "cosxl": ("tiny-sdxl", "f32", 33)}
COSXL = {"cosxl"}  # written with mkmodel --cosxl
STEPS = 10
W = H = 64
PROMPTS = ["a red bird on a branch", "a watercolor painting of a harbour"]
NEGATIVES = ["", "blurry, low quality"]
SAMPLERS = {
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "edm_euler": (EDMEulerScheduler, {}),
}
# name: (model, mode, sampler, extra)
CASES = {}
for s in SAMPLERS:
    CASES[f"txt2img-{s}"] = ("sd", "txt2img", s, {})
    CASES[f"img2img-{s}"] = ("sd", "img2img", s, {})
CASES["txt2img-ddim-eta"] = ("sd", "txt2img", "ddim", {"eta": 0.5})
CASES["txt2img-euler_a-nocfg"] = ("sd", "txt2img", "euler_a", {"guidance": 1.0})
CASES["edit-euler_a"] = ("ip2p", "edit", "euler_a", {})
CASES["edit-ddim"] = ("ip2p", "edit", "ddim", {})
CASES["edit-dpmpp_2m"] = ("ip2p", "edit", "dpmpp_2m", {})
# SDXL: the folder's own scheduler ("model": EDMEulerScheduler for cosxl, EulerDiscreteScheduler for xl)
CASES["xl-cosxl"] = ("cosxl", "xl", "model", {"guidance": 12.0})
CASES["xl-cosxl-noneg"] = ("cosxl", "xl", "model", {"negatives": None})
CASES["xl-cosxl-microcond"] = ("cosxl", "xl", "model", {"original_size": (96, 80), "crops_coords_top_left": (8, 4),
                                                         "target_size": (48, 56)})
CASES["xl-euler"] = ("xl", "xl", "model", {})
CASES["xl-euler_a-nocfg"] = ("xl", "xl", "euler_a", {"guidance": 1.0})
CASES["xl-img2img-cosxl"] = ("cosxl", "xl-img2img", "model", {})  # StableDiffusionXLImg2ImgPipeline, strength 0.75

# ---- recording every randn_tensor draw --------------------------------------------------------------
DRAWS = []


def install_recorder():
    import diffusers.utils.torch_utils as tu
    orig = tu.randn_tensor

    def kind_of(modname):
        if "autoencoder" in modname or modname.endswith(".vae"):
            return "posterior"
        if ".schedulers." in modname:
            return "step"
        return "latent"

    def make(modname):
        def rec(*a, **k):
            t = orig(*a, **k)
            DRAWS.append((kind_of(modname), t.detach().clone()))
            return t
        return rec

    for name, mod in list(sys.modules.items()):
        if name.startswith("diffusers.") and getattr(mod, "randn_tensor", None) is orig:
            mod.randn_tensor = make(name)


def source_images():
    """Two deterministic 64x64 RGB pictures (smooth gradients and rings) so the VAE sees structure."""
    ims = []
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    for k in range(2):
        r = 127.5 + 127.5 * np.sin(xx / (6 + 3 * k) + k)
        g = 255.0 * yy / (H - 1)
        b = 127.5 + 127.5 * np.cos(np.hypot(xx - W / 2, yy - H / 2) / (4 + k))
        ims.append(np.clip(np.round(np.stack([r, g, b], -1)), 0, 255).astype(np.uint8))
    return ims


def mk(config, dtype, seed, out, cosxl=False):
    subprocess.run([CLI, "mkmodel", "--config", config, "--layout", "diffusers", "--dtype", dtype, "--seed", str(seed),
                    "--jitter", JITTER, "--vocab", VOCAB, "-o", out] + (["--cosxl"] if cosxl else []), check=True,
                   stdout=subprocess.DEVNULL)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp(prefix="pipeline-fixtures-")
    try:
        paths = {}
        for key, (config, dtype, seed) in MODELS.items():
            paths[key] = os.path.join(tmp, key)
            mk(config, dtype, seed, paths[key], key in COSXL)
        pipes = {
            "txt2img": StableDiffusionPipeline.from_pretrained(paths["sd"], safety_checker=None,
                                                               requires_safety_checker=False),
            "edit": StableDiffusionInstructPix2PixPipeline.from_pretrained(paths["ip2p"], safety_checker=None,
                                                                           requires_safety_checker=False),
        }
        pipes["img2img"] = StableDiffusionImg2ImgPipeline(**pipes["txt2img"].components)
        for key in ("xl", "cosxl"):
            pipes[key] = StableDiffusionXLPipeline.from_pretrained(paths[key])
        # requires_aesthetics_score=False (the class default, SDXL base): the same six time ids as txt2img
        pipes["xl-img2img"] = StableDiffusionXLImg2ImgPipeline(**pipes["cosxl"].components)
        base_sched = {m: p.scheduler.config for m, p in pipes.items()}
        if "EDMEulerScheduler" not in type(pipes["cosxl"].scheduler).__name__:
            raise SystemExit("the --cosxl folder did not load with EDMEulerScheduler")
        for p in pipes.values():
            p.set_progress_bar_config(disable=True)
        install_recorder()
        images = source_images()
        pil = [Image.fromarray(a) for a in images]
        for ci, (name, (model, mode, sampler, extra)) in enumerate(CASES.items()):
            if ONLY and not any(name.startswith(o) for o in ONLY):
                continue
            pkey = model if mode == "xl" else mode
            if mode == "xl-img2img":
                base_sched[pkey] = base_sched["cosxl"]
            pipe = pipes[pkey]
            if sampler == "model":
                pipe.scheduler = type(pipe.scheduler).from_config(base_sched[pkey])
            else:
                cls, kw = SAMPLERS[sampler]
                pipe.scheduler = cls.from_config(base_sched[pkey], **kw)
            seed = 1000 + ci
            guidance = extra.get("guidance", 7.5)
            eta = extra.get("eta", 0.0)
            steps = []

            def cb(p, i, t, kwargs):
                steps.append(kwargs["latents"].detach().clone())
                return kwargs

            DRAWS.clear()
            negatives = extra.get("negatives", NEGATIVES)
            common = dict(prompt=PROMPTS, negative_prompt=negatives, num_inference_steps=STEPS,
                          guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), output_type="latent",
                          callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents"])
            if sampler == "ddim":
                common["eta"] = eta
            with torch.no_grad():
                if mode == "xl-img2img":
                    final = pipe(image=pil, strength=0.75, **common).images
                elif mode == "xl":
                    micro = {k: extra[k] for k in ("original_size", "crops_coords_top_left", "target_size") if k in extra}
                    final = pipe(height=H, width=W, **micro, **common).images
                elif mode == "txt2img":
                    final = pipe(height=H, width=W, **common).images
                elif mode == "img2img":
                    final = pipe(image=pil, strength=0.75, **common).images
                else:
                    final = pipe(image=pil, image_guidance_scale=1.5, **common).images
                vae = pipe.vae
                dec = vae.decode(final / vae.config.scaling_factor).sample
            tensors = {"steps": torch.stack(steps).contiguous(), "final": final.contiguous(),
                       "ref.image": dec.contiguous()}
            for j, (_, t) in enumerate(DRAWS):
                tensors[f"draw.{j}"] = t.contiguous()
            if mode in ("img2img", "edit", "xl-img2img"):
                tensors["image"] = torch.from_numpy(np.stack(images).astype(np.float32))
            for k, t in tensors.items():
                assert torch.isfinite(t).all(), f"{name}: non-finite {k}"
            config, dtype, mseed = MODELS[model]
            sched = pipe.scheduler.config
            meta_xl = {}
            if mode.startswith("xl"):
                meta_xl = dict(cosxl=int(model in COSXL), scheduler=type(pipe.scheduler).__name__,
                               prediction=sched.prediction_type,
                               original_size=",".join(map(str, extra.get("original_size", (H, W)))),
                               crop=",".join(map(str, extra.get("crops_coords_top_left", (0, 0)))),
                               target_size=",".join(map(str, extra.get("target_size", (H, W)))),
                               negative_none=int(negatives is None))
            meta = dict(config=config, dtype=dtype, seed=mseed, jitter=JITTER, mode=mode, sampler=sampler, **meta_xl,
                        karras=int(sampler.endswith("karras")), eta=eta, steps=STEPS,
                        strength=0.75 if mode in ("img2img", "xl-img2img") else 1.0, guidance=guidance,
                        image_guidance=1.5 if mode == "edit" else 0.0, prompts=json.dumps(PROMPTS),
                        negatives=json.dumps(negatives if negatives is not None else [None] * len(PROMPTS)),
                        width=W, height=H, torch_seed=seed,
                        draw_kinds=",".join(k for k, _ in DRAWS), n_run=len(steps),
                        torch=torch.__version__, diffusers=diffusers.__version__,
                        transformers=transformers.__version__,
                        generator="tests/reference/make_pipeline_fixtures.py")
            save_file(tensors, os.path.join(OUT, f"{name}.safetensors"), metadata={k: str(v) for k, v in meta.items()})
            print(f"{name}: {len(steps)} steps, draws {meta['draw_kinds']}, max|final| {final.abs().max().item():.4g}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
