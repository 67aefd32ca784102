#!/usr/bin/env python3
"""check_mkmodel_loads.py - prove that `diffaug mkmodel` writes files the reference libraries load.

For every tiny config and dtype:
  * diffusers layout: UNet2DConditionModel / AutoencoderKL / CLIPTextModel.from_pretrained on each
    component folder, with no missing and no unexpected keys and every tensor equal to the file;
    the whole pipeline through DiffusionPipeline.from_pretrained (StableDiffusionPipeline /
    StableDiffusionInstructPix2PixPipeline, scheduler and tokenizer included);
  * single-file layout: diffusers' own ldm -> diffusers conversion functions
    (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint) run on our
    file; the converted keys and shapes must equal the diffusers model's state dict exactly, the
    converted values must equal the diffusers-layout file of the same seed, and the schedule buffers
    must equal ldm's register_schedule arithmetic;
  * CLIP: CLIPModel.from_pretrained with no missing/unexpected keys, config values as asked.
Also runs a forward of each loaded model and asserts finite outputs.

Usage: /root/refenv/bin/python tests/reference/check_mkmodel_loads.py [build/diffaug]
Pinned reference versions: torch 2.x (CPU), diffusers 0.42.1, transformers 5.x, safetensors 0.8.
Exit status 0 when every check holds.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file

import diffusers
import transformers
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from transformers import CLIPModel, CLIPTextModel

CLI = sys.argv[1] if len(sys.argv) > 1 else "build/diffaug"
VOCAB = os.environ.get("DIFFAUG_VOCAB", "/work/shared/data/clip-tokenizer")
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def mk(config, layout, dtype, seed, out):
    cmd = [CLI, "mkmodel", "--config", config, "--layout", layout, "--dtype", dtype, "--seed", str(seed),
           "--vocab", VOCAB, "-o", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def strict_load(cls, path, dtype, label):
    model, info = cls.from_pretrained(path, output_loading_info=True, torch_dtype=dtype)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        check(not info.get(k), f"{label}: {k} {list(info.get(k))[:5]}")
    return model


def same_as_file(model, weights, label, prefix=""):
    sd = model.state_dict()
    file = load_file(weights)
    names = {k[len(prefix):] if k.startswith(prefix) else k for k in file}
    check(set(sd) == names, f"{label}: state dict keys != file keys ({sorted(set(sd) ^ names)[:5]})")
    for k, v in file.items():
        k2 = k[len(prefix):] if k.startswith(prefix) else k
        if k2 in sd:
            check(torch.equal(sd[k2], v), f"{label}: {k} values differ after load")


def schedule_reference(T=1000, start=0.00085, end=0.012):
    betas = (torch.linspace(start ** 0.5, end ** 0.5, T, dtype=torch.float64) ** 2).numpy()
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    acp = np.append(1.0, ac[:-1])
    pv = betas * (1.0 - acp) / (1.0 - ac)
    return {
        "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": acp, "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac), "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac), "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
        "posterior_variance": pv, "posterior_log_variance_clipped": np.log(np.maximum(pv, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(acp) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - acp) * np.sqrt(alphas) / (1.0 - ac),
    }


def check_sd(config, dtype, tmp):
    tdt = DTYPES[dtype]
    d = os.path.join(tmp, f"{config}-{dtype}")
    s = os.path.join(tmp, f"{config}-{dtype}.safetensors")
    mk(config, "diffusers", dtype, 7, d)
    mk(config, "single", dtype, 7, s)
    label = f"{config}/{dtype}"

    unet = strict_load(UNet2DConditionModel, os.path.join(d, "unet"), tdt, label + " unet")
    vae = strict_load(AutoencoderKL, os.path.join(d, "vae"), tdt, label + " vae")
    text = strict_load(CLIPTextModel, os.path.join(d, "text_encoder"), tdt, label + " text_encoder")
    same_as_file(unet, os.path.join(d, "unet", "diffusion_pytorch_model.safetensors"), label + " unet")
    same_as_file(vae, os.path.join(d, "vae", "diffusion_pytorch_model.safetensors"), label + " vae")
    same_as_file(text, os.path.join(d, "text_encoder", "model.safetensors"), label + " text_encoder", "text_model.")
    check(unet.config.in_channels == (8 if "ip2p" in config else 4), f"{label}: unet in_channels")

    pipe = DiffusionPipeline.from_pretrained(d, torch_dtype=tdt)
    want = "StableDiffusionInstructPix2PixPipeline" if "ip2p" in config else "StableDiffusionPipeline"
    check(type(pipe).__name__ == want, f"{label}: pipeline class {type(pipe).__name__}")
    want_s = "EulerAncestralDiscreteScheduler" if "ip2p" in config else "PNDMScheduler"
    check(type(pipe.scheduler).__name__ == want_s, f"{label}: scheduler {type(pipe.scheduler).__name__}")
    ids = pipe.tokenizer("a photo of a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    check(ids.shape == (1, 77) and ids[0, 0].item() == 49406, f"{label}: tokenizer")

    # single file through diffusers' own conversion
    ckpt = load_file(s)
    if dtype != "f32":  # our f32 -> f16/bf16 rounding must equal torch's (round to nearest even)
        s32 = os.path.join(tmp, f"{config}-f32-seed7.safetensors")
        if not os.path.exists(s32):
            mk(config, "single", "f32", 7, s32)
        ref32 = load_file(s32)
        bad = [k for k, v in ref32.items() if v.is_floating_point() and not torch.equal(v.to(tdt), ckpt[k])]
        check(not bad, f"{label}: f32 -> {dtype} rounding differs from torch for {bad[:4]}")
    for name, ref in schedule_reference().items():
        got = ckpt[name].double().numpy()
        tol = 1e-6 if dtype == "f32" else 1e-2
        check(np.allclose(got, ref.astype(np.float32), rtol=tol, atol=tol * 1e-3), f"{label}: schedule {name}")
    pid = ckpt["cond_stage_model.transformer.text_model.embeddings.position_ids"]
    check(pid.dtype == torch.int64 and pid.tolist() == [list(range(77))], f"{label}: position_ids")
    conv = {
        "unet": (sfu.convert_ldm_unet_checkpoint(ckpt, dict(unet.config)), unet,
                 os.path.join(d, "unet", "diffusion_pytorch_model.safetensors"), ""),
        "vae": (sfu.convert_ldm_vae_checkpoint(ckpt, dict(vae.config)), vae,
                os.path.join(d, "vae", "diffusion_pytorch_model.safetensors"), ""),
        "text_encoder": (sfu.convert_ldm_clip_checkpoint(ckpt), text,
                         os.path.join(d, "text_encoder", "model.safetensors"), "text_model."),
    }
    for comp, (got, model, twin, prefix) in conv.items():
        got = {k: v for k, v in got.items() if not k.endswith("position_ids")}
        ref = {prefix + k: v for k, v in model.state_dict().items()}
        if comp == "text_encoder":
            got = {k if k.startswith(prefix) else prefix + k: v for k, v in got.items()}
        check(set(got) == set(ref), f"{label} single {comp}: converted keys differ: {sorted(set(got) ^ set(ref))[:6]}")
        bad = [k for k in got if k in ref and tuple(got[k].shape) != tuple(ref[k].shape)]
        check(not bad, f"{label} single {comp}: shape mismatch {bad[:4]}")
        twin_sd = load_file(twin)
        diff = [k for k in got if k in twin_sd and not torch.equal(got[k].reshape(twin_sd[k].shape), twin_sd[k])]
        check(not diff, f"{label} single {comp}: values differ from the diffusers twin {diff[:4]}")
        check(all(v.dtype == tdt for v in got.values()), f"{label} single {comp}: dtype")
        m = type(model).from_config(model.config) if comp != "text_encoder" else None
        if m is not None:
            r = m.load_state_dict({k: v.float() for k, v in got.items()}, strict=True)
            check(not r.missing_keys and not r.unexpected_keys, f"{label} single {comp}: strict load")

    # forwards stay finite (float32 copies, CPU)
    with torch.no_grad():
        u = unet.float()
        x = torch.randn(1, u.config.in_channels, 16, 16)
        h = text.float()(ids).last_hidden_state
        check(torch.isfinite(h).all().item(), f"{label}: text forward finite")
        eps = u(x, 500, encoder_hidden_states=h).sample
        check(torch.isfinite(eps).all().item() and eps.abs().max().item() < 1e3, f"{label}: unet forward finite")
        img = vae.float().decode(torch.randn(1, 4, 8, 8)).sample
        check(torch.isfinite(img).all().item(), f"{label}: vae decode finite")
        print(f"ok {label}: text std {h.std().item():.3f}, eps std {eps.std().item():.3f}, img std {img.std().item():.3f}")


def check_sdxl(config, dtype, tmp):
    """The SDXL UNet + VAE + CLIP-L (text_encoder_2 is checked by its own owner's additions): strict
    diffusers loads of the folder, and the single file through diffusers' own converters (label_emb,
    linear proj, depth > 1, conditioner.embedders.0 prefix) equal to the folder."""
    tdt = DTYPES[dtype]
    d = os.path.join(tmp, f"{config}-{dtype}")
    s = os.path.join(tmp, f"{config}-{dtype}.safetensors")
    mk(config, "diffusers", dtype, 7, d)
    mk(config, "single", dtype, 7, s)
    label = f"{config}/{dtype}"
    unet = strict_load(UNet2DConditionModel, os.path.join(d, "unet"), tdt, label + " unet")
    vae = strict_load(AutoencoderKL, os.path.join(d, "vae"), tdt, label + " vae")
    same_as_file(unet, os.path.join(d, "unet", "diffusion_pytorch_model.safetensors"), label + " unet")
    check(unet.config.addition_embed_type == "text_time" and unet.config.use_linear_projection, f"{label}: unet config")
    check(abs(vae.config.scaling_factor - 0.13025) < 1e-7, f"{label}: vae scaling_factor")
    ckpt = load_file(s)
    conv = {
        "unet": (sfu.convert_ldm_unet_checkpoint(ckpt, dict(unet.config)), unet,
                 os.path.join(d, "unet", "diffusion_pytorch_model.safetensors")),
        "vae": (sfu.convert_ldm_vae_checkpoint(ckpt, dict(vae.config)), vae,
                os.path.join(d, "vae", "diffusion_pytorch_model.safetensors")),
    }
    for comp, (got, model, twin) in conv.items():
        ref = model.state_dict()
        check(set(got) == set(ref), f"{label} single {comp}: converted keys differ: {sorted(set(got) ^ set(ref))[:6]}")
        twin_sd = load_file(twin)
        diff = [k for k in got if k in twin_sd and not torch.equal(got[k].reshape(twin_sd[k].shape), twin_sd[k])]
        check(not diff, f"{label} single {comp}: values differ from the diffusers twin {diff[:4]}")
    te = {k[len("conditioner.embedders.0.transformer."):]: v for k, v in ckpt.items()
          if k.startswith("conditioner.embedders.0.transformer.") and not k.endswith("position_ids")}
    twin_te = load_file(os.path.join(d, "text_encoder", "model.safetensors"))
    check(set(te) == set(twin_te) and all(torch.equal(te[k], twin_te[k]) for k in te),
          f"{label} single text_encoder: conditioner.embedders.0 differs from text_encoder/")
    with torch.no_grad():
        u = unet.float()
        pooled = u.config.projection_class_embeddings_input_dim - 6 * u.config.addition_time_embed_dim
        eps = u(torch.randn(1, 4, 16, 16), 500, encoder_hidden_states=torch.randn(1, 77, u.config.cross_attention_dim),
                added_cond_kwargs={"text_embeds": torch.randn(1, pooled),
                                   "time_ids": torch.tensor([[1024.0, 1024, 0, 0, 1024, 1024]])}).sample
        check(torch.isfinite(eps).all().item() and eps.abs().max().item() < 1e3, f"{label}: unet forward finite")
        print(f"ok {label}: eps std {eps.std().item():.3f}")


def check_clip(config, dtype, tmp):
    tdt = DTYPES[dtype]
    d = os.path.join(tmp, f"{config}-{dtype}")
    mk(config, "diffusers", dtype, 3, d)
    label = f"{config}/{dtype}"
    model = strict_load(CLIPModel, d, tdt, label)
    same_as_file(model, os.path.join(d, "model.safetensors"), label)
    patch = 32 if "b32" in config else 14
    check(model.config.vision_config.patch_size == patch, f"{label}: patch size")
    with torch.no_grad():
        m = model.float()
        out = m(input_ids=torch.tensor([[49406, 320, 1125, 49407]]), pixel_values=torch.randn(1, 3, 224, 224))
        check(torch.isfinite(out.logits_per_image).all().item(), f"{label}: forward finite")
        check(abs(m.logit_scale.item() - 2.6592) < 1e-2, f"{label}: logit_scale")
        print(f"ok {label}: image embed std {out.image_embeds.std().item():.3f}")


def main():
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("f32", "f16", "bf16"):
            for config in ("tiny-sd15", "tiny-ip2p"):
                check_sd(config, dtype, tmp)
            for config in ("tiny-clip-vit-b32", "tiny-clip-vit-l14"):
                check_clip(config, dtype, tmp)
            check_sdxl("tiny-sdxl", dtype, tmp)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
