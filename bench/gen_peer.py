#!/usr/bin/env python3
"""gen_peer.py - the diffusers side of docs/PERFORMANCE.md "Generation on the CPU": one 512x512
txt2img with DPM-Solver++ 2M and CFG 7.5 on a diffusers folder (random full-size weights from
`diffaug mkmodel --config sd15 --layout diffusers --dtype f16`, loaded as float32 as diffaug computes),
torch.set_num_threads(N). Prints the prompt-encode, per-step and decode times so a 20-step run can be
extrapolated from a short one: fixed + 20 * step.

Usage: /root/refenv/bin/python bench/gen_peer.py MODEL_DIR [steps=2] [threads=2]
"""
import sys
import time

import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

model = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(threads)
pipe = StableDiffusionPipeline.from_pretrained(model, torch_dtype=torch.float32, safety_checker=None,
                                               requires_safety_checker=False)
pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
pipe.set_progress_bar_config(disable=True)
marks = []


def cb(p, i, t, kw):
    marks.append(time.perf_counter())
    return kw


with torch.no_grad():
    t0 = time.perf_counter()
    pe, ne = pipe.encode_prompt("a photo of a cat", "cpu", 1, True, "")
    t1 = time.perf_counter()
    lat = pipe(prompt_embeds=pe, negative_prompt_embeds=ne, height=512, width=512, num_inference_steps=steps,
               guidance_scale=7.5, generator=torch.Generator().manual_seed(0), output_type="latent",
               callback_on_step_end=cb).images
    t2 = time.perf_counter()
    img = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample
    t3 = time.perf_counter()
step = [b - a for a, b in zip([t1] + marks[:-1], marks)]
print(f"encode {t1 - t0:.2f} s, steps {' '.join(f'{s:.2f}' for s in step)} s, decode {t3 - t2:.2f} s")
per = min(step[1:]) if len(step) > 1 else step[0]
print(f"extrapolated 20 steps: {t1 - t0 + (t3 - t2) + 20 * per:.1f} s/image (threads {threads})")
