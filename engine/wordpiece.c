/* wordpiece.c - BERT WordPiece tokenizer equal to transformers 5's BertTokenizer (tokenizers-backed).
 * See wordpiece.h for the pipeline and docs/TOKENIZER.md for where each rule comes from. */
#include "wordpiece.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"
#include "unicode.h"
#include "wordpiece_tables.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define WP_MAX_CHARS_PER_WORD 100 /* tokenizers' WordPiece default, which BertTokenizer keeps */
#define WP_PREFIX "##"

typedef struct wp_added {
    char *content; /* as matched in the text (normalized tokens: in normalized form) */
    char *orig;    /* as the config names it */
    size_t len;
    int32_t id;
    bool special;    /* skipped by decode(skip_special_tokens=True) */
    bool normalized; /* matched in the normalized text instead of the raw text */
} wp_added;

struct da_wordpiece {
    char **vocab;    /* vocab.txt line per id (n_vocab) */
    int32_t n_vocab;
    int32_t *slots;  /* open-addressing hash of vocab ids by token, -1 empty */
    size_t n_slots;  /* power of two */
    wp_added *added;
    size_t n_added;
    int32_t n_total; /* 1 + the largest id */
    bool lower, strip, chinese, cleanup;
    int max_length;
    int32_t cls, sep, pad, unk, mask, bos;
};

/* ---- Unicode predicates ----------------------------------------------------------------------- */

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid][1] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[lo][0] <= c;
}
#define IN_TABLE(t, c) in_ranges((t), N_ELEMS(t), (c))

/* Row index of c in a table sorted by its first column, or -1. */
#define FIND_ROW(table, c, out)                                                                    \
    do {                                                                                           \
        size_t lo_ = 0, hi_ = N_ELEMS(table);                                                      \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = (lo_ + hi_) / 2;                                                         \
            if ((table)[mid_][0] < (c)) lo_ = mid_ + 1;                                            \
            else hi_ = mid_;                                                                       \
        }                                                                                          \
        (out) = lo_ < N_ELEMS(table) && (table)[lo_][0] == (c) ? (long)lo_ : -1;                  \
    } while (0)

/* Growable code point array. */
typedef struct cpbuf {
    uint32_t *p;
    size_t n, cap;
    bool failed;
} cpbuf;

static void cp_push(cpbuf *b, uint32_t c) {
    if (b->failed) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint32_t *p = realloc(b->p, cap * sizeof *p);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    b->p[b->n++] = c;
}

/* NFD of one code point (Hangul algorithmically, the rest from the table). */
static void decompose(cpbuf *out, uint32_t c) {
    if (c >= 0xAC00 && c <= 0xD7A3) {
        uint32_t s = c - 0xAC00;
        cp_push(out, 0x1100 + s / 588);
        cp_push(out, 0x1161 + (s % 588) / 28);
        if (s % 28) cp_push(out, 0x11A7 + s % 28);
        return;
    }
    long r;
    FIND_ROW(da_wp_decomp, c, r);
    if (r < 0) {
        cp_push(out, c);
        return;
    }
    for (int k = 1; k < 5 && da_wp_decomp[r][k]; k++) cp_push(out, da_wp_decomp[r][k]);
}

/* BertNormalizer on cps[0..n): clean_text, CJK spacing, (strip) NFD + drop Mn, (lower) lower case. */
static bool bert_normalize(const da_wordpiece *w, const uint32_t *cps, size_t n, cpbuf *out) {
    cpbuf a = {0}, b = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        if (IN_TABLE(da_wp_drop, c)) continue;
        if (IN_TABLE(da_wp_space, c)) c = ' ';
        if (w->chinese && IN_TABLE(da_wp_cjk, c)) {
            cp_push(&a, ' '), cp_push(&a, c), cp_push(&a, ' ');
        } else {
            cp_push(&a, c);
        }
    }
    if (w->strip) {
        for (size_t i = 0; i < a.n; i++) decompose(&b, a.p[i]);
        /* canonical ordering: a stable insertion sort of each run of non-starters by class */
        for (size_t i = 0; i < b.n && !b.failed; i++) {
            int ci = da_unicode_ccc(b.p[i]);
            if (!ci) continue;
            size_t j = i;
            uint32_t c = b.p[i];
            while (j > 0 && da_unicode_ccc(b.p[j - 1]) > ci) {
                b.p[j] = b.p[j - 1];
                j--;
            }
            b.p[j] = c;
        }
        a.n = 0;
        for (size_t i = 0; i < b.n; i++)
            if (!IN_TABLE(da_wp_mn, b.p[i])) cp_push(&a, b.p[i]);
    }
    if (w->lower) {
        for (size_t i = 0; i < a.n; i++) {
            uint32_t l[3];
            int nl = da_unicode_lower(a.p[i], l);
            for (int k = 0; k < nl; k++) cp_push(out, l[k]);
        }
    } else {
        for (size_t i = 0; i < a.n; i++) cp_push(out, a.p[i]);
    }
    bool ok = !a.failed && !b.failed && !out->failed;
    free(a.p), free(b.p);
    return ok;
}

/* ---- UTF-8 -------------------------------------------------------------------------------------- */

static size_t utf8_put(char *dst, uint32_t c) {
    if (c < 0x80) {
        dst[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        dst[0] = (char)(0xC0 | (c >> 6)), dst[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        dst[0] = (char)(0xE0 | (c >> 12)), dst[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (c >> 18)), dst[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((c >> 6) & 0x3F)), dst[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Valid UTF-8 s[0..len) -> code points appended to out. */
static void utf8_to_cps(const char *s, size_t len, cpbuf *out) {
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        size_t k = da_utf8_next((const unsigned char *)s + i, len - i, &c);
        if (!k) return; /* validated by the caller */
        cp_push(out, c);
        i += k;
    }
}

/* ---- vocabulary --------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Model-vocabulary id of s[0..n), -1 when absent. */
static int32_t vocab_find(const da_wordpiece *w, const char *s, size_t n) {
    size_t mask = w->n_slots - 1;
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = w->slots[i];
        if (id < 0) return -1;
        const char *t = w->vocab[id];
        if (strlen(t) == n && !memcmp(t, s, n)) return id;
    }
}

static const wp_added *added_by_id(const da_wordpiece *w, int32_t id) {
    for (size_t i = 0; i < w->n_added; i++)
        if (w->added[i].id == id) return &w->added[i];
    return NULL;
}

static const wp_added *added_by_name(const da_wordpiece *w, const char *s) {
    for (size_t i = 0; i < w->n_added; i++)
        if (!strcmp(w->added[i].orig, s)) return &w->added[i];
    return NULL;
}

void da_wordpiece_free(da_wordpiece *w) {
    if (!w) return;
    for (int32_t i = 0; i < w->n_vocab; i++) free(w->vocab[i]);
    free(w->vocab);
    free(w->slots);
    for (size_t i = 0; i < w->n_added; i++) free(w->added[i].content), free(w->added[i].orig);
    free(w->added);
    free(w);
}

/* vocab.txt as tokenizers' WordPiece::read_file reads it: one token per line ("\n" or "\r\n"),
 * trailing whitespace trimmed, the line number is the id; a repeated token keeps its last id. */
static da_status read_vocab(da_wordpiece *w, const char *path, da_error *err) {
    char *text;
    size_t len;
    da_status st = da_read_file(path, &text, &len, err);
    if (st != DA_OK) return st;
    long bad = da_utf8_invalid_at(text, len);
    if (bad >= 0) {
        /* report the line of the bad byte */
        size_t line = 1;
        for (long i = 0; i < bad; i++) line += text[i] == '\n';
        free(text);
        return da_err_set(err, DA_ERR_FORMAT, "%s: line %zu: invalid UTF-8 at byte %ld", path, line, bad);
    }
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    if (len && text[len - 1] != '\n') n_lines++;
    if (n_lines == 0) {
        free(text);
        return da_err_set(err, DA_ERR_FORMAT, "%s: empty vocabulary", path);
    }
    if (n_lines > (size_t)INT32_MAX / 4) {
        free(text);
        return da_err_set(err, DA_ERR_FORMAT, "%s: too many lines (%zu)", path, n_lines);
    }
    w->vocab = da_calloc(n_lines, sizeof *w->vocab, err);
    w->n_slots = 16;
    while (w->n_slots < n_lines * 2) w->n_slots *= 2;
    w->slots = w->vocab ? da_malloc(w->n_slots * sizeof *w->slots, err) : NULL;
    if (!w->slots) {
        free(text);
        return DA_ERR_NOMEM;
    }
    memset(w->slots, 0xFF, w->n_slots * sizeof *w->slots);
    size_t pos = 0;
    for (size_t id = 0; id < n_lines; id++) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        size_t next = end + 1;
        /* trim trailing white space (Rust's str::trim_end: Unicode White_Space; \r among it) */
        for (;;) {
            if (end > pos && strchr(" \t\r\v\f", text[end - 1])) {
                end--;
                continue;
            }
            /* multi-byte White_Space: U+0085, U+00A0, U+1680, U+2000-200A, U+2028/9, U+202F, U+205F, U+3000 */
            size_t k = end;
            while (k > pos && ((unsigned char)text[k - 1] & 0xC0) == 0x80) k--;
            if (k > pos && k < end) k--;
            else k = end;
            if (k < end) {
                uint32_t c;
                if (da_utf8_next((const unsigned char *)text + k, end - k, &c) == end - k &&
                    (c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
                     c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000)) {
                    end = k;
                    continue;
                }
            }
            break;
        }
        char *tok = malloc(end - pos + 1);
        if (!tok) {
            free(text);
            return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(tok, text + pos, end - pos);
        tok[end - pos] = 0;
        w->vocab[id] = tok;
        w->n_vocab = (int32_t)id + 1;
        size_t mask = w->n_slots - 1, tl = end - pos;
        for (size_t i = hash_bytes(tok, tl) & mask;; i = (i + 1) & mask) {
            int32_t o = w->slots[i];
            if (o < 0 || !strcmp(w->vocab[o], tok)) {
                w->slots[i] = (int32_t)id; /* a repeated token: the last line wins */
                break;
            }
        }
        pos = next;
    }
    free(text);
    w->n_total = w->n_vocab;
    return DA_OK;
}

/* ---- config ------------------------------------------------------------------------------------- */

/* A token value: a string or an AddedToken object {"content": ...}; NULL for null/absent.
 * *bad is set when the value has another type. */
static const char *token_value(const da_json *v, bool *bad) {
    if (!v || v->type == DA_JSON_NULL) return NULL;
    if (v->type == DA_JSON_STRING) return v->str;
    if (v->type == DA_JSON_OBJECT) {
        const char *s = da_json_get_str(v, "content");
        if (s) return s;
    }
    *bad = true;
    return NULL;
}

enum { K_BOS, K_EOS, K_UNK, K_SEP, K_PAD, K_CLS, K_MASK, K_N };
/* transformers' SPECIAL_TOKENS_ATTRIBUTES order: missing special tokens are added in it */
static const char *const special_keys[K_N] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};

typedef struct wp_config {
    const char *named[K_N];
    const da_json *extras;     /* list of extra special tokens (strings or objects), may be NULL */
    const da_json *map_extras; /* special_tokens_map.json's additional_special_tokens */
} wp_config;

static bool json_bool_opt(const da_json *j, const char *key, bool *out, bool *bad) {
    const da_json *v = da_json_get(j, key);
    if (!v || v->type == DA_JSON_NULL) return false;
    if (v->type != DA_JSON_TRUE && v->type != DA_JSON_FALSE) {
        *bad = true;
        return false;
    }
    *out = v->type == DA_JSON_TRUE;
    return true;
}

static da_status add_token(da_wordpiece *w, const char *content, int32_t id, bool special, bool normalized,
                           const char *path, da_error *err) {
    if (!content[0]) return da_err_set(err, DA_ERR_FORMAT, "%s: an added token is empty", path);
    if (da_utf8_invalid_at(content, strlen(content)) >= 0)
        return da_err_set(err, DA_ERR_FORMAT, "%s: added token is not valid UTF-8", path);
    if (id < 0 || id > INT32_MAX / 2)
        return da_err_set(err, DA_ERR_FORMAT, "%s: added token \"%s\" has an invalid id %d", path, content, (int)id);
    wp_added *a = realloc(w->added, (w->n_added + 1) * sizeof *a);
    if (!a) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    w->added = a;
    char *c = strdup(content), *orig = strdup(content);
    if (!c || !orig) {
        free(c), free(orig);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    }
    if (normalized && w->lower) {
        /* tokenizers stores a normalized added token's content normalized (so "[ENC]" reads "[enc]") */
        cpbuf in = {0}, outb = {0};
        utf8_to_cps(c, strlen(c), &in);
        bool ok = !in.failed && bert_normalize(w, in.p, in.n, &outb);
        char *s = ok ? malloc(outb.n * 4 + 1) : NULL;
        if (s) {
            size_t k = 0;
            for (size_t i = 0; i < outb.n; i++) k += utf8_put(s + k, outb.p[i]);
            s[k] = 0;
            free(c);
            c = s;
        }
        free(in.p), free(outb.p);
        if (!s) {
            free(c), free(orig);
            return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    a[w->n_added++] = (wp_added){c, orig, strlen(c), id, special, normalized};
    if (id >= w->n_total) w->n_total = id + 1;
    return DA_OK;
}

/* A special token named by the config that is not an added token yet: its vocab id, or the next free id. */
static da_status ensure_special(da_wordpiece *w, const char *tok, const char *path, da_error *err) {
    if (!tok || added_by_name(w, tok)) return DA_OK;
    int32_t id = vocab_find(w, tok, strlen(tok));
    return add_token(w, tok, id >= 0 ? id : w->n_total, true, false, path, err);
}

static da_status apply_config(da_wordpiece *w, const char *dir, da_error *err) {
    char *cfgp = da_path_join(dir, "tokenizer_config.json"), *mapp = da_path_join(dir, "special_tokens_map.json");
    char *addp = da_path_join(dir, "added_tokens.json");
    da_json *cfg = NULL, *map = NULL, *add = NULL;
    da_status st = DA_OK;
    bool bad = false;
    wp_config c = {{NULL, NULL, "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"}, NULL, NULL};
    if (!cfgp || !mapp || !addp) {
        st = da_err_set(err, DA_ERR_NOMEM, "wordpiece: out of memory");
        goto done;
    }
    const da_json *decoder = NULL;
    if (da_is_file(cfgp)) {
        if ((st = da_json_read_object(cfgp, &cfg, err)) != DA_OK) goto done;
        bool lower = true, chinese = true, strip = false, cleanup = false;
        bool has_strip = false;
        json_bool_opt(cfg, "do_lower_case", &lower, &bad);
        json_bool_opt(cfg, "tokenize_chinese_chars", &chinese, &bad);
        has_strip = json_bool_opt(cfg, "strip_accents", &strip, &bad);
        json_bool_opt(cfg, "clean_up_tokenization_spaces", &cleanup, &bad);
        if (bad) {
            st = da_err_set(err, DA_ERR_FORMAT,
                            "%s: do_lower_case, tokenize_chinese_chars, strip_accents and "
                            "clean_up_tokenization_spaces must be true, false or null",
                            cfgp);
            goto done;
        }
        w->lower = lower, w->chinese = chinese, w->strip = has_strip ? strip : lower, w->cleanup = cleanup;
        const da_json *ml = da_json_get(cfg, "model_max_length");
        if (ml && ml->type == DA_JSON_NUMBER) {
            if (ml->num < 0) {
                st = da_err_set(err, DA_ERR_FORMAT, "%s: model_max_length is negative", cfgp);
                goto done;
            }
            w->max_length = ml->num <= 1 << 24 ? (int)ml->num : 0;
        }
        for (int k = 0; k < K_N; k++) {
            const da_json *v = da_json_get(cfg, special_keys[k]);
            if (v) c.named[k] = token_value(v, &bad);
        }
        /* extra special tokens: a list, or (transformers 5) an object of model-specific named tokens */
        c.extras = da_json_get(cfg, "extra_special_tokens");
        if (!c.extras || c.extras->type == DA_JSON_NULL || (c.extras->type == DA_JSON_ARRAY && !c.extras->n))
            c.extras = da_json_get(cfg, "additional_special_tokens");
        if (c.extras && c.extras->type == DA_JSON_NULL) c.extras = NULL;
        if (c.extras && c.extras->type != DA_JSON_ARRAY && c.extras->type != DA_JSON_OBJECT) bad = true;
        decoder = da_json_get(cfg, "added_tokens_decoder");
        if (decoder && decoder->type != DA_JSON_OBJECT) bad = true;
        if (bad) {
            st = da_err_set(err, DA_ERR_FORMAT, "%s: a special token is neither a string nor {\"content\": ...}, or "
                            "added_tokens_decoder / additional_special_tokens has the wrong type", cfgp);
            goto done;
        }
    }
    if (decoder) {
        for (size_t i = 0; i < decoder->n; i++) {
            const da_json *t = &decoder->items[i];
            char *end;
            long id = strtol(decoder->keys[i], &end, 10);
            const char *content = t->type == DA_JSON_OBJECT ? da_json_get_str(t, "content") : NULL;
            bool special = false, normalized = false, flag = false;
            if (*end || end == decoder->keys[i] || id < 0 || id > INT32_MAX / 2 || !content) {
                st = da_err_set(err, DA_ERR_FORMAT, "%s: added_tokens_decoder entry \"%s\" is not {id: {\"content\": ...}}",
                                cfgp, decoder->keys[i]);
                goto done;
            }
            json_bool_opt(t, "special", &special, &bad);
            if (!json_bool_opt(t, "normalized", &normalized, &bad)) normalized = !special;
            const char *flags[] = {"lstrip", "rstrip", "single_word"};
            for (int f = 0; f < 3; f++) {
                bool v = false;
                json_bool_opt(t, flags[f], &v, &bad);
                if (v) flag = true;
            }
            if (bad) {
                st = da_err_set(err, DA_ERR_FORMAT, "%s: added token \"%s\": a flag is not a boolean", cfgp, content);
                goto done;
            }
            if (flag) {
                st = da_err_set(err, DA_ERR_UNSUPPORTED,
                                "%s: added token \"%s\" uses lstrip/rstrip/single_word, which are not supported", cfgp,
                                content);
                goto done;
            }
            if ((st = add_token(w, content, (int32_t)id, special, normalized, cfgp, err)) != DA_OK) goto done;
        }
    } else {
        /* legacy files, read as transformers' from_pretrained does without added_tokens_decoder */
        if (da_is_file(mapp)) {
            if ((st = da_json_read_object(mapp, &map, err)) != DA_OK) goto done;
            for (int k = 0; k < K_N; k++) {
                const da_json *v = da_json_get(map, special_keys[k]);
                if (v) c.named[k] = token_value(v, &bad);
            }
            c.map_extras = da_json_get(map, "additional_special_tokens");
            if (!c.map_extras) c.map_extras = da_json_get(map, "extra_special_tokens");
            if (c.map_extras && c.map_extras->type == DA_JSON_NULL) c.map_extras = NULL;
            if (c.map_extras && c.map_extras->type != DA_JSON_ARRAY && c.map_extras->type != DA_JSON_OBJECT) bad = true;
            if (bad) {
                st = da_err_set(err, DA_ERR_FORMAT, "%s: a special token is neither a string nor {\"content\": ...}", mapp);
                goto done;
            }
        }
        if (da_is_file(addp)) {
            if ((st = da_json_read_object(addp, &add, err)) != DA_OK) goto done;
            for (size_t i = 0; i < add->n; i++) {
                const char *tok = add->keys[i];
                const da_json *v = &add->items[i];
                if (v->type != DA_JSON_NUMBER || !v->is_int || v->inum < 0 || v->inum > INT32_MAX / 2) {
                    st = da_err_set(err, DA_ERR_FORMAT, "%s: \"%s\" has no valid id", addp, tok);
                    goto done;
                }
                /* special when a named special token or one of the config's extras (not the map's) */
                bool special = false;
                for (int k = 0; k < K_N; k++) special |= c.named[k] && !strcmp(c.named[k], tok);
                for (size_t e = 0; c.extras && e < c.extras->n; e++) {
                    const char *s = token_value(&c.extras->items[e], &bad);
                    special |= s && !strcmp(s, tok);
                }
                if ((st = add_token(w, tok, (int32_t)v->inum, special, !special, addp, err)) != DA_OK) goto done;
            }
        }
    }
    /* the named special tokens and the extras become special added tokens when not added yet */
    const char *src = decoder ? cfgp : map ? mapp : cfgp;
    for (int k = 0; k < K_N; k++)
        if ((st = ensure_special(w, c.named[k], src, err)) != DA_OK) goto done;
    const da_json *lists[2] = {c.extras, c.map_extras};
    for (int l = 0; l < 2; l++)
        for (size_t e = 0; lists[l] && e < lists[l]->n; e++) {
            const char *s = token_value(&lists[l]->items[e], &bad);
            if (bad || !s) {
                st = da_err_set(err, DA_ERR_FORMAT, "%s: an additional special token is not a string", src);
                goto done;
            }
            if ((st = ensure_special(w, s, src, err)) != DA_OK) goto done;
        }
    int32_t *ids[K_N] = {&w->bos, NULL, &w->unk, &w->sep, &w->pad, &w->cls, &w->mask};
    for (int k = 0; k < K_N; k++)
        if (ids[k] && c.named[k]) *ids[k] = da_wordpiece_token_id(w, c.named[k]);
        else if (ids[k]) *ids[k] = -1;
done:
    da_json_free(cfg), da_json_free(map), da_json_free(add);
    free(cfgp), free(mapp), free(addp);
    return st;
}

static da_status load(const char *dir, const char *vocab_path, da_wordpiece **out, da_error *err) {
    da_wordpiece *w = da_calloc(1, sizeof *w, err);
    if (!w) return DA_ERR_NOMEM;
    w->lower = w->chinese = w->strip = true;
    w->bos = w->mask = -1;
    da_status st = read_vocab(w, vocab_path, err);
    if (st == DA_OK && dir) st = apply_config(w, dir, err);
    if (st == DA_OK && !dir) {
        const char *named[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
        for (size_t k = 0; k < 5 && st == DA_OK; k++) st = ensure_special(w, named[k], vocab_path, err);
        w->unk = da_wordpiece_token_id(w, "[UNK]"), w->sep = da_wordpiece_token_id(w, "[SEP]");
        w->pad = da_wordpiece_token_id(w, "[PAD]"), w->cls = da_wordpiece_token_id(w, "[CLS]");
        w->mask = da_wordpiece_token_id(w, "[MASK]");
    }
    if (st == DA_OK && (w->unk < 0 || w->unk >= w->n_vocab || vocab_find(w, w->vocab[w->unk], strlen(w->vocab[w->unk])) != w->unk))
        st = da_err_set(err, DA_ERR_FORMAT, "%s: the unknown token is not in the vocabulary", vocab_path);
    if (st != DA_OK) {
        da_wordpiece_free(w);
        w = NULL;
    }
    *out = w;
    return st;
}

da_status da_wordpiece_load(const char *path, da_wordpiece **out, da_error *err) {
    if (!path || !out) return da_err_set(err, DA_ERR_INVALID_ARG, "wordpiece: NULL argument");
    *out = NULL;
    if (da_is_dir(path)) {
        char *vocab = da_path_join(path, "vocab.txt");
        if (!vocab) return da_err_set(err, DA_ERR_NOMEM, "wordpiece: out of memory");
        da_status st = da_is_file(vocab) ? load(path, vocab, out, err)
                                         : da_err_set(err, DA_ERR_NOT_FOUND, "%s: missing (a WordPiece tokenizer folder needs vocab.txt)", vocab);
        free(vocab);
        return st;
    }
    if (!da_is_file(path)) return da_err_set(err, DA_ERR_NOT_FOUND, "%s: no such file or directory", path);
    return load(NULL, path, out, err);
}

/* ---- queries ------------------------------------------------------------------------------------ */

int da_wordpiece_vocab_size(const da_wordpiece *w) { return w->n_total; }
int da_wordpiece_max_length(const da_wordpiece *w) { return w->max_length; }
int32_t da_wordpiece_cls_id(const da_wordpiece *w) { return w->cls; }
int32_t da_wordpiece_sep_id(const da_wordpiece *w) { return w->sep; }
int32_t da_wordpiece_pad_id(const da_wordpiece *w) { return w->pad; }
int32_t da_wordpiece_unk_id(const da_wordpiece *w) { return w->unk; }
int32_t da_wordpiece_bos_id(const da_wordpiece *w) { return w->bos; }
int32_t da_wordpiece_mask_id(const da_wordpiece *w) { return w->mask; }

int32_t da_wordpiece_token_id(const da_wordpiece *w, const char *token) {
    if (!token) return -1;
    /* as convert_tokens_to_ids: added tokens by the name the config gives ("[ENC]", even where
     * tokenizers stores the normalized "[enc]"), then the vocabulary */
    const wp_added *a = added_by_name(w, token);
    if (a) return a->id;
    return vocab_find(w, token, strlen(token));
}

const char *da_wordpiece_token(const da_wordpiece *w, int32_t id) {
    const wp_added *a = added_by_id(w, id);
    if (a) return a->content;
    if (id < 0 || id >= w->n_vocab) return NULL;
    return w->vocab[id];
}

/* ---- encoding ----------------------------------------------------------------------------------- */

typedef struct idbuf {
    int32_t *p;
    size_t n, cap;
    bool failed;
} idbuf;

static void id_push(idbuf *b, int32_t id) {
    if (b->failed) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int32_t *p = realloc(b->p, cap * sizeof *p);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    b->p[b->n++] = id;
}

/* WordPiece on one pre-tokenized word s[0..n) (UTF-8, n_chars code points). */
static void wordpiece_word(const da_wordpiece *w, const char *s, size_t n, size_t n_chars, idbuf *out, char *scratch) {
    if (n_chars > WP_MAX_CHARS_PER_WORD) {
        id_push(out, w->unk);
        return;
    }
    size_t mark = out->n, start = 0;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        while (start < end) {
            if (start == 0) {
                found = vocab_find(w, s, end);
            } else {
                memcpy(scratch, WP_PREFIX, 2);
                memcpy(scratch + 2, s + start, end - start);
                found = vocab_find(w, scratch, end - start + 2);
            }
            if (found >= 0) break;
            do end--; /* back one code point */
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80);
        }
        if (found < 0) {
            out->n = mark;
            id_push(out, w->unk);
            return;
        }
        id_push(out, found);
        start = end;
    }
}

/* BertPreTokenizer + WordPiece on normalized code points. */
static bool pretokenize_and_encode(const da_wordpiece *w, const uint32_t *cps, size_t n, idbuf *out) {
    char *word = malloc(n * 4 + 1), *scratch = malloc(n * 4 + 3);
    bool ok = word && scratch;
    size_t wl = 0, wc = 0;
    for (size_t i = 0; ok && i <= n; i++) {
        uint32_t c = i < n ? cps[i] : ' ';
        bool punct = c != ' ' && IN_TABLE(da_wp_punct, c);
        if (c == ' ' || punct) {
            if (wl) wordpiece_word(w, word, wl, wc, out, scratch);
            wl = wc = 0;
            if (punct) {
                size_t k = utf8_put(word, c);
                wordpiece_word(w, word, k, 1, out, scratch);
            }
        } else {
            wl += utf8_put(word + wl, c);
            wc++;
        }
    }
    free(word), free(scratch);
    return ok && !out->failed;
}

/* Leftmost-longest match of the added tokens with the given `normalized` flag in s[0..n):
 * returns the start (n when none) and sets *tok. */
static size_t find_added(const da_wordpiece *w, const char *s, size_t n, bool normalized, const wp_added **tok) {
    for (size_t i = 0; i < n; i++) {
        const wp_added *best = NULL;
        for (size_t k = 0; k < w->n_added; k++) {
            const wp_added *a = &w->added[k];
            if (a->normalized != normalized || a->len > n - i || memcmp(s + i, a->content, a->len)) continue;
            if (!best || a->len > best->len) best = a;
        }
        if (best) {
            *tok = best;
            return i;
        }
    }
    return n;
}

/* A raw-text segment without special tokens: normalize, cut out normalized added tokens, encode the rest. */
static bool encode_segment(const da_wordpiece *w, const char *s, size_t n, idbuf *out) {
    cpbuf raw = {0}, norm = {0};
    utf8_to_cps(s, n, &raw);
    bool ok = !raw.failed && bert_normalize(w, raw.p, raw.n, &norm);
    char *u8 = ok ? malloc(norm.n * 4 + 1) : NULL;
    ok = ok && u8;
    if (ok) {
        size_t len = 0;
        for (size_t i = 0; i < norm.n; i++) len += utf8_put(u8 + len, norm.p[i]);
        size_t pos = 0;
        while (ok && pos < len) {
            const wp_added *a = NULL;
            size_t at = find_added(w, u8 + pos, len - pos, true, &a);
            cpbuf part = {0};
            utf8_to_cps(u8 + pos, at, &part);
            ok = !part.failed && pretokenize_and_encode(w, part.p, part.n, out);
            free(part.p);
            if (at == len - pos) break;
            id_push(out, a->id);
            pos += at + a->len;
        }
    }
    free(u8), free(raw.p), free(norm.p);
    return ok && !out->failed;
}

da_status da_wordpiece_encode_full(const da_wordpiece *w, const char *text, bool add_special, int32_t *ids,
                                   int cap, int *n, size_t *n_full, da_error *err) {
    if (!w || !text || !n || cap < 0 || (cap > 0 && !ids))
        return da_err_set(err, DA_ERR_INVALID_ARG, "wordpiece: invalid argument");
    *n = 0;
    size_t len = strlen(text);
    long bad = da_utf8_invalid_at(text, len);
    if (bad >= 0) return da_err_set(err, DA_ERR_INVALID_ARG, "wordpiece: text is not valid UTF-8 (byte %ld)", bad);
    idbuf b = {0};
    size_t pos = 0;
    bool ok = true;
    while (ok && pos <= len) {
        const wp_added *a = NULL;
        size_t at = find_added(w, text + pos, len - pos, false, &a);
        if (at) ok = encode_segment(w, text + pos, at, &b);
        if (at == len - pos) break;
        id_push(&b, a->id);
        pos += at + a->len;
    }
    if (!ok || b.failed) {
        free(b.p);
        return da_err_set(err, DA_ERR_NOMEM, "wordpiece: out of memory");
    }
    /* [CLS] $A [SEP]; BertTokenizer's post-processor falls back to ids 2 and 3 when the tokens are unknown */
    int32_t cls = w->cls >= 0 ? w->cls : 2, sep = w->sep >= 0 ? w->sep : 3;
    size_t full = b.n + (add_special ? 2 : 0);
    if (n_full) *n_full = full;
    size_t k = 0, c = (size_t)cap;
    if (add_special && c >= 2) {
        size_t body = b.n < c - 2 ? b.n : c - 2;
        ids[k++] = cls;
        if (body) memcpy(ids + k, b.p, body * sizeof *ids);
        k += body;
        ids[k++] = sep;
    } else if (add_special) {
        if (c >= 1) ids[k++] = cls;
    } else {
        k = b.n < c ? b.n : c;
        if (k) memcpy(ids, b.p, k * sizeof *ids);
    }
    free(b.p);
    *n = (int)k;
    return DA_OK;
}

da_status da_wordpiece_encode(const da_wordpiece *w, const char *text, bool add_special, int32_t *ids, int cap,
                              int *n, da_error *err) {
    return da_wordpiece_encode_full(w, text, add_special, ids, cap, n, NULL, err);
}

/* ---- decoding ----------------------------------------------------------------------------------- */

/* Replace every (non-overlapping, left to right) `from` by `to` in b, in place. */
static bool replace_all(da_buf *b, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to);
    if (b->len < fl || !memmem(b->data, b->len, from, fl)) return true;
    da_buf o = {0};
    size_t i = 0;
    while (i < b->len) {
        const char *hit = memmem(b->data + i, b->len - i, from, fl);
        if (!hit) {
            da_buf_append(&o, b->data + i, b->len - i);
            break;
        }
        da_buf_append(&o, b->data + i, (size_t)(hit - (b->data + i)));
        da_buf_append(&o, to, tl);
        i = (size_t)(hit - b->data) + fl;
    }
    da_buf_append(&o, "", 1);
    if (o.failed) {
        da_buf_free(&o);
        return false;
    }
    o.len--;
    da_buf_free(b);
    *b = o;
    return true;
}

/* tokenizers' WordPiece decoder clean-up (per token) and transformers' clean_up_tokenization (on the
 * whole text): the same list, but tokenizers' also has " do not" -> " don't". */
static bool cleanup(da_buf *b, bool tokenizers_list) {
    static const char *const pairs[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},   {" ,", ","},
                                           {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"},
                                           {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t i = 0; i < N_ELEMS(pairs); i++) {
        if (!tokenizers_list && i == 7) continue;
        if (!replace_all(b, pairs[i][0], pairs[i][1])) return false;
    }
    return true;
}

char *da_wordpiece_decode(const da_wordpiece *w, const int32_t *ids, int n, bool skip_special) {
    da_buf out = {0};
    int i_tok = 0;
    for (int i = 0; i < n; i++) {
        const wp_added *a = added_by_id(w, ids[i]);
        const char *t;
        if (a) {
            if (skip_special && a->special) continue;
            t = a->content;
        } else if (ids[i] >= 0 && ids[i] < w->n_vocab) {
            t = w->vocab[ids[i]];
        } else {
            continue; /* tokenizers drops ids it has no token for */
        }
        da_buf tok = {0};
        if (i_tok > 0) {
            if (!strncmp(t, WP_PREFIX, 2)) t += 2;
            else da_buf_append(&tok, " ", 1);
        }
        da_buf_append(&tok, t, strlen(t));
        da_buf_append(&tok, "", 1);
        bool ok = !tok.failed;
        if (ok) {
            tok.len--;
            ok = cleanup(&tok, true);
        }
        if (ok) da_buf_append(&out, tok.data, tok.len);
        da_buf_free(&tok);
        if (!ok) {
            da_buf_free(&out);
            return NULL;
        }
        i_tok++;
    }
    da_buf_append(&out, "", 1);
    if (out.failed) {
        da_buf_free(&out);
        return NULL;
    }
    out.len--;
    if (w->cleanup && !cleanup(&out, false)) {
        da_buf_free(&out);
        return NULL;
    }
    return out.data;
}
