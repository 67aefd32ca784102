#!/usr/bin/env python3
"""make_tokenizer_fixtures.py - expected CLIP token ids for tests/test_tokenizer.c.

The oracle is transformers' CLIPTokenizer as pinned in tests/reference/requirements.txt
(transformers 5.23 / tokenizers 0.23; in transformers 5 CLIPTokenizer *is* CLIPTokenizerFast, the
tokenizers-backed class, and ftfy is never used). Each prompt is encoded with
padding="max_length", max_length=77, truncation=True. The script also checks that
CLIPTokenizerFast and the raw `tokenizers` backend agree with it, and writes a second, small set
encoded with an SD-2-style config whose pad token is "!" (which transformers then also matches
verbatim inside prompts).

Writes tests/data/tokenizer/cases.json:
  {"generator": {...}, "max_length": 77,
   "cases": [{"text", "ids" (77), "mask" (77), "n_full" (ids before truncation, bos/eos included)}],
   "pad_bang": {"tokenizer_config": {...}, "cases": [...]}}

Run: /root/refenv/bin/python tests/reference/make_tokenizer_fixtures.py [SHARED_DIR]
"""
import json
import os
import random
import shutil
import sys
import tempfile

import tokenizers
import transformers
from transformers import CLIPTokenizer, CLIPTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DIFFAUG_SHARED", os.path.join(ROOT, "..", "shared"))
TOKDIR = os.path.join(SHARED, "data", "clip-tokenizer")
OUT = os.path.join(ROOT, "tests", "data", "tokenizer", "cases.json")
MAXLEN = 77

assert transformers.__version__ == "5.23.0", transformers.__version__
assert tokenizers.__version__ == "0.23.3", tokenizers.__version__

long_text = ("a highly detailed photograph of a majestic mountain landscape at golden hour with snow capped "
             "peaks, pine forests, a crystal clear alpine lake reflecting the sky, wildflowers in the "
             "foreground, dramatic clouds, volumetric light, 8k resolution, trending on artstation, "
             "masterpiece, sharp focus, intricate details, cinematic composition, by greg rutkowski and "
             "albert bierstadt, ultra realistic, hdr, octane render")

PROMPTS = [
    # DiffuseMix prompts
    "Autumn", "snowy", "sunset", "watercolor art", "rain", "rainbow", "aurora", "mosaic", "ukiyo-e",
    "a sketch with crayon",
    # DiffCoRe-Mix style prompts
    "A Black footed Albatross, a bird, soaring through a stormy sky with dark clouds.",
    "A Laysan Albatross, a bird, perched on a rocky cliff by the ocean at sunrise.",
    "A photo of a Golden Retriever, a type of dog, playing in fresh snow in a park.",
    "An image of a tench, a kind of fish, swimming among green water plants in a clear lake.",
    # plain and case
    "a photo of a cat", "A PHOTO OF A CAT", "MiXeD CaSe WoRdS", "",
    # whitespace
    "  leading and trailing spaces  ", "repeated    spaces", "tabs\tand\ttabs", "new\nlines\r\nand\rreturns",
    " ", "\t\n", "nbsp\u00a0here and\u2003em\u3000ideographic", "next\u0085line, not\u200bspace",
    # punctuation and digits
    "hello, world! how are you? (fine) [ok] {yes}", "...!!!???", "#hashtag @mention $100 50% a&b a*b=c",
    "1234567890", "3.14159 and 2,718", "version 2.0-beta_3", "0.5x zoom, 16:9, 1920x1080",
    # apostrophes
    "it's a dog's life", "don't won't can't", "they're we've I'm you'll he'd", "IT'S DON'T",
    "it\u2019s curly \u2018quoted\u2019 \u201cdouble\u201d", "'s 't 're 've 'm 'll 'd", "rock'n'roll o'clock",
    "''s '''", "dogs' toys",
    # hyphens, URLs, paths, special look-alikes
    "state-of-the-art well-known x-ray", "https://example.com/path?query=1&b=2#frag",
    "www.test.org/image_01.png", "C:\\Users\\photo.jpg", "user@example.com",
    "<|startoftext|>a cat<|endoftext|>", "<|ENDOFTEXT|>", "<|endoftext|>!", "<|EndOfText|>!x",
    "a <|endoftext|> b", "<|endoftext|", "&amp; &lt;tag&gt;",
    # accents and non-ASCII
    "caf\u00e9", "cafe\u0301", "na\u00efve", "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m", "cr\u00e8me br\u00fbl\u00e9e",
    "Z\u00fcrich \u00dcBER stra\u00dfe STRASSE \u1e9e", "\u0130stanbul \u0131", "\u039f\u0394\u039f\u03a3 \u03c3\u03b5\u03bb\u03ae\u03bd\u03b7",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u0645\u0631\u062d\u0628\u0627 \u0661\u0662\u0663",
    "\u05e9\u05dc\u05d5\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u01c5 \u01c4 \u1f88", "q\u0301 a\u0328\u0301 e\u0323\u0302", "\u212b \u2126 \u212a", "\ufb01 \ufb00 \u2460 \u00bd \u00b2",
    "\u216b \u2167 roman", "x\u00b2 + y\u00b3", "\uff21\uff22\uff23 \uff11\uff12\uff13",
    # CJK, Hangul
    "\u732b\u306e\u5199\u771f", "\u4e00\u53ea\u732b\u5728\u8349\u5730\u4e0a", "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\uc548\ub155\ud558\uc138\uc694", "\u1100\u1161\u11a8 \u1112\u1161\u11ab", "\U00020000\U0002a6d6",
    # emoji and symbols
    "a cat \U0001f431 and a dog \U0001f436", "\U0001f468\u200d\U0001f469\u200d\U0001f467 family", "\U0001f1fa\U0001f1f8 flag",
    "\u2764\ufe0f love \u2728\u2b50", "\u2122 \u00a9 \u00ae \u00b0C \u20ac5 \u00a33 \u00a5", "\u2192 \u2190 \u221e \u2211 \u221a",
    "\U0001f600\U0001f600\U0001f600",
    # long: truncation
    long_text, long_text.upper(), "cat " * 80, "1" * 100, "\U0001f431" * 30,
    "word " * 74 + "end", "word " * 75 + "end", "word " * 76,
]

# Unicode stress: random strings over scripts, combining marks, Hangul jamo and odd spaces.
POOL = ("abcXYZ019 '-.,!\t\n\u00a0\u2003\u3000\u0085\u200b\u00e9\u00c5\u00df\u0130\u03a3\u0301\u0308\u0323\u0328\u0345"
        "\u1100\u1161\u11a8\uac00\u0915\u093f\u094d\u4e2d\u6587\u3042\u30a2\uff21\uff11\u0663\u00bd\u2167\U0001f431"
        "\u200d\ufe0f\u1e9e\u01c5\u1f88\u212b\ufb01\u0e01\u0e34\u05d0\u05b8\u0627\u064b\u10d0\U0001d400\U00010400")
rng = random.Random(1234)
for _ in range(60):
    PROMPTS.append("".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))))


def encode_all(tok, prompts):
    cases = []
    for text in prompts:
        enc = tok(text, padding="max_length", max_length=MAXLEN, truncation=True)
        full = tok(text)["input_ids"]
        ids, mask = list(enc["input_ids"]), list(enc["attention_mask"])
        assert len(ids) == MAXLEN and len(mask) == MAXLEN, text
        cases.append({"text": text, "ids": ids, "mask": mask, "n_full": len(full)})
    return cases


def main():
    slow = CLIPTokenizer.from_pretrained(TOKDIR)
    fast = CLIPTokenizerFast.from_pretrained(TOKDIR)
    print(f"CLIPTokenizer is {type(slow).__module__}.{type(slow).__name__}; "
          f"same class as CLIPTokenizerFast: {CLIPTokenizer is CLIPTokenizerFast}")
    cases = encode_all(slow, PROMPTS)
    diffs = 0
    for c, f in zip(cases, encode_all(fast, PROMPTS)):
        if c["ids"] != f["ids"]:
            diffs += 1
            print(f"CLIPTokenizer and CLIPTokenizerFast differ on {c['text']!r}")
        be = slow.backend_tokenizer.encode(c["text"]).ids
        if be[:MAXLEN - 1] != c["ids"][:min(len(be), MAXLEN - 1)] and c["n_full"] <= MAXLEN:
            diffs += 1
            print(f"backend tokenizer differs on {c['text']!r}")
    print(f"{len(cases)} prompts, {diffs} differences between CLIPTokenizer, CLIPTokenizerFast and the backend")

    # SD-2 style config: pad token "!" (OpenCLIP's pad id 0)
    cfg = {"pad_token": "!", "model_max_length": MAXLEN}
    tmp = tempfile.mkdtemp()
    try:
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(TOKDIR, f), tmp)
        with open(os.path.join(tmp, "tokenizer_config.json"), "w") as fp:
            json.dump(cfg, fp)
        bang = CLIPTokenizer.from_pretrained(tmp)
        assert bang.pad_token_id == 0
        bang_cases = encode_all(bang, ["hello!", "wow !! yes", "a photo of a cat", "a!b<|endoftext|>!", ""])
    finally:
        shutil.rmtree(tmp)

    doc = {
        "generator": {"script": "tests/reference/make_tokenizer_fixtures.py", "transformers": transformers.__version__,
                      "tokenizers": tokenizers.__version__, "class": f"{type(slow).__module__}.{type(slow).__name__}",
                      "call": "tok(text, padding='max_length', max_length=77, truncation=True)"},
        "max_length": MAXLEN,
        "cases": cases,
        "pad_bang": {"tokenizer_config": cfg, "cases": bang_cases},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as fp:
        json.dump(doc, fp, ensure_ascii=True, indent=0)
        fp.write("\n")
    print(f"wrote {OUT}: {len(cases)} + {len(bang_cases)} cases")


if __name__ == "__main__":
    main()
