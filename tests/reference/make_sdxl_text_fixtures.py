#!/usr/bin/env python3
"""make_sdxl_text_fixtures.py - reference outputs of SDXL's two text encoders for tests/test_sdxl_text.c.

The model is written by OUR generator (`diffaug mkmodel --config tiny-sdxl`, deterministic: the C test
recreates the same files from the same arguments) in both layouts and run by transformers, the
independent implementation:
  * text_encoder/ (CLIP ViT-L/14 at toy width) as CLIPTextModel and text_encoder_2/ (OpenCLIP bigG at
    toy width) as CLIPTextModelWithProjection, from the diffusers folder: last_hidden_state,
    hidden_states[-2] (what diffusers' StableDiffusionXLPipeline.encode_prompt takes from both
    encoders: the state after layer N-1, no final_layer_norm), pooler_output and, for the second,
    text_embeds (the pooled prompt embedding);
  * the single file of the same seed is converted by diffusers' own single-file code
    (convert_ldm_clip_checkpoint for conditioner.embedders.0, convert_open_clip_checkpoint for the
    packed / transposed open_clip tensors of conditioner.embedders.1), loaded into fresh models and
    run: every output must equal the folder's bit for bit, which proves our single-file layout is
    the one diffusers reads (packed in_proj q/k/v rows, text_projection stored [D, P]).
Input ids come from the written tokenizer/ and tokenizer_2/ folders (CLIPTokenizer, padding=
"max_length"): tokenizer pads with <|endoftext|> (49407), tokenizer_2 with "!" (id 0) as
stable-diffusion-xl-base-1.0 ships it. The ids of both are stored; the C test re-tokenizes the prompts
with engine/tokenizer.c and compares them exactly.
Models are made with --jitter 0.1 (norms and biases not 1/0), dtypes f32, f16, bf16 (16-bit loaded with
dtype=float32: float32 arithmetic on the upcast weights, as diffaug computes). Every reference tensor is
asserted finite. Files: tests/data/sdxl_text/<case>.{in,ref}.safetensors.

Usage: /root/refenv/bin/python tests/reference/make_sdxl_text_fixtures.py [build/diffaug] [out_dir]
Pinned: torch 2.15.0, transformers 5.23.0, diffusers 0.42.1, safetensors 0.8.0.
"""
import json
import os
import subprocess
import sys
import tempfile

import diffusers
import torch
import transformers
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

CLI = sys.argv[1] if len(sys.argv) > 1 else "build/diffaug"
OUT = sys.argv[2] if len(sys.argv) > 2 else "tests/data/sdxl_text"
VOCAB = os.environ.get("DIFFAUG_VOCAB", "/work/shared/data/clip-tokenizer")
SEED = 11
JITTER = "0.1"
PROMPTS = [
    "a photo of a cat",
    "",
    "Wow! A red fox in deep snow!! dramatic light, highly detailed",  # "!" is tokenizer_2's pad token
    " ".join(["word%d" % i for i in range(90)]),  # truncated: eos kept last
]
torch.set_num_threads(2)
assert transformers.__version__ == "5.23.0", transformers.__version__


def mk(layout, dtype, out):
    args = [CLI, "mkmodel", "--config", "tiny-sdxl", "--layout", layout, "--dtype", dtype, "--seed", str(SEED),
            "--jitter", JITTER, "-o", out]
    if layout == "diffusers":
        args[-2:-2] = ["--vocab", VOCAB]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def write(case, inputs, refs, meta):
    for k, v in refs.items():
        assert torch.isfinite(v).all(), f"{case}: reference {k} is not finite"
    os.makedirs(OUT, exist_ok=True)
    meta = dict(meta, torch=torch.__version__, transformers=transformers.__version__,
                diffusers=diffusers.__version__, mkmodel_seed=str(SEED), jitter=JITTER,
                generator="tests/reference/make_sdxl_text_fixtures.py")
    save_file({k: v.contiguous() for k, v in inputs.items()}, os.path.join(OUT, case + ".in.safetensors"),
              metadata={"case": case})
    save_file({k: v.detach().float().contiguous() for k, v in refs.items()},
              os.path.join(OUT, case + ".ref.safetensors"), metadata={k: str(v) for k, v in meta.items()})
    print(f"{case}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in refs.items()))


def outputs(model, ids, proj):
    o = model(ids, output_hidden_states=True)
    r = {"last_hidden_state": o.last_hidden_state, "penultimate": o.hidden_states[-2]}
    if proj:
        r["text_embeds"] = o.text_embeds
        # pooler_output of the inner CLIPTextModel (CLIPTextModelWithProjection returns only text_embeds)
        r["pooler_output"] = model.text_model(ids).pooler_output
    else:
        r["pooler_output"] = o.pooler_output
    return r


def from_single(path, te_dir, te2_dir):
    """diffusers' single-file conversion of our single file into fresh transformers models."""
    sd = load_file(path)
    te = CLIPTextModel.from_pretrained(te_dir, dtype=torch.float32).eval()
    te2 = CLIPTextModelWithProjection.from_pretrained(te2_dir, dtype=torch.float32).eval()
    c1 = convert_ldm_clip_checkpoint(sd, remove_prefix="conditioner.embedders.0.transformer.")
    c1 = {k[len("text_model."):] if k.startswith("text_model.") and not hasattr(te, "text_model") else k: v
          for k, v in c1.items() if not k.endswith("position_ids")}
    c2 = convert_open_clip_checkpoint(te2, sd, prefix="conditioner.embedders.1.model.")
    for m, c in ((te, c1), (te2, c2)):
        want = set(m.state_dict())
        assert set(c) == want, (sorted(set(c) ^ want))[:5]
        m.load_state_dict({k: v.float() for k, v in c.items()}, strict=True)
    return te, te2


with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
    folder = os.path.join(tmp, "xl-f32")
    mk("diffusers", "f32", folder)
    tok = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    tok2 = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer_2"))
    assert tok.pad_token_id == 49407 and tok2.pad_token == "!" and tok2.pad_token_id == 0
    ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    ids2 = tok2(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    assert ids2[0, 6] == 49407 and (ids2[0, 7:] == 0).all() and (ids[0, 6:] == 49407).all() and (ids2[2] == 0).sum() > 60
    for dt in ("f32", "f16", "bf16"):
        folder = os.path.join(tmp, "xl-" + dt)
        if dt != "f32":
            mk("diffusers", dt, folder)
        single = os.path.join(tmp, f"xl-{dt}.safetensors")
        mk("single", dt, single)
        te = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), dtype=torch.float32).eval()
        te2 = CLIPTextModelWithProjection.from_pretrained(os.path.join(folder, "text_encoder_2"),
                                                          dtype=torch.float32).eval()
        assert te2.config.hidden_act == "gelu" and te2.config.eos_token_id == 2
        r1, r2 = outputs(te, ids, False), outputs(te2, ids2, True)
        s1, s2 = from_single(single, os.path.join(folder, "text_encoder"), os.path.join(folder, "text_encoder_2"))
        for a, b in ((r1, outputs(s1, ids, False)), (r2, outputs(s2, ids2, True))):
            for k in a:
                assert torch.equal(a[k], b[k]), f"{dt}: single file differs from the folder in {k}"
        meta = {"config": "tiny-sdxl", "dtype": dt, "prompts": json.dumps(PROMPTS),
                "single_file_checked": "diffusers convert_ldm_clip_checkpoint / convert_open_clip_checkpoint: equal"}
        write(f"xl-te1-{dt}", {"input_ids": ids}, r1, dict(meta, component="text_encoder"))
        write(f"xl-te2-{dt}", {"input_ids": ids2}, r2, dict(meta, component="text_encoder_2"))
