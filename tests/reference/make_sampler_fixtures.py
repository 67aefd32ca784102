#!/usr/bin/env python3
"""make_sampler_fixtures.py - expected schedules, sampler trajectories and torch RNG streams for
tests/test_schedule.c, tests/test_sampler.c and tests/test_torch_rng.c.

The oracles are diffusers 0.42.1 schedulers and torch 2.15 (CPU), as pinned in
tests/reference/requirements.txt. Writes tests/data/sampler/:

  configs/*.json      scheduler_config.json files the C side loads (SD 1.5's PNDMScheduler config,
                      the InstructPix2Pix Euler-ancestral one, a v-prediction/trailing DDIM one, an
                      SD 1.5 config with leading spacing, a DPM++ config saved by diffusers itself
                      (lambda_min_clipped: -Infinity), EDM defaults and a CosXL-like EDM one)
  schedules.json      per (config, sampler class, options, steps): timesteps, sigmas,
                      init_noise_sigma, and per img2img strength the begin index and add_noise
                      coefficients; the training tables of each beta config
  trajectories.json   per sampler case: the config, options, and offsets into trajectories.bin of
                      the initial noise, x0 (img2img), each step's injected noise, and the latent
                      after every step (float32 little endian)
  torch_rng.json + torch_rng.bin   torch.randn streams for several seeds and sizes, successive
                      calls on one generator, for the AVX2/AVX-512 kernel and (when the scalar
                      kernel file exists, made with ATEN_CPU_CAPABILITY=default) the portable one

The "model" of the trajectories is analytic and implemented identically in C:
    model_out = tanh(0.5 * x_in) * (1 + 0.001 * t) + 0.1 * sin(x_in)   (elementwise)

Run: /root/refenv/bin/python tests/reference/make_sampler_fixtures.py
     ATEN_CPU_CAPABILITY=default /root/refenv/bin/python tests/reference/make_sampler_fixtures.py --rng-scalar
"""
import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EDMEulerScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler)
import diffusers.schedulers.scheduling_euler_ancestral_discrete as ea_mod

assert diffusers.__version__ == "0.42.1", diffusers.__version__
assert torch.__version__.startswith("2.15"), torch.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "data", "sampler")
CONF = os.path.join(OUT, "configs")

SD15 = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
        "clip_sample": False}
IP2P = {"_class_name": "EulerAncestralDiscreteScheduler", "_diffusers_version": "0.15.0.dev0",
        "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "num_train_timesteps": 1000, "prediction_type": "epsilon", "steps_offset": 1,
        "trained_betas": None}
VPRED = {"_class_name": "DDIMScheduler", "_diffusers_version": "0.10.0", "beta_end": 0.012,
         "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
         "num_train_timesteps": 1000, "prediction_type": "v_prediction", "set_alpha_to_one": False,
         "steps_offset": 1, "timestep_spacing": "trailing", "trained_betas": None}
SD15_LEADING = dict(SD15, timestep_spacing="leading")
EDM_DEFAULT = {"_class_name": "EDMEulerScheduler"}
EDM_COSXL = {"_class_name": "EDMEulerScheduler", "sigma_min": 0.002, "sigma_max": 120.0, "sigma_data": 1.0,
             "sigma_schedule": "exponential", "prediction_type": "v_prediction"}
CONFIGS = {"sd15": SD15, "ip2p": IP2P, "vpred_trailing": VPRED, "sd15_leading": SD15_LEADING,
           "edm_default": EDM_DEFAULT, "edm_cosxl": EDM_COSXL}
CLASSES = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "euler_a": EulerAncestralDiscreteScheduler,
           "dpmpp_2m": DPMSolverMultistepScheduler, "edm_euler": EDMEulerScheduler}

STEPS = [1, 2, 10, 20, 50, 100]
STRENGTHS = [0.3, 0.5, 0.75, 1.0]


def f32(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def make(cfg_name, kind, **opts):
    return CLASSES[kind].from_config(CONFIGS[cfg_name], **opts)


def get_timesteps(sched, n, strength):
    """StableDiffusionImg2ImgPipeline.get_timesteps."""
    init_timestep = min(int(n * strength), n)
    t_start = max(n - init_timestep, 0)
    return t_start * sched.order


def noise_coeffs(sched, begin):
    ts = sched.timesteps[begin:begin + 1]
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(begin)
    one, zero = torch.ones(1, 1), torch.zeros(1, 1)
    a = sched.add_noise(one, zero, ts)
    b = sched.add_noise(zero, one, ts)
    return float(a.reshape(-1)[0]), float(b.reshape(-1)[0])


SCHEDULE_CASES = [
    ("sd15", "ddim", {}), ("sd15", "euler", {}), ("sd15", "euler_a", {}), ("sd15", "dpmpp_2m", {}),
    ("sd15", "dpmpp_2m", {"use_karras_sigmas": True}), ("sd15", "euler", {"use_karras_sigmas": True}),
    ("sd15", "euler", {"use_exponential_sigmas": True}), ("sd15", "dpmpp_2m", {"use_exponential_sigmas": True}),
    ("sd15_leading", "euler", {}), ("sd15_leading", "euler_a", {}), ("sd15_leading", "dpmpp_2m", {}),
    ("sd15_leading", "ddim", {}), ("ip2p", "euler_a", {}), ("ip2p", "ddim", {}),
    ("vpred_trailing", "ddim", {}), ("vpred_trailing", "euler", {}), ("vpred_trailing", "euler_a", {}),
    ("vpred_trailing", "dpmpp_2m", {}), ("vpred_trailing", "dpmpp_2m", {"use_karras_sigmas": True}),
    ("sd15", "ddim", {"timestep_spacing": "linspace"}), ("sd15", "dpmpp_2m", {"timestep_spacing": "trailing"}),
    ("edm_default", "edm_euler", {}), ("edm_cosxl", "edm_euler", {}),
    ("edm_default", "edm_euler", {"final_sigmas_type": "sigma_min"}),
    ("sd15", "euler", {"final_sigmas_type": "sigma_min"}),
]


# trailing spacing with 61 steps: numpy's arange gives 62 timesteps, the last one -1
EXTRA_CASES = [("vpred_trailing", "euler", {}, 61), ("vpred_trailing", "euler_a", {}, 61),
               ("vpred_trailing", "dpmpp_2m", {}, 61), ("vpred_trailing", "euler", {}, 103)]


def schedules():
    cases = []
    todo = [(c, k, o, n) for c, k, o in SCHEDULE_CASES for n in STEPS] + EXTRA_CASES
    for cfg_name, kind, opts, n in todo:
        if True:
            s = make(cfg_name, kind, **opts)
            s.set_timesteps(n)
            case = {"config": cfg_name, "kind": kind, "opts": opts, "steps": n,
                    "timesteps": f32(s.timesteps.to(torch.float64)),
                    "init_noise_sigma": float(np.float32(float(s.init_noise_sigma)))}
            if kind != "ddim":
                case["sigmas"] = f32(s.sigmas)
            img = []
            for strength in STRENGTHS:
                begin = get_timesteps(s, n, strength)
                if begin >= len(s.timesteps):
                    img.append({"strength": strength, "begin": -1})
                    continue
                s2 = make(cfg_name, kind, **opts)
                s2.set_timesteps(n)
                a, b = noise_coeffs(s2, begin)
                img.append({"strength": strength, "begin": begin, "a": a, "b": b})
            case["img2img"] = img
            cases.append(case)
    tables = {}
    for cfg_name in ["sd15", "vpred_trailing"]:
        s = make(cfg_name, "euler")
        acp = s.alphas_cumprod
        tables[cfg_name] = {"alphas_cumprod": f32(acp), "betas": f32(s.betas),
                            "sigmas": f32(((1 - acp) / acp) ** 0.5)}
    return {"cases": cases, "tables": tables}


# ---- trajectories --------------------------------------------------------------------------------
SHAPE = (2, 4, 8, 8)


def model(x_in, t):
    t = float(t)
    return torch.tanh(0.5 * x_in) * (1.0 + 0.001 * t) + 0.1 * torch.sin(x_in)


TRAJ_CASES = [
    # name, config, kind, opts, steps, strength, eta, torch_seed
    ("ddim_sd15", "sd15", "ddim", {}, 10, 1.0, 0.0, None),
    ("ddim_sd15_eta", "sd15", "ddim", {}, 10, 1.0, 0.5, None),
    ("ddim_vpred_img2img", "vpred_trailing", "ddim", {}, 10, 0.6, 0.0, None),
    ("ddim_clip", "sd15", "ddim", {"clip_sample": True}, 10, 1.0, 0.0, None),
    ("euler_sd15", "sd15", "euler", {}, 10, 1.0, 0.0, None),
    ("euler_leading_img2img", "sd15_leading", "euler", {}, 10, 0.6, 0.0, None),
    ("euler_karras", "sd15", "euler", {"use_karras_sigmas": True}, 10, 1.0, 0.0, None),
    ("euler_vpred", "vpred_trailing", "euler", {}, 10, 1.0, 0.0, None),
    ("euler_a_ip2p", "ip2p", "euler_a", {}, 10, 1.0, 0.0, None),
    ("euler_a_ip2p_img2img", "ip2p", "euler_a", {}, 10, 0.75, 0.0, None),
    ("euler_a_vpred", "vpred_trailing", "euler_a", {}, 10, 1.0, 0.0, None),
    ("euler_a_torch_generator", "ip2p", "euler_a", {}, 10, 1.0, 0.0, 1234),
    ("dpmpp_2m_sd15", "sd15", "dpmpp_2m", {}, 10, 1.0, 0.0, None),
    ("dpmpp_2m_karras", "sd15", "dpmpp_2m", {"use_karras_sigmas": True}, 10, 1.0, 0.0, None),
    ("dpmpp_2m_img2img", "sd15", "dpmpp_2m", {}, 10, 0.5, 0.0, None),
    ("dpmpp_2m_vpred", "vpred_trailing", "dpmpp_2m", {}, 10, 1.0, 0.0, None),
    ("dpmpp_2m_heun_20", "sd15", "dpmpp_2m", {"solver_type": "heun"}, 20, 1.0, 0.0, None),
    ("edm_euler_default", "edm_default", "edm_euler", {}, 10, 1.0, 0.0, None),
    ("edm_euler_cosxl", "edm_cosxl", "edm_euler", {}, 10, 1.0, 0.0, None),
    ("edm_euler_img2img", "edm_cosxl", "edm_euler", {}, 10, 0.5, 0.0, None),
]


def trajectories():
    blob = []
    offset = [0]

    def put(arr):
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.float32).reshape(-1))
        blob.append(a.astype("<f4").tobytes())
        off = offset[0]
        offset[0] += a.size
        return off

    rs = np.random.RandomState(20240601)
    cases = []
    for name, cfg_name, kind, opts, n, strength, eta, seed in TRAJ_CASES:
        s = make(cfg_name, kind, **opts)
        s.set_timesteps(n)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        if gen is not None:
            noise0 = torch.randn(SHAPE, generator=gen)
        else:
            noise0 = torch.from_numpy(rs.standard_normal(SHAPE).astype(np.float32))
        x0 = torch.from_numpy((0.8 * rs.standard_normal(SHAPE)).astype(np.float32))
        rec = {"name": name, "config": cfg_name, "kind": kind, "opts": opts, "steps": n, "strength": strength,
               "eta": eta, "torch_seed": seed, "shape": list(SHAPE)}
        if strength < 1.0:
            begin = get_timesteps(s, n, strength)
            if hasattr(s, "set_begin_index"):  # DDIM has none: its add_noise indexes by timestep
                s.set_begin_index(begin)
            lat = s.add_noise(x0, noise0, s.timesteps[begin:begin + 1])
            rec["x0"] = put(x0)
        else:
            begin = 0
            lat = noise0 * s.init_noise_sigma
        rec["begin"] = begin
        rec["noise0"] = put(noise0)
        rec["latents0"] = put(lat)
        step_noise = []
        drawn = []

        def fake_randn(shape, generator=None, device=None, dtype=None, layout=None):
            if gen is not None:
                z = torch.randn(shape, generator=gen, dtype=dtype)
            else:
                z = torch.from_numpy(rs.standard_normal(tuple(shape)).astype(np.float32))
            drawn.append(z)
            return z

        ea_mod.randn_tensor = fake_randn
        lats = []
        for i, t in enumerate(s.timesteps[begin:]):
            x_in = s.scale_model_input(lat, t) if kind != "dpmpp_2m" and kind != "ddim" else lat
            out = model(x_in, t)
            drawn.clear()
            if kind == "ddim":
                kw = {"eta": eta}
                if eta > 0:
                    vn = torch.from_numpy(rs.standard_normal(SHAPE).astype(np.float32))
                    kw["variance_noise"] = vn
                    drawn.append(vn)
                lat = s.step(out, t, lat, **kw).prev_sample
            else:
                lat = s.step(out, t, lat).prev_sample
            assert torch.isfinite(lat).all()
            step_noise.append(put(drawn[0]) if drawn else -1)
            lats.append(put(lat))
        rec["step_noise"] = step_noise
        rec["latents"] = lats
        rec["model_timesteps"] = f32(s.timesteps[begin:].to(torch.float64))
        cases.append(rec)
    return {"cases": cases, "n_floats": offset[0]}, b"".join(blob)


# ---- torch RNG -----------------------------------------------------------------------------------
RNG_SEEDS = [0, 1, 42, 1234, 2**32 + 7]
RNG_SIZES = [1, 7, 15, 16, 17, 100, 4 * 64 * 64, 2 * 4 * 32 * 32]
RNG_SUCCESSIVE = [3, 16, 1, 33, 5, 100, 2, 1000]
RNG_BIG_SEEDS = [0, 2**32 + 7]  # the two large sizes only for these (fixture size)


def torch_rng(scalar):
    blob = []
    offset = [0]
    cases = []

    def put(t):
        a = t.numpy().astype("<f4")
        blob.append(a.tobytes())
        off = offset[0]
        offset[0] += a.size
        return off

    for seed in RNG_SEEDS:
        for n in RNG_SIZES:
            if n > 1000 and (seed not in RNG_BIG_SEEDS or (scalar and seed != 0)):
                continue
            torch.manual_seed(seed)
            cases.append({"seed": seed, "sizes": [n], "offsets": [put(torch.randn(n))]})
        g = torch.Generator().manual_seed(seed)
        offs = [put(torch.randn(n, generator=g)) for n in RNG_SUCCESSIVE]
        cases.append({"seed": seed, "sizes": RNG_SUCCESSIVE, "offsets": offs})
    # shapes, not only flat sizes: randn((2,4,8,8)) is the same stream as randn(512)
    torch.manual_seed(7)
    cases.append({"seed": 7, "sizes": [512], "offsets": [put(torch.randn(2, 4, 8, 8).reshape(-1))]})
    return {"capability": torch.backends.cpu.get_cpu_capability(), "cases": cases, "n_floats": offset[0]}, b"".join(blob)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def main():
    os.makedirs(CONF, exist_ok=True)
    gen_info = {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "script": "tests/reference/make_sampler_fixtures.py"}
    if "--rng-scalar" in sys.argv:
        assert torch.backends.cpu.get_cpu_capability() == "DEFAULT", "run with ATEN_CPU_CAPABILITY=default"
        idx, blob = torch_rng(True)
        idx["generator"] = gen_info
        write_json(os.path.join(OUT, "torch_rng_scalar.json"), idx)
        open(os.path.join(OUT, "torch_rng_scalar.bin"), "wb").write(blob)
        return
    for name, cfg in CONFIGS.items():
        write_json(os.path.join(CONF, name + ".json"), cfg)
    # a config written by diffusers itself: has "lambda_min_clipped": -Infinity
    with tempfile.TemporaryDirectory() as d:
        DPMSolverMultistepScheduler.from_config(SD15, use_karras_sigmas=True).save_config(d)
        text = open(os.path.join(d, "scheduler_config.json")).read()
        assert "-Infinity" in text
        open(os.path.join(CONF, "dpm_saved.json"), "w").write(text)
    sch = schedules()
    sch["generator"] = gen_info
    write_json(os.path.join(OUT, "schedules.json"), sch)
    idx, blob = trajectories()
    idx["generator"] = gen_info
    write_json(os.path.join(OUT, "trajectories.json"), idx)
    open(os.path.join(OUT, "trajectories.bin"), "wb").write(blob)
    idx, blob = torch_rng(False)
    assert idx["capability"] in ("AVX2", "AVX512"), idx["capability"]
    idx["generator"] = gen_info
    write_json(os.path.join(OUT, "torch_rng.json"), idx)
    open(os.path.join(OUT, "torch_rng.bin"), "wb").write(blob)


if __name__ == "__main__":
    main()
