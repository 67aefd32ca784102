#!/usr/bin/env python3
"""make_wordpiece_fixtures.py - the WordPiece test vocabulary and transformers' BertTokenizer on it.

Writes tests/data/wordpiece/:
  blip/    vocab.txt + tokenizer_config.json + special_tokens_map.json + added_tokens.json laid out as
           BLIP's tokenizer (bert-base-uncased settings: do_lower_case, strip_accents null,
           tokenize_chinese_chars, model_max_length 512; bos [DEC] and [ENC] added after the vocab);
           clean_up_tokenization_spaces is on here so the decode clean-up is exercised;
  saved/   the same tokenizer after transformers' save_pretrained (tokenizer_config.json with
           added_tokens_decoder, the format transformers 5 writes; tokenizer.json dropped);
  cased/   the same vocab.txt with do_lower_case false (strip_accents then false too), no clean-up;
  cases.json  for every folder and for vocab.txt alone: each prompt's ids with and without special
           tokens, decode(ids) with skip_special_tokens false/true, truncation to a few lengths,
           and decodes of hand-made id lists.
The vocabulary (about 3000 tokens) is trained here with tokenizers' WordPieceTrainer on generated text
(English, contractions, numbers, accented Latin, Greek, Cyrillic, CJK), in cased and uncased forms.

transformers 5's BertTokenizer is the tokenizers-backed class (BertTokenizerFast is the same class);
the script asserts that, and that the legacy Python tokenizer agrees wherever it is known to (it is
recorded as a note, not used as the oracle).

The trained vocab.txt is kept on later runs (tokenizers' trainer is not deterministic: it breaks ties
in hash order); --retrain trains a new one.

Run with the reference environment:  /root/refenv/bin/python tests/reference/make_wordpiece_fixtures.py [--retrain]
"""
import json
import os
import random
import shutil
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers  # noqa: E402
from transformers import AutoTokenizer, BertTokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "wordpiece")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

WORDS = """a an the of and to in is are was were be been being have has had do does did not no yes
this that these those it its he she they we you i me my your our their his her them us who what
where when why how which there here then than so very just also only still even more most less
photo picture image painting drawing sketch render portrait landscape close up view shot of
dog dogs cat cats bird birds horse horses cow sheep fish car cars truck bus train plane boat bicycle
man men woman women child children person people boy girl baby family friends group crowd
red green blue yellow orange purple pink brown black white gray grey golden silver dark light bright
big small large tiny huge little tall short long wide old young new beautiful pretty ugly happy sad
sitting standing running walking jumping flying swimming eating drinking playing holding looking
street road city town village house building room kitchen table chair bed window door wall floor
tree trees flower flowers grass field forest mountain mountains river lake sea ocean beach sky cloud
sun moon star night day morning evening winter summer spring autumn snow rain water fire ice
with on at by from for over under above below near next behind front inside outside between into
one two three four five six seven eight nine ten hundred thousand first second third last
wearing shirt hat dress coat shoes glasses bag umbrella ball frisbee kite surfboard skateboard
pizza cake sandwich apple banana orange coffee cup plate bowl bottle glass phone laptop computer
unaffable unbelievable running runner runs played playing player players nicely quickly slowly
""".split()
CONTRACTIONS = ["don't", "isn't", "it's", "i'm", "you're", "we've", "they'll", "can't", "won't", "he'd"]
ACCENTED = ["café", "naïve", "résumé", "Zürich", "São", "Paulo", "façade", "élan", "Ångström", "jalapeño",
            "crème", "brûlée", "Dvořák", "Łódź", "Ærø", "straße", "İstanbul", "Ελληνικά", "καλημέρα",
            "Москва", "привет", "ЁЖИК"]
CJK = ["中文", "日本語", "東京", "北京", "猫", "犬", "山", "水", "大学", "漢字", "한국어", "서울", "ひらがな", "カタカナ"]


def corpus(seed=0):
    rng = random.Random(seed)
    vocab = WORDS + CONTRACTIONS + ACCENTED + CJK
    lines = []
    for _ in range(6000):
        n = rng.randint(3, 14)
        words = [rng.choice(vocab) for _ in range(n)]
        if rng.random() < 0.3:
            words.append(str(rng.randint(0, 20000)))
        if rng.random() < 0.3:
            words[rng.randrange(len(words))] = words[0].capitalize()
        line = " ".join(words) + rng.choice([".", "!", "?", ",", "", " ;", ":"])
        lines.append(line)
        lines.append(line.lower())
    # every ASCII punctuation mark and some Unicode ones, so that they get vocabulary entries
    marks = [chr(c) for c in range(33, 127) if not chr(c).isalnum()] + list("«»„“‘’”—–…¿¡§¶©®½¾①😀🐶👍")
    for _ in range(200):
        lines.append(" ".join(rng.choice(marks) + rng.choice(WORDS) for _ in range(6)))
    return lines


def train_vocab(path):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=3000, min_frequency=1, special_tokens=SPECIALS,
                                        continuing_subword_prefix="##")
    lines = corpus()
    # also the accent-stripped forms (what the uncased tokenizer produces)
    strip = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                       lowercase=True)
    lines += [strip.normalize_str(s) for s in lines[::2]]
    tok.train_from_iterator(lines, trainer=trainer)
    v = tok.get_vocab()
    inv = sorted(v.items(), key=lambda kv: kv[1])
    assert [i for _, i in inv] == list(range(len(inv)))
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t, _ in inv))
    return len(inv)


LONG = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # 135 characters: [UNK]
PROMPTS = [
    "", " ", "a photo of a dog", "A Photo Of A DOG", "a photo of", "a dog running on the beach.",
    "two cats sitting on a red chair, looking at the camera!", "Is this a cat? Yes!!", "hello,world",
    "unaffable", "UNAFFABLE runners", "don't", "it's a dog's life", "I'm sure you're right; they'll see",
    "can't won't isn't", "the year 2024 and 3.14159", "1,000,000 people", "12345678901234567890",
    "café au lait", "naïve résumé", "Zürich São Paulo", "crème brûlée façade", "Dvořák in Łódź",
    "Ærø straße", "İstanbul", "Ελληνικά καλημέρα", "Москва привет ЁЖИК", "ÅNGSTRÖM",
    "中文", "日本語のテキスト", "東京 and 北京", "猫と犬", "한국어 서울", "ひらがなカタカナ", "大学漢字です",
    "emoji 😀 dog 🐶", "👍🏽 thumbs", "flag 🇫🇷", "tab\tseparated\twords", "new\nline\r\nwindows",
    "control\x01char\x7fdel", "bell\x07\x1bescape", "zero\u200bwidth space", "soft\u00adhyphen", "bom\ufeffmark",
    "replacement \ufffd char", "non\u00a0breaking", "line\u2028separator", "ideographic\u3000space",
    LONG, "short " + LONG + " end", "x" * 100, "x" * 101, "a" * 300,
    "a [DEC] b", "[DEC]a photo of", "[ENC] image [DEC]", "[enc] lower", "[CLS] a [SEP] b [PAD]",
    "[cls] lower case", "[MASK]", "text[SEP]glued", "[UNK]", "[[DEC]]",
    "$100 & 50% off #sale @home ~tilde ^caret `back` {braces} |pipe|",
    "«quoted» „German“ ‘single’ “double” — dash – en … ellipsis",
    "¿qué? ¡sí! § ¶ © ®", "x^2 + y_1 = z", "a/b\\c", "e-mail: foo@bar.com", "http://example.com/a?b=c",
    "   leading and trailing spaces   ", "multiple     spaces", "CamelCaseWord", "ALLCAPS", "mIxEd CaSe",
    "\u0041\u0301 combining acute", "ﬁ ligature", "Ⅻ roman", "①②③", "½ ¾", "ｆｕｌｌｗｉｄｔｈ",
    "a\u0308\u0323 reorder", "\U0002B820 ext-e", "\U0002B920 ext", "\U000E0041 tag",
    # where tokenizers' Rust predicates differ from the legacy Python BasicTokenizer
    "a\U0002B820b", "a\U0002B920b", "dog\u2028cat", "dog\x0bcat\x0cbird\x85fish", "dog\u1680cat",
    "\U0001FAE8 new emoji", "a\u0600b", "ǅ title", "ΣΑΣ final sigma",
]
DECODE_LISTS = [
    [], [1], [2, 3], "##first", "punct", "contractions", "specials", [999999], [-1],
]


# Small configurations written by the test itself into a temporary folder (the blip vocab.txt less
# `drop`, plus these files): the rules for missing special tokens, config-side extras, strip_accents
# and tokenize_chinese_chars overrides, a normalized token in added_tokens_decoder.
EXTRA_PROMPTS = ["Héllo [DEC] wörld [ENC] [MASK] 中文 café", "a [enc] b [dec] Wörld", "ÅNGSTRÖM naïve İstanbul",
                 "x 東京 y", "it ' s do not , ok .", ""]
EXTRAS = {
    "missing_specials": {"drop": ["[MASK]"], "files": {
        "tokenizer_config.json": {"do_lower_case": True, "tokenizer_class": "BertTokenizer"},
        "special_tokens_map.json": {"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]}}},
    "config_extras": {"drop": [], "files": {
        "tokenizer_config.json": {"additional_special_tokens": ["[ENC]"], "bos_token": "[DEC]",
                                  "tokenizer_class": "BertTokenizer"},
        "added_tokens.json": {"[DEC]": 3000, "[ENC]": 3001}}},
    "keep_accents": {"drop": [], "files": {
        "tokenizer_config.json": {"do_lower_case": True, "strip_accents": False, "clean_up_tokenization_spaces": True,
                                  "tokenizer_class": "BertTokenizer"}}},
    "cased_strip_no_cjk": {"drop": [], "files": {
        "tokenizer_config.json": {"do_lower_case": False, "strip_accents": True, "tokenize_chinese_chars": False,
                                  "tokenizer_class": "BertTokenizer"}}},
    "decoder_normalized": {"drop": [], "files": {
        "tokenizer_config.json": {"bos_token": "[DEC]", "tokenizer_class": "BertTokenizer", "added_tokens_decoder": {
            "3000": {"content": "[DEC]", "special": True, "normalized": False},
            "3001": {"content": "Wörld", "special": False, "normalized": True}}}}},
}


def record_extra(name, spec, vocab_lines):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(v + "\n" for v in vocab_lines if v not in spec["drop"]))
        for fn, obj in spec["files"].items():
            with open(os.path.join(d, fn), "w", encoding="utf-8") as f:
                json.dump(obj, f)
        tok = AutoTokenizer.from_pretrained(d)
        assert type(tok) is BertTokenizer
        cases = []
        for p in EXTRA_PROMPTS:
            ids = tok(p).input_ids
            cases.append({"text": p, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids), "decoded": tok.decode(ids),
                          "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
        files = {fn: json.dumps(obj, ensure_ascii=False) for fn, obj in spec["files"].items()}  # file texts
        return {"drop": spec["drop"], "files": files, "vocab_size": len(tok),
                "bos": tok.bos_token_id if tok.bos_token is not None else None, "mask": tok.mask_token_id,
                "cases": cases}


def record(tok, label):
    vocab_size = len(tok)
    out = {"label": label, "vocab_size": vocab_size, "cls": tok.cls_token_id, "sep": tok.sep_token_id,
           "pad": tok.pad_token_id, "unk": tok.unk_token_id, "mask": tok.mask_token_id,
           "bos": tok.bos_token_id if tok.bos_token is not None else None,
           "cleanup": bool(tok.clean_up_tokenization_spaces), "cases": [], "decodes": [], "truncations": []}
    for p in PROMPTS:
        ids = tok(p).input_ids
        raw = tok(p, add_special_tokens=False).input_ids
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and ids[1:-1] == raw, p
        out["cases"].append({"text": p, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids),
                             "decoded": tok.decode(ids), "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    for p in PROMPTS[:40:3]:
        for cap in (1, 2, 3, 5, 8):
            ids = tok(p, truncation=True, max_length=cap).input_ids if cap >= 2 else None
            if ids is not None:
                out["truncations"].append({"text": p, "cap": cap, "special": True, "ids": ids})
            raw = tok(p, add_special_tokens=False, truncation=True, max_length=cap).input_ids
            out["truncations"].append({"text": p, "cap": cap, "special": False, "ids": raw})

    def ids_of(words):
        return [tok.convert_tokens_to_ids(w) for w in words]

    v = tok.get_vocab()
    hashes = sorted(t for t in v if t.startswith("##"))[:3]
    lists = []
    for d in DECODE_LISTS:
        if d == "##first":
            lists.append(ids_of(hashes + ["dog"]))
        elif d == "punct":
            lists.append(ids_of(["dog", ".", "cat", "?", "!", ",", "'", "s", "'", "m", "'", "ve", "'", "re"]))
        elif d == "contractions":
            lists.append(ids_of(["do", "not", "don", "'", "t", "isn", "'", "t", "i", "'", "m"]))
        elif d == "specials":
            lists.append(ids_of(["[CLS]", "[PAD]", "dog", "[MASK]", "[UNK]", "[SEP]"]) + [vocab_size - 1, vocab_size - 2])
        else:
            lists.append(d)
    for ids in lists:
        ok = [i for i in ids if 0 <= i < vocab_size]
        if len(ok) != len(ids):
            # tokenizers skips ids it has no token for; transformers' Python side rejects negative ones
            try:
                tok.decode(ids)
            except Exception:
                ids = ok + [vocab_size + 5]
        out["decodes"].append({"ids": ids, "decoded": tok.decode(ids),
                               "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    return out


def main():
    assert BertTokenizer.__mro__[1].__name__ == "TokenizersBackend", "BertTokenizer is not tokenizers-backed"
    assert transformers.BertTokenizerFast is BertTokenizer
    blip, cased, saved = (os.path.join(ROOT, d) for d in ("blip", "cased", "saved"))
    # tokenizers' trainer breaks ties in hash order, so every training gives a slightly different
    # vocabulary: keep the committed one (the fixtures are then reproducible) unless --retrain
    kept = None
    if "--retrain" not in sys.argv and os.path.isfile(os.path.join(blip, "vocab.txt")):
        with open(os.path.join(blip, "vocab.txt"), encoding="utf-8") as f:
            kept = f.read()
    shutil.rmtree(ROOT, ignore_errors=True)
    for d in (blip, cased, saved):
        os.makedirs(d)
    if kept is None:
        n = train_vocab(os.path.join(blip, "vocab.txt"))
    else:
        with open(os.path.join(blip, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write(kept)
        n = kept.count("\n")
    shutil.copy(os.path.join(blip, "vocab.txt"), os.path.join(cased, "vocab.txt"))

    def dump(path, obj):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")

    dump(os.path.join(blip, "tokenizer_config.json"), {
        "clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "do_basic_tokenize": True,
        "do_lower_case": True, "mask_token": "[MASK]", "model_max_length": 512, "name_or_path": "bert-base-uncased",
        "never_split": None, "pad_token": "[PAD]", "processor_class": "BlipProcessor", "sep_token": "[SEP]",
        "strip_accents": None, "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]"})
    dump(os.path.join(blip, "special_tokens_map.json"), {
        "additional_special_tokens": ["[ENC]"], "bos_token": "[DEC]", "cls_token": "[CLS]",
        "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"})
    dump(os.path.join(blip, "added_tokens.json"), {"[DEC]": n, "[ENC]": n + 1})
    dump(os.path.join(cased, "tokenizer_config.json"), {
        "do_lower_case": False, "model_max_length": 64, "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "mask_token": "[MASK]"})

    t_blip = AutoTokenizer.from_pretrained(blip)
    assert type(t_blip) is BertTokenizer, type(t_blip)
    with tempfile.TemporaryDirectory() as tmp:
        t_blip.save_pretrained(tmp)
        shutil.copy(os.path.join(tmp, "tokenizer_config.json"), saved)
        shutil.copy(os.path.join(blip, "vocab.txt"), saved)
    t_saved = AutoTokenizer.from_pretrained(saved)
    t_cased = AutoTokenizer.from_pretrained(cased)
    t_file = BertTokenizer(os.path.join(blip, "vocab.txt"))

    result = {
        "generator": "tests/reference/make_wordpiece_fixtures.py",
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "configs": {"blip": record(t_blip, "blip"), "saved": record(t_saved, "saved"),
                    "cased": record(t_cased, "cased"), "vocab_txt": record(t_file, "vocab_txt")},
    }
    vocab_lines = open(os.path.join(blip, "vocab.txt"), encoding="utf-8").read().split("\n")[:-1]
    result["extras"] = {k: record_extra(k, v, vocab_lines) for k, v in EXTRAS.items()}
    # one case per line keeps the file small and its diffs readable
    with open(os.path.join(ROOT, "cases.json"), "w", encoding="utf-8") as f:
        f.write('{"generator": %s, "versions": %s, "configs": {\n' % (
            json.dumps(result["generator"]), json.dumps(result["versions"])))
        for ci, (name, c) in enumerate(result["configs"].items()):
            head = {k: v for k, v in c.items() if k not in ("cases", "truncations", "decodes")}
            f.write(" %s: {%s,\n" % (json.dumps(name), json.dumps(head, ensure_ascii=False)[1:-1]))
            for li, key in enumerate(("cases", "truncations", "decodes")):
                f.write('  "%s": [\n' % key)
                f.write(",\n".join("   " + json.dumps(x, ensure_ascii=False) for x in c[key]))
                f.write("\n  ]%s\n" % ("," if li < 2 else ""))
            f.write(" }%s\n" % ("," if ci < len(result["configs"]) - 1 else ""))
        f.write('}, "extras": {\n')
        f.write(",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v, ensure_ascii=False))
                            for k, v in result["extras"].items()))
        f.write("\n}}\n")
    with open(os.path.join(ROOT, "cases.json"), encoding="utf-8") as f:
        assert json.load(f) == result
    for k, c in result["configs"].items():
        print(f"{k}: vocab {c['vocab_size']}, bos {c['bos']}, {len(c['cases'])} prompts, "
              f"{len(c['truncations'])} truncations, {len(c['decodes'])} decodes")


if __name__ == "__main__":
    main()
