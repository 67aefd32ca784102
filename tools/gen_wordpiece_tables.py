#!/usr/bin/env python3
"""gen_wordpiece_tables.py - writes engine/wordpiece_tables.h, the Unicode data of BERT's tokenizer.

Sibling of gen_unicode_tables.py (the CLIP tables). transformers 5's BertTokenizer is the
`tokenizers`-backed class (BertTokenizerFast is an alias), so the behaviour to match is tokenizers'
Rust BertNormalizer and BertPreTokenizer, not the Python BasicTokenizer (now BertTokenizerLegacy).
Those use their own character predicates, which do not all follow Unicode 16: `is_other` and
`is_punctuation` come from the unicode_categories crate, the CJK test has its own ranges (0x2B920
where Python's has 0x2B820), whitespace is Rust's char::is_whitespace. So every per-code-point set
is read from tokenizers itself, one code point at a time:

  drop    BertNormalizer(clean_text) removes it (NUL, U+FFFD, "other" categories but \\t\\n\\r)
  space   clean_text turns it into " "
  cjk     handle_chinese_chars puts spaces around it
  mn      strip_accents removes it (taken on code points that NFD leaves alone)
  punct   BertPreTokenizer isolates it
  lower   BertNormalizer(lowercase) maps it (Rust's char::to_lowercase; one or more code points)

plus, for NFD, the full canonical decompositions as tokenizers' NFD normalizer gives them (its
unicode-normalization crate lacks a few Unicode 16 ones). The combining classes (unicodedata2,
Unicode 16) and the lowercase mappings are NOT written here: engine/wordpiece.c takes them from
engine/unicode.c (engine/unicode_tables.h, the CLIP tokenizer's tables), and this script fails unless
those tables equal what BERT's normalizer does, code point by code point. After writing, a Python model of the C code
(engine/wordpiece.c) is run on every code point alone and between letters, and compared with
tokenizers' normalizer + pre-tokenizer for the uncased and cased settings; the script fails on any
difference.

Run with the reference environment:  /root/refenv/bin/python tools/gen_wordpiece_tables.py
"""
import os
import sys

import unicodedata2 as ud
from tokenizers import normalizers, pre_tokenizers

UNICODE_VERSION = "16.0.0"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine", "wordpiece_tables.h")

if ud.unidata_version != UNICODE_VERSION:
    sys.exit(f"unicodedata2 is Unicode {ud.unidata_version}; this table wants {UNICODE_VERSION}")

ALL = [cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000]


def bert_norm(clean=False, cjk=False, strip=False, lower=False):
    return normalizers.BertNormalizer(clean_text=clean, handle_chinese_chars=cjk, strip_accents=strip,
                                      lowercase=lower)


n_clean, n_cjk = bert_norm(clean=True), bert_norm(cjk=True)
n_strip, n_lower = bert_norm(strip=True), bert_norm(lower=True)
pre = pre_tokenizers.BertPreTokenizer()
nfd = normalizers.NFD()

drop, space, cjk, mn, punct, lower1, lowerm = set(), set(), set(), set(), set(), {}, {}
for cp in ALL:
    c = chr(cp)
    s = n_clean.normalize_str(c)
    if s == "":
        drop.add(cp)
    elif s == " " and cp != 0x20:
        space.add(cp)
    else:
        assert s == c, hex(cp)
    s = n_cjk.normalize_str(c)
    if s == " " + c + " ":
        cjk.add(cp)
    else:
        assert s == c, hex(cp)
    if nfd.normalize_str(c) == c:
        s = n_strip.normalize_str(c)
        if s == "":
            mn.add(cp)
        else:
            assert s == c, hex(cp)
    s = n_lower.normalize_str(c)
    if s != c:
        if len(s) == 1:
            lower1[cp] = ord(s)
        else:
            assert len(s) <= 3
            lowerm[cp] = [ord(x) for x in s]
    if cp not in space and cp != 0x20:
        p = pre.pre_tokenize_str("a" + c + "b")
        if len(p) == 3:
            assert p[1][0] == c, hex(cp)
            punct.add(cp)
        else:
            assert len(p) in (1, 2), (hex(cp), p)  # 2: whitespace that clean_text drops first


def ranges(s):
    out = []
    for cp in sorted(s):
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


ccc_runs = []
for cp in ALL:
    k = ud.combining(chr(cp))
    if k:
        if ccc_runs and ccc_runs[-1][1] == cp - 1 and ccc_runs[-1][2] == k:
            ccc_runs[-1][1] = cp
        else:
            ccc_runs.append([cp, cp, k])

# Full canonical decompositions as tokenizers' NFD gives them (its unicode-normalization crate
# lacks some Unicode 16 decompositions, e.g. U+105C9, so unicodedata2's are not used here).
decomp = []
for cp in ALL:
    if 0xAC00 <= cp <= 0xD7A3:
        continue  # Hangul syllables decompose algorithmically
    d = nfd.normalize_str(chr(cp))
    if d != chr(cp):
        assert 1 <= len(d) <= 4, hex(cp)
        decomp.append((cp, [ord(x) for x in d] + [0] * (4 - len(d))))


def c_table(name):
    """The rows of `static const uint32_t name[][k] = {...}` in engine/unicode_tables.h."""
    import re
    src = open(os.path.join(os.path.dirname(OUT), "unicode_tables.h")).read()
    body = src[src.index(name + "[]"):]
    body = body[body.index("{") + 1:body.index("};")]
    return [[int(x, 16) if x.lower().startswith("0x") else int(x) for x in row.split(",") if x.strip()]
            for row in re.findall(r"\{([^{}]*)\}", body)]


if c_table("da_uni_ccc") != ccc_runs:
    sys.exit("engine/unicode_tables.h's combining classes differ from unicodedata2's: regenerate them first")
if {r[0]: r[1] for r in c_table("da_uni_lower")} != lower1 or \
        {r[0]: [x for x in r[1:] if x] for r in c_table("da_uni_lower_multi")} != lowerm:
    sys.exit("engine/unicode_tables.h's lowercase mappings differ from BertNormalizer's: wordpiece.c "
             "would need tables of its own again")


def fmt_rows(rows, per_line):
    return "\n".join("    " + " ".join(rows[i:i + per_line]) for i in range(0, len(rows), per_line))


with open(OUT, "w") as f:
    f.write("/* wordpiece_tables.h - GENERATED by tools/gen_wordpiece_tables.py from tokenizers' BertNormalizer\n"
            " * BertPreTokenizer and NFD (one code point at a time); combining classes and lowercase come\n"
            " * from engine/unicode.h. Do not edit. Included only by engine/wordpiece.c. */\n")
    f.write("#ifndef DA_WORDPIECE_TABLES_H\n#define DA_WORDPIECE_TABLES_H\n\n#include <stdint.h>\n\n")
    for name, what in (("drop", "removed by clean_text"), ("space", "clean_text -> ' '"),
                       ("cjk", "CJK ideographs: spaces around"), ("mn", "removed by strip_accents"),
                       ("punct", "isolated by BertPreTokenizer")):
        rs = ranges(globals()[name])
        f.write("/* %s: [lo, hi] inclusive, sorted */\nstatic const uint32_t da_wp_%s[][2] = {\n" % (what, name))
        f.write(fmt_rows(["{0x%X,0x%X}," % tuple(r) for r in rs], 6) + "\n};\n\n")
    f.write("/* {cp, full canonical decomposition (0-padded)}, sorted */\n")
    f.write("static const uint32_t da_wp_decomp[][5] = {\n")
    f.write(fmt_rows(["{0x%X,%s}," % (cp, ",".join("0x%X" % x for x in d)) for cp, d in decomp], 4) + "\n};\n\n")
    f.write("#endif /* DA_WORDPIECE_TABLES_H */\n")

# ---- model of engine/wordpiece.c, checked against tokenizers ---------------------------------
DECOMP = {cp: [x for x in d if x] for cp, d in decomp}
CCC = {}
for lo, hi, k in ccc_runs:
    for cp in range(lo, hi + 1):
        CCC[cp] = k


def decompose(cp, out):
    if 0xAC00 <= cp <= 0xD7A3:
        s = cp - 0xAC00
        out += [0x1100 + s // 588, 0x1161 + (s % 588) // 28]
        if s % 28:
            out.append(0x11A7 + s % 28)
    elif cp in DECOMP:
        out += DECOMP[cp]
    else:
        out.append(cp)


def model_normalize(text, lower, strip, chinese=True):
    cps = []
    for ch in text:
        cp = ord(ch)
        if cp in drop:
            continue
        if cp in space:
            cp = 0x20
        if chinese and cp in cjk:
            cps += [0x20, cp, 0x20]
        else:
            cps.append(cp)
    if strip:
        d = []
        for cp in cps:
            decompose(cp, d)
        # canonical ordering: stable sort runs of non-starters by class
        i = 0
        while i < len(d):
            if CCC.get(d[i], 0):
                j = i
                while j < len(d) and CCC.get(d[j], 0):
                    j += 1
                d[i:j] = sorted(d[i:j], key=lambda x: CCC[x])
                i = j
            else:
                i += 1
        cps = [cp for cp in d if cp not in mn]
    if lower:
        lc = []
        for cp in cps:
            if cp in lower1:
                lc.append(lower1[cp])
            elif cp in lowerm:
                lc += lowerm[cp]
            else:
                lc.append(cp)
        cps = lc
    return "".join(map(chr, cps))


def model_pretokenize(s):
    words, cur = [], ""
    for ch in s:
        if ch == " ":
            if cur:
                words.append(cur)
            cur = ""
        elif ord(ch) in punct:
            if cur:
                words.append(cur)
            words.append(ch)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    return words


bad = 0
for lower, strip in ((True, True), (False, False), (True, False), (False, True)):
    ref = bert_norm(clean=True, cjk=True, strip=strip, lower=lower)
    for cp in ALL:
        for text in (chr(cp), "Ab" + chr(cp) + "\u0301c"):
            n = ref.normalize_str(text)
            if model_normalize(text, lower, strip) != n:
                bad += 1
                print(f"normalize(lower={lower}, strip={strip}) differs at U+{cp:04X}")
                break
            if [w for w, _ in pre.pre_tokenize_str(n)] != model_pretokenize(n):
                bad += 1
                print(f"pre-tokenize differs at U+{cp:04X}")
                break
        if bad > 20:
            sys.exit("too many differences")
if bad:
    sys.exit(f"{bad} differences from tokenizers")
print(f"wrote {OUT}: {len(ranges(drop))} drop, {len(ranges(space))} space, {len(ranges(cjk))} cjk, "
      f"{len(ranges(mn))} mn, {len(ranges(punct))} punct ranges, {len(ccc_runs)} ccc runs, {len(decomp)} "
      f"decompositions, {len(lower1)}+{len(lowerm)} lowercase mappings; all agree with tokenizers")
