#!/usr/bin/env python3
"""make_blip_fixtures.py - reference outputs of the BLIP captioner for tests/test_blip.c.

The model is written by OUR generator (`diffaug mkmodel --config tiny-blip`, deterministic: the C
test recreates the same folder from the same arguments) and run by transformers 5.23, the independent
implementation (BlipForConditionalGeneration, float32, CPU). The model's config.json is then edited
as test_blip.c repeats it: "sep_token_id": 102 -> EOS, a token this random model actually produces
mid-caption (picked below from a first greedy run), so that generation really stops on eos, min
lengths bite and beam search has finished hypotheses to rank; without it a random model never
emits [SEP] and every run would end at max length.

Fixtures (tests/data/blip/):
  vision.ref.safetensors    pixel_values from hash_pixels (test_blip.c has the same function) [3, 3, 384, 384]
                            -> image_embeds [3, 577, 32] (vision last_hidden_state), pooler_output [3, 32]
  decoder.ref.safetensors   input_ids [2, 5] (bos + random ids) on image_embeds[:2] -> logits[..., ::4]
                            (every 4th vocabulary column, to keep the file small)
  generate.ref.safetensors  for each case: the ids model.generate returns (prompt included, padded
                            with -1 after eos), with the case's parameters in the metadata
  preprocess.ref.safetensors BlipImageProcessorPil on tests/data/blip/cat.png (a non-square image):
                            pixel_values[..., ::8, ::8] (every 8th row and column)
  captions.json             the whole path (BlipProcessor with the PIL image processor and the tokenizer
                            mkmodel writes from tests/data/blip/vocab, a snapshot of the wordpiece test
                            vocabulary) -> generate -> decode on tests/data/blip/ds
Every reference tensor is asserted finite.

Usage: /root/refenv/bin/python tests/reference/make_blip_fixtures.py [build/diffaug] [out_dir]
Pinned: torch 2.15.0, transformers 5.23.0, safetensors 0.8.0, pillow (tests/reference/requirements.txt).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import BlipForConditionalGeneration
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

CLI = sys.argv[1] if len(sys.argv) > 1 else "build/diffaug"
OUT = sys.argv[2] if len(sys.argv) > 2 else "tests/data/blip"
SEED = 11
JITTER = "0.1"
IMAGE_AFFINE = [(1.0, 0.0), (0.25, 1.0), (-0.5, -0.5)]  # test_blip.c repeats these
torch.set_num_threads(2)
assert transformers.__version__ == "5.23.0", transformers.__version__


def hash_pixels(shape, seed):
    """As make_clip_fixtures.py: a 32-bit hash of the flat index, top 12 bits -> k/1024 - 2."""
    i = np.arange(int(np.prod(shape)), dtype=np.uint32)
    h = i * np.uint32(2654435761) + np.uint32(seed) * np.uint32(97531)
    h ^= h >> np.uint32(15)
    h *= np.uint32(2246822519)
    h ^= h >> np.uint32(13)
    h *= np.uint32(3266489917)
    h ^= h >> np.uint32(16)
    return torch.from_numpy(((h >> np.uint32(20)).astype(np.float32) / 1024.0 - 2.0).reshape(shape))


def finite(d):
    for k, v in d.items():
        assert torch.isfinite(v.float()).all(), k
    return d


def set_eos(folder, eos):
    p = os.path.join(folder, "config.json")
    s = open(p).read()
    assert '"sep_token_id": 102' in s
    open(p, "w").write(s.replace('"sep_token_id": 102', '"sep_token_id": %d' % eos))


os.makedirs(OUT, exist_ok=True)
tmp = tempfile.mkdtemp()
model_dir = os.path.join(tmp, "tiny-blip")
subprocess.run([CLI, "mkmodel", "--config", "tiny-blip", "--layout", "diffusers", "--dtype", "f32", "--seed", str(SEED),
                "--jitter", JITTER, "-o", model_dir], check=True, stdout=subprocess.DEVNULL)
model = BlipForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
meta = {"model": "tiny-blip", "seed": str(SEED), "jitter": JITTER, "torch": torch.__version__,
        "transformers": transformers.__version__}

# three different images: the hash noise scaled and shifted per image (dyadic factors: exact in f32)
px = hash_pixels((3, 3, 384, 384), 5)
for b, (a, c) in enumerate(IMAGE_AFFINE):
    px[b] = px[b] * a + c
with torch.no_grad():
    vo = model.vision_model(pixel_values=px)
emb = vo.last_hidden_state
save_file(finite({"pixel_seed": torch.tensor([5], dtype=torch.int32), "image_embeds": emb.contiguous(),
                  "pooler_output": vo.pooler_output.contiguous()}),
          os.path.join(OUT, "vision.ref.safetensors"), metadata=meta)

# decoder logits of a given prefix (no cache, all positions)
g = torch.Generator().manual_seed(1234)
ids = torch.randint(0, 30522, (2, 5), generator=g)
ids[:, 0] = model.config.text_config.bos_token_id
with torch.no_grad():
    logits = model.text_decoder(input_ids=ids, encoder_hidden_states=emb[:2],
                                encoder_attention_mask=torch.ones(emb[:2].shape[:2], dtype=torch.long)).logits
save_file(finite({"input_ids": ids.to(torch.int32).contiguous(), "logits": logits[..., ::4].contiguous()}),
          os.path.join(OUT, "decoder.ref.safetensors"), metadata=meta)

# pick an eos the model emits: the most frequent token at positions >= 3 of a long greedy run
with torch.no_grad():
    first = model.generate(pixel_values=px, max_new_tokens=20, do_sample=False)
counts = {}
for row in first[:, 4:].tolist():
    for t in row:
        counts[t] = counts.get(t, 0) + 1
EOS = max(sorted(counts), key=lambda t: counts[t])
assert EOS not in (0, 30522), EOS
set_eos(model_dir, EOS)
model = BlipForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()

PREFIX = [101, 1037, 3861, 1997, 102]  # "[CLS] a picture of [SEP]" as BlipProcessor tokenizes it
CASES = [
    ("greedy", dict(num_beams=1, max_new_tokens=12), False),
    ("greedy_prefix_rep_min", dict(num_beams=1, max_new_tokens=14, repetition_penalty=1.5, min_new_tokens=6), True),
    ("greedy_rep", dict(num_beams=1, max_new_tokens=16, repetition_penalty=1.3), False),
    ("beam3", dict(num_beams=3, max_new_tokens=10), False),
    ("beam3_prefix_rep_min_lp", dict(num_beams=3, max_new_tokens=12, repetition_penalty=1.3, min_new_tokens=4,
                                     length_penalty=0.8), True),
    ("beam4_early", dict(num_beams=4, max_new_tokens=12, early_stopping=True), False),
    ("beam2_never_lp2", dict(num_beams=2, max_new_tokens=9, early_stopping="never", length_penalty=2.0), False),
]
gen = {}
gmeta = dict(meta, eos=str(EOS), prefix=json.dumps(PREFIX))
for name, kw, pre in CASES:
    args = dict(kw, do_sample=False)
    if pre:
        args["input_ids"] = torch.tensor([PREFIX] * 3)
    with torch.no_grad():
        out = model.generate(pixel_values=px, **args)
    # keep up to the first eos after the prompt; -1 beyond (padding differs: greedy pads with pad_token_id,
    # beam search with eos since pad 0 is falsy in its fill expression)
    plen = len(PREFIX) - 1 if pre else 1
    rows = []
    for row in out.tolist():
        cut = len(row)
        for j in range(plen, len(row)):
            if row[j] == EOS:
                cut = j + 1
                break
        rows.append(row[:cut] + [-1] * (out.shape[1] - cut))
    gen[name] = torch.tensor(rows, dtype=torch.int32)
    ek = kw.get("early_stopping", False)
    gmeta[name] = json.dumps({"beams": kw.get("num_beams", 1), "max_new": kw["max_new_tokens"],
                              "min_new": kw.get("min_new_tokens", 0), "rep": kw.get("repetition_penalty", 1.0),
                              "lp": kw.get("length_penalty", 1.0),
                              "early": 1 if ek is True else (-1 if ek == "never" else 0), "prefix": pre})
    print(name, rows, "eos-terminated rows:", sum(1 for r in rows if EOS in r[plen:]))
save_file(gen, os.path.join(OUT, "generate.ref.safetensors"), metadata=gmeta)

# preprocessing: a non-square picture through BlipImageProcessorPil
img_path = os.path.join(OUT, "cat.png")
if not os.path.exists(img_path):
    yy, xx = np.mgrid[0:150, 0:211]
    rgb = np.stack([(xx * 255 // 210), (yy * 255 // 149), ((xx * 7 + yy * 13) % 256)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(img_path)
proc = BlipImageProcessorPil()
pv = proc(images=Image.open(img_path).convert("RGB"), return_tensors="pt")["pixel_values"]
assert pv.shape == (1, 3, 384, 384), pv.shape
save_file(finite({"pixel_values": pv[..., ::8, ::8].contiguous()}), os.path.join(OUT, "preprocess.ref.safetensors"),
          metadata=meta)
print("eos", EOS)

# ---- the whole captioning path: BlipProcessor (PIL image processor + the tokenizer mkmodel wrote from
# tests/data/blip/vocab) -> generate -> decode, on a small committed dataset (tests/data/blip/ds)
from transformers import AutoTokenizer, BlipProcessor

ds = os.path.join(OUT, "ds")
pics = {"a_class/grad.png": (64, 48), "a_class/rings.png": (40, 40), "b_class/noise.png": (30, 70)}
rs = np.random.RandomState(7)
for rel, (w, h) in pics.items():
    path = os.path.join(ds, rel)
    if os.path.exists(path):
        continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    if "grad" in rel:
        rgb = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 90)], -1)
    elif "rings" in rel:
        r = np.sqrt((xx - w / 2) ** 2 + (yy - h / 2) ** 2)
        rgb = np.stack([(r * 37) % 256, (r * 11) % 256, 255 - (r * 23) % 256], -1)
    else:
        rgb = rs.randint(0, 256, (h, w, 3))
    Image.fromarray(rgb.astype(np.uint8)).save(path)
cap_dir = os.path.join(tmp, "tiny-blip-vocab")
subprocess.run([CLI, "mkmodel", "--config", "tiny-blip", "--layout", "diffusers", "--seed", "4", "--vocab",
                "tests/data/blip/vocab", "-o", cap_dir], check=True, stdout=subprocess.DEVNULL)
cap_model = BlipForConditionalGeneration.from_pretrained(cap_dir, dtype=torch.float32).eval()
processor = BlipProcessor(image_processor=BlipImageProcessorPil(), tokenizer=AutoTokenizer.from_pretrained(cap_dir))
caps = {}
for key, kw, prefix in [("greedy", dict(max_new_tokens=8), None), ("beam3_prefix", dict(max_new_tokens=6, num_beams=3),
                                                                     "a picture of")]:
    rows = {}
    for rel in sorted(pics):
        img = Image.open(os.path.join(ds, rel)).convert("RGB")
        inputs = processor(images=img, text=prefix, return_tensors="pt")
        with torch.no_grad():
            out = cap_model.generate(**inputs, do_sample=False, **kw)
        rows[rel] = processor.decode(out[0], skip_special_tokens=True)
    caps[key] = rows
with open(os.path.join(OUT, "captions.json"), "w") as f:
    json.dump(dict(caps, meta=meta), f, indent=1, sort_keys=True)
print(json.dumps(caps, indent=1))
