/* tokenizer.c - the CLIP byte-level BPE tokenizer, equal to transformers' CLIPTokenizer
 * (transformers 5 / tokenizers 0.23: normalizers NFC + Replace(\s+, " ") + Lowercase, Split on the
 * CLIP regex, ByteLevel, BPE with end_of_word_suffix "</w>", RobertaProcessing for bos/eos) and, for
 * the vocabulary built from bpe_simple_vocab_16e6.txt.gz, to openai/CLIP simple_tokenizer.py.
 * See docs/TOKENIZER.md for the algorithm and the places where the two upstreams differ.
 */
#include "tokenizer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "json.h"
#include "unicode.h"
#include "unicode_tables.h"
#include "util.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define CACHE_SLOTS 16384     /* word cache: cleared when half full */
#define CLIP_GZ_MERGES 48894  /* simple_tokenizer.py: merges[1:49152-256-2+1] */

/* ---- small growable arrays ------------------------------------------------------------------ */

typedef struct { uint32_t *v; size_t n, cap; } u32vec;
typedef struct { int32_t *v; size_t n, cap; } i32vec;

static bool u32_push(u32vec *a, uint32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return false;
        a->v = p, a->cap = cap;
    }
    a->v[a->n++] = x;
    return true;
}

static bool i32_push(i32vec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return false;
        a->v = p, a->cap = cap;
    }
    a->v[a->n++] = x;
    return true;
}

/* ---- hash maps ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* token string -> id; keys point into the tokenizer's token table */
typedef struct { const char *key; uint32_t len; int32_t id; } str_slot;
/* (left id, right id) -> (rank, merged id) */
typedef struct { uint64_t key; int32_t rank, id; bool used; } pair_slot;
/* word bytes -> ids (cache) */
typedef struct { char *key; uint32_t len, n; int32_t *ids; } cache_slot;

struct da_tokenizer {
    char **tokens;        /* id -> token string (byte-level form), NULL for holes */
    size_t n_tokens;      /* 1 + largest id */
    str_slot *vocab;      /* open addressing, power-of-two capacity */
    size_t vocab_cap;
    pair_slot *merges;
    size_t merges_cap, n_merges;
    int32_t byte_id[256], byte_end_id[256]; /* the byte's symbol, and with "</w>" */
    int32_t bos, eos, pad, unk;
    char *special[4];     /* distinct special token strings, matched verbatim in raw text */
    int32_t special_id[4];
    int n_special;
    int max_length;
    pthread_mutex_t cache_lock;
    cache_slot *cache;
    size_t cache_n;
};

static int32_t vocab_find(const da_tokenizer *t, const char *s, size_t len) {
    size_t mask = t->vocab_cap - 1;
    for (size_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        const str_slot *e = &t->vocab[i];
        if (!e->key) return -1;
        if (e->len == len && !memcmp(e->key, s, len)) return e->id;
    }
}

/* Insert or overwrite (a later entry wins, as in a Python dict built from a list). */
static void vocab_put(da_tokenizer *t, const char *s, size_t len, int32_t id) {
    size_t mask = t->vocab_cap - 1;
    for (size_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        str_slot *e = &t->vocab[i];
        if (!e->key || (e->len == len && !memcmp(e->key, s, len))) {
            e->key = s, e->len = (uint32_t)len, e->id = id;
            return;
        }
    }
}

static const pair_slot *merge_find(const da_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = t->merges_cap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        const pair_slot *e = &t->merges[i];
        if (!e->used) return NULL;
        if (e->key == key) return e;
    }
}

/* A later duplicate pair overwrites the earlier rank (tokenizers and CLIP both build a map). */
static void merge_put(da_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = t->merges_cap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        pair_slot *e = &t->merges[i];
        if (!e->used || e->key == key) {
            if (!e->used) t->n_merges++;
            e->used = true, e->key = key, e->rank = rank, e->id = id;
            return;
        }
    }
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* ---- UTF-8 and Unicode properties ----------------------------------------------------------- */

/* Strict decoding (no overlongs, surrogates or code points past U+10FFFF). Returns the offset of
 * the first bad byte, or -1 when the whole text decoded. */
static long utf8_decode(const unsigned char *s, size_t len, u32vec *out, bool *nomem) {
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        size_t k = da_utf8_next(s + i, len - i, &c);
        if (!k) return (long)i;
        if (!u32_push(out, c)) {
            *nomem = true;
            return -1;
        }
        i += k;
    }
    return -1;
}

static size_t utf8_encode(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12); o[1] = (char)(0x80 | ((c >> 6) & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid][1] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[lo][0] <= c;
}

static bool is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    return in_ranges(da_uni_letter, N_ELEMS(da_uni_letter), c);
}
static bool is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return in_ranges(da_uni_number, N_ELEMS(da_uni_number), c);
}
static bool is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
    return in_ranges(da_uni_space, N_ELEMS(da_uni_space), c);
}

/* Index of c in a table sorted by its first column, or -1. */
#define FIND_FIRST(table, c)                                                                       \
    ({                                                                                             \
        size_t lo_ = 0, hi_ = N_ELEMS(table);                                                      \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = (lo_ + hi_) / 2;                                                         \
            if (table[mid_][0] < (c)) lo_ = mid_ + 1;                                              \
            else hi_ = mid_;                                                                       \
        }                                                                                          \
        lo_ < N_ELEMS(table) && table[lo_][0] == (c) ? (long)lo_ : -1L;                            \
    })

/* Hangul syllables (Unicode ch. 3.12): composed and decomposed algorithmically. */
enum { H_SBASE = 0xAC00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11A7, H_LCOUNT = 19, H_VCOUNT = 21,
       H_TCOUNT = 28, H_NCOUNT = H_VCOUNT * H_TCOUNT, H_SCOUNT = H_LCOUNT * H_NCOUNT };

static bool decompose_into(uint32_t c, u32vec *out) {
    if (c >= H_SBASE && c < H_SBASE + H_SCOUNT) {
        uint32_t s = c - H_SBASE, tt = s % H_TCOUNT;
        if (!u32_push(out, H_LBASE + s / H_NCOUNT) || !u32_push(out, H_VBASE + (s % H_NCOUNT) / H_TCOUNT)) return false;
        return tt ? u32_push(out, H_TBASE + tt) : true;
    }
    long k = c < 0xC0 ? -1 : FIND_FIRST(da_uni_decomp, c);
    if (k < 0) return u32_push(out, c);
    if (!decompose_into(da_uni_decomp[k][1], out)) return false;
    return da_uni_decomp[k][2] ? decompose_into(da_uni_decomp[k][2], out) : true;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = N_ELEMS(da_uni_compose);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uint32_t *e = da_uni_compose[mid];
        if (e[0] < a || (e[0] == a && e[1] < b)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < N_ELEMS(da_uni_compose) && da_uni_compose[lo][0] == a && da_uni_compose[lo][1] == b)
        return da_uni_compose[lo][2];
    return 0;
}

/* NFC (UAX #15): full canonical decomposition, canonical ordering, canonical composition. */
static bool nfc(const u32vec *in, u32vec *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++)
        if (!decompose_into(in->v[i], out)) return false;
    uint32_t *b = out->v;
    size_t n = out->n;
    /* canonical ordering: stable insertion sort of each run of non-starters by class */
    for (size_t i = 1; i < n; i++) {
        int cc = da_unicode_ccc(b[i]);
        if (!cc) continue;
        size_t j = i;
        uint32_t c = b[i];
        while (j > 0 && da_unicode_ccc(b[j - 1]) > cc) {
            b[j] = b[j - 1];
            j--;
        }
        b[j] = c;
    }
    if (n == 0) return true;
    size_t starter = 0, w = 1;
    int last = da_unicode_ccc(b[0]) ? 256 : 0; /* a leading non-starter blocks composition */
    for (size_t i = 1; i < n; i++) {
        uint32_t c = b[i];
        int cc = da_unicode_ccc(c);
        /* c combines with the last starter unless a character in between blocks it */
        uint32_t comp = (last < cc || last == 0) ? compose_pair(b[starter], c) : 0;
        if (comp) {
            b[starter] = comp;
            continue;
        }
        if (cc == 0) starter = w;
        last = cc;
        b[w++] = c;
    }
    out->n = w;
    return true;
}

/* Rust char::to_lowercase (what tokenizers' Lowercase normalizer applies code point by code point). */
static bool lower_into(uint32_t c, u32vec *out) {
    uint32_t l[3];
    int n = da_unicode_lower(c, l);
    for (int j = 0; j < n; j++)
        if (!u32_push(out, l[j])) return false;
    return true;
}

/* ---- BPE ------------------------------------------------------------------------------------ */

typedef struct { int32_t rank, pos, left, right; } heap_ent;

static bool heap_less(const heap_ent *a, const heap_ent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n) {
    heap_ent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_ent *best = &last;
        if (l < *n && heap_less(&h[l], best)) m = l, best = &h[l];
        if (r < *n && heap_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const da_tokenizer *t, heap_ent *h, size_t *nh, const int32_t *id, int32_t pos, int32_t nxt) {
    const pair_slot *m = merge_find(t, id[pos], id[nxt]);
    if (m) heap_push(h, nh, (heap_ent){m->rank, pos, id[pos], id[nxt]});
}

/* BPE of one word (its UTF-8 bytes): byte symbols, "</w>" on the last, then repeatedly the merge
 * of lowest rank, leftmost first (tokenizers' Word::merge_all; the same result as CLIP's bpe()). */
static da_status bpe_word(const da_tokenizer *t, const unsigned char *w, size_t n, i32vec *out) {
    int32_t *id = malloc(n * sizeof *id), *nx = malloc(n * sizeof *nx), *pv = malloc(n * sizeof *pv);
    heap_ent *h = malloc(2 * n * sizeof *h + sizeof *h);
    da_status st = DA_OK;
    if (!id || !nx || !pv || !h) {
        st = DA_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        id[i] = i + 1 == n ? t->byte_end_id[w[i]] : t->byte_id[w[i]];
        nx[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        pv[i] = (int32_t)i - 1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, h, &nh, id, (int32_t)i, (int32_t)i + 1);
    while (nh) {
        heap_ent e = heap_pop(h, &nh);
        int32_t r = nx[e.pos];
        if (id[e.pos] != e.left || r < 0 || id[r] != e.right) continue; /* stale */
        id[e.pos] = merge_find(t, e.left, e.right)->id;
        nx[e.pos] = nx[r];
        if (nx[r] >= 0) pv[nx[r]] = e.pos;
        id[r] = -1;
        /* each merge adds at most two pairs, so 2n entries always suffice */
        if (pv[e.pos] >= 0) push_pair(t, h, &nh, id, pv[e.pos], e.pos);
        if (nx[e.pos] >= 0) push_pair(t, h, &nh, id, e.pos, nx[e.pos]);
    }
    for (int32_t i = 0; i >= 0; i = nx[i])
        if (!i32_push(out, id[i])) {
            st = DA_ERR_NOMEM;
            break;
        }
done:
    free(id), free(nx), free(pv), free(h);
    return st;
}

static void cache_clear(da_tokenizer *t) {
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(t->cache[i].key);
        free(t->cache[i].ids);
        t->cache[i] = (cache_slot){0};
    }
    t->cache_n = 0;
}

/* bpe_word through the word cache. */
static da_status bpe_cached(da_tokenizer *t, const unsigned char *w, size_t n, i32vec *out) {
    if (n == 0) return DA_OK;
    uint64_t hsh = hash_bytes(w, n);
    pthread_mutex_lock(&t->cache_lock);
    for (size_t i = hsh & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_slot *e = &t->cache[i];
        if (!e->key) break;
        if (e->len == n && !memcmp(e->key, w, n)) {
            da_status st = DA_OK;
            for (uint32_t k = 0; k < e->n && st == DA_OK; k++)
                if (!i32_push(out, e->ids[k])) st = DA_ERR_NOMEM;
            pthread_mutex_unlock(&t->cache_lock);
            return st;
        }
    }
    pthread_mutex_unlock(&t->cache_lock);
    size_t start = out->n;
    da_status st = bpe_word(t, w, n, out);
    if (st != DA_OK || n > 256) return st; /* long words are rare; keep the cache small */
    size_t k = out->n - start;
    char *key = malloc(n);
    int32_t *ids = malloc(k * sizeof *ids);
    if (!key || !ids) {
        free(key), free(ids);
        return DA_OK; /* caching is optional */
    }
    memcpy(key, w, n);
    memcpy(ids, out->v + start, k * sizeof *ids);
    pthread_mutex_lock(&t->cache_lock);
    if (t->cache_n >= CACHE_SLOTS / 2) cache_clear(t);
    for (size_t i = hsh & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_slot *e = &t->cache[i];
        if (!e->key) {
            *e = (cache_slot){key, (uint32_t)n, (uint32_t)k, ids};
            t->cache_n++;
            break;
        }
        if (e->len == n && !memcmp(e->key, w, n)) { /* another thread got here first */
            free(key), free(ids);
            break;
        }
    }
    pthread_mutex_unlock(&t->cache_lock);
    return DA_OK;
}

/* ---- normalisation + pre-tokenisation --------------------------------------------------------- */

static bool cps_match(const uint32_t *c, size_t n, const char *lit) {
    size_t k = strlen(lit);
    if (k > n) return false;
    for (size_t i = 0; i < k; i++)
        if (c[i] != (unsigned char)lit[i]) return false;
    return true;
}

/* One pre-tokenised chunk c[0..n) -> UTF-8 -> BPE ids. */
static da_status encode_chunk(da_tokenizer *t, const uint32_t *c, size_t n, char **buf, size_t *cap, i32vec *out) {
    size_t need = 4 * n;
    if (need > *cap) {
        char *p = realloc(*buf, need);
        if (!p) return DA_ERR_NOMEM;
        *buf = p, *cap = need;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += utf8_encode(c[i], *buf + len);
    return bpe_cached(t, (const unsigned char *)*buf, len, out);
}

/* A text segment without verbatim special tokens: NFC, \s+ -> " ", lower case, CLIP split regex
 * <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * (matches kept, the rest dropped), then ByteLevel's GPT-2 split (which only changes the two
 * special-token look-alikes) and BPE per word. */
static da_status encode_segment(da_tokenizer *t, const char *s, size_t len, size_t base, i32vec *out, da_error *err) {
    u32vec a = {0}, b = {0}, c = {0};
    char *buf = NULL;
    size_t cap = 0;
    bool nomem = false;
    da_status st = DA_OK;
    long bad = utf8_decode((const unsigned char *)s, len, &a, &nomem);
    if (bad >= 0) {
        st = da_err_set(err, DA_ERR_INVALID_ARG, "text is not valid UTF-8 (byte 0x%02X at offset %zu)",
                        (unsigned char)s[bad], base + (size_t)bad);
        goto done;
    }
    if (nomem || !nfc(&a, &b)) goto oom;
    for (size_t i = 0; i < b.n; i++) {
        if (is_space(b.v[i])) {
            if (!u32_push(&c, ' ')) goto oom;
            while (i + 1 < b.n && is_space(b.v[i + 1])) i++;
        } else if (!lower_into(b.v[i], &c)) {
            goto oom;
        }
    }
    const uint32_t *v = c.v;
    size_t n = c.n, i = 0;
    while (i < n && st == DA_OK) {
        uint32_t ch = v[i];
        size_t j = i + 1;
        if (ch == '<' && (cps_match(v + i, n - i, "<|startoftext|>") || cps_match(v + i, n - i, "<|endoftext|>"))) {
            /* the regex keeps it whole, ByteLevel's split cuts it into "<|", the name, "|>" */
            size_t k = cps_match(v + i, n - i, "<|startoftext|>") ? 15 : 13;
            st = encode_chunk(t, v + i, 2, &buf, &cap, out);
            if (st == DA_OK) st = encode_chunk(t, v + i + 2, k - 4, &buf, &cap, out);
            if (st == DA_OK) st = encode_chunk(t, v + i + k - 2, 2, &buf, &cap, out);
            i += k;
            continue;
        }
        if (ch == '\'' && i + 1 < n) {
            uint32_t x = v[i + 1], y = i + 2 < n ? v[i + 2] : 0;
            if (x == 's' || x == 't' || x == 'm' || x == 'd') j = i + 2;
            else if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l')) j = i + 3;
        }
        if (j == i + 1) {
            if (is_letter(ch)) {
                while (j < n && is_letter(v[j])) j++;
            } else if (is_number(ch)) {
                /* one digit per chunk */
            } else if (is_space(ch)) {
                i++;
                continue;
            } else {
                while (j < n && !is_space(v[j]) && !is_letter(v[j]) && !is_number(v[j])) j++;
            }
        }
        st = encode_chunk(t, v + i, j - i, &buf, &cap, out);
        i = j;
    }
    if (st == DA_ERR_NOMEM) goto oom;
    goto done;
oom:
    st = da_err_set(err, DA_ERR_NOMEM, "tokenizer: out of memory");
done:
    free(a.v), free(b.v), free(c.v), free(buf);
    return st;
}

da_status da_tokenizer_encode_raw(da_tokenizer *t, const char *text, int32_t **ids, size_t *n, da_error *err) {
    *ids = NULL;
    *n = 0;
    if (!t || !text) return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: NULL argument");
    i32vec out = {0};
    size_t len = strlen(text), pos = 0;
    da_status st = DA_OK;
    while (st == DA_OK) {
        /* the leftmost (then longest) verbatim special token, as tokenizers' added vocabulary */
        size_t best = len, best_len = 0;
        int best_k = -1;
        for (int k = 0; k < t->n_special; k++) {
            const char *hit = strstr(text + pos, t->special[k]);
            size_t at = hit ? (size_t)(hit - text) : len, kl = strlen(t->special[k]);
            if (hit && (at < best || (at == best && kl > best_len))) best = at, best_len = kl, best_k = k;
        }
        st = encode_segment(t, text + pos, best - pos, pos, &out, err);
        if (st != DA_OK || best_k < 0) break;
        if (!i32_push(&out, t->special_id[best_k])) st = da_err_set(err, DA_ERR_NOMEM, "tokenizer: out of memory");
        pos = best + best_len;
    }
    if (st != DA_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n = out.n;
    return DA_OK;
}

da_status da_tokenizer_encode(da_tokenizer *t, const char *text, int max_length, bool pad, int32_t *ids,
                              int32_t *mask, da_tok_output *out, da_error *err) {
    if (!t || !text || !ids || !out) return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: NULL argument");
    if (max_length < 2)
        return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: max_length %d leaves no room for the start and end tokens",
                          max_length);
    int32_t *raw;
    size_t n;
    da_status st = da_tokenizer_encode_raw(t, text, &raw, &n, err);
    if (st != DA_OK) return st;
    size_t keep = n < (size_t)max_length - 2 ? n : (size_t)max_length - 2;
    int w = 0;
    ids[w++] = t->bos;
    for (size_t i = 0; i < keep; i++) ids[w++] = raw[i];
    ids[w++] = t->eos;
    free(raw);
    out->length = w;
    out->n_full = n + 2;
    out->truncated = n > keep;
    if (mask)
        for (int i = 0; i < w; i++) mask[i] = 1;
    if (pad) {
        for (int i = w; i < max_length; i++) {
            ids[i] = t->pad;
            if (mask) mask[i] = 0;
        }
        w = max_length;
    }
    out->n_written = w;
    return DA_OK;
}

/* ---- loading -------------------------------------------------------------------------------- */

/* GPT-2 / CLIP bytes_to_unicode(): printable bytes map to themselves, the rest to 256 + n. The
 * order is the dict order simple_tokenizer.py builds its vocabulary in. */
static void bytes_to_unicode(uint32_t cp[256], int order[256]) {
    int k = 0, extra = 0;
    bool printable[256] = {0};
    for (int b = '!'; b <= '~'; b++) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
    for (int b = 0; b < 256; b++)
        if (printable[b]) cp[b] = (uint32_t)b, order[k++] = b;
    for (int b = 0; b < 256; b++)
        if (!printable[b]) cp[b] = 256 + (uint32_t)extra++, order[k++] = b;
}

static da_tokenizer *tok_new(size_t n_tokens, size_t n_merges, da_error *err) {
    da_tokenizer *t = da_calloc(1, sizeof *t, err);
    if (!t) return NULL;
    pthread_mutex_init(&t->cache_lock, NULL);
    t->n_tokens = n_tokens;
    t->vocab_cap = pow2_at_least(2 * n_tokens + 2);
    t->merges_cap = pow2_at_least(2 * n_merges + 2);
    t->tokens = da_calloc(n_tokens ? n_tokens : 1, sizeof *t->tokens, err);
    t->vocab = t->tokens ? da_calloc(t->vocab_cap, sizeof *t->vocab, err) : NULL;
    t->merges = t->vocab ? da_calloc(t->merges_cap, sizeof *t->merges, err) : NULL;
    t->cache = t->merges ? da_calloc(CACHE_SLOTS, sizeof *t->cache, err) : NULL;
    t->max_length = DA_CLIP_MAX_LENGTH;
    if (!t->cache) {
        da_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void da_tokenizer_free(da_tokenizer *t) {
    if (!t) return;
    if (t->cache) cache_clear(t);
    free(t->cache);
    if (t->tokens)
        for (size_t i = 0; i < t->n_tokens; i++) free(t->tokens[i]);
    free(t->tokens);
    free(t->vocab);
    free(t->merges);
    for (int k = 0; k < t->n_special; k++) free(t->special[k]);
    pthread_mutex_destroy(&t->cache_lock);
    free(t);
}

static da_status set_token(da_tokenizer *t, int32_t id, const char *s, size_t len, const char *what, da_error *err) {
    if (t->tokens[id])
        return da_err_set(err, DA_ERR_DUPLICATE, "%s: id %d is given to both '%s' and '%.*s'", what, (int)id,
                          t->tokens[id], (int)len, s);
    char *c = da_malloc(len + 1, err);
    if (!c) return DA_ERR_NOMEM;
    memcpy(c, s, len);
    c[len] = 0;
    t->tokens[id] = c;
    vocab_put(t, c, len, id);
    return DA_OK;
}

/* The byte symbols every byte-level vocabulary must have. */
static da_status bind_bytes(da_tokenizer *t, const char *what, da_error *err) {
    uint32_t cp[256];
    int order[256];
    bytes_to_unicode(cp, order);
    for (int b = 0; b < 256; b++) {
        char s[16];
        size_t k = utf8_encode(cp[b], s);
        t->byte_id[b] = vocab_find(t, s, k);
        memcpy(s + k, "</w>", 4);
        t->byte_end_id[b] = vocab_find(t, s, k + 4);
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return da_err_set(err, DA_ERR_FORMAT, "%s: the vocabulary lacks the byte-level symbol '%.*s'%s for byte 0x%02X",
                              what, (int)k, s, t->byte_id[b] < 0 ? "" : "</w>", b);
    }
    return DA_OK;
}

/* One merge "a b" with rank: both parts and their concatenation must be tokens. */
static da_status add_merge(da_tokenizer *t, const char *a, size_t la, const char *b, size_t lb, int32_t rank,
                           const char *what, size_t line, da_error *err) {
    int32_t ia = vocab_find(t, a, la), ib = vocab_find(t, b, lb);
    if (ia < 0 || ib < 0)
        return da_err_set(err, DA_ERR_FORMAT, "%s: line %zu: token '%.*s' of the merge is not in the vocabulary", what,
                          line, ia < 0 ? (int)la : (int)lb, ia < 0 ? a : b);
    char tmp[512];
    if (la + lb > sizeof tmp)
        return da_err_set(err, DA_ERR_FORMAT, "%s: line %zu: merge result longer than %zu bytes", what, line, sizeof tmp);
    memcpy(tmp, a, la);
    memcpy(tmp + la, b, lb);
    int32_t r = vocab_find(t, tmp, la + lb);
    if (r < 0)
        return da_err_set(err, DA_ERR_FORMAT, "%s: line %zu: the vocabulary has no '%.*s' for the merge '%.*s %.*s'",
                          what, line, (int)(la + lb), tmp, (int)la, a, (int)lb, b);
    merge_put(t, ia, ib, rank, r);
    return DA_OK;
}

static da_status add_special(da_tokenizer *t, const char *s, int32_t *id, const char *what, da_error *err) {
    *id = vocab_find(t, s, strlen(s));
    if (*id < 0) return da_err_set(err, DA_ERR_FORMAT, "%s: special token '%s' is not in the vocabulary", what, s);
    for (int k = 0; k < t->n_special; k++)
        if (!strcmp(t->special[k], s)) return DA_OK;
    char *c = strdup(s);
    if (!c) return da_err_set(err, DA_ERR_NOMEM, "tokenizer: out of memory");
    t->special[t->n_special] = c;
    t->special_id[t->n_special++] = *id;
    return DA_OK;
}

typedef struct { const char *bos, *eos, *unk, *pad; int max_length; } tok_config;

static da_status finish(da_tokenizer *t, const tok_config *cfg, const char *what, da_error *err) {
    da_status st = bind_bytes(t, what, err);
    if (st == DA_OK) st = add_special(t, cfg->bos, &t->bos, what, err);
    if (st == DA_OK) st = add_special(t, cfg->eos, &t->eos, what, err);
    if (st == DA_OK) st = add_special(t, cfg->unk, &t->unk, what, err);
    if (st == DA_OK) st = add_special(t, cfg->pad, &t->pad, what, err);
    if (cfg->max_length >= 2) t->max_length = cfg->max_length;
    return st;
}

/* merges.txt: an optional "#version" first line, then one "a b" per line (rank = order). */
static da_status parse_merges(da_tokenizer *t, char *text, size_t len, const char *what, da_error *err) {
    size_t line = 0, rank = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        size_t ll = (size_t)(le - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (!(line == 1 && ll >= 8 && !memcmp(p, "#version", 8))) {
            if (ll == 0 && !nl) break; /* no newline after the last line */
            char *sp = memchr(p, ' ', ll);
            if (!sp || sp == p || sp == p + ll - 1 || memchr(sp + 1, ' ', ll - (size_t)(sp + 1 - p)))
                return da_err_set(err, DA_ERR_FORMAT, "%s: line %zu: malformed merge '%.*s' (expected two tokens split by one space)",
                                  what, line, (int)(ll > 80 ? 80 : ll), p);
            da_status st = add_merge(t, p, (size_t)(sp - p), sp + 1, (size_t)(p + ll - sp - 1), (int32_t)rank++, what, line, err);
            if (st != DA_OK) return st;
        }
        p = le + 1;
    }
    return DA_OK;
}

static da_status load_vocab_merges(const char *vocab_path, const char *merges_path, const tok_config *cfg,
                                   da_tokenizer **out, da_error *err) {
    char *vtext = NULL, *mtext = NULL;
    size_t vlen, mlen;
    da_json *j = NULL;
    da_tokenizer *t = NULL;
    da_status st = da_read_file(vocab_path, &vtext, &vlen, err);
    if (st == DA_OK) st = da_read_file(merges_path, &mtext, &mlen, err);
    if (st == DA_OK) st = da_json_parse(vtext, vlen, vocab_path, &j, err);
    if (st != DA_OK) goto done;
    if (j->type != DA_JSON_OBJECT || j->n == 0) {
        st = da_err_set(err, DA_ERR_FORMAT, "%s: expected a non-empty JSON object of token -> id", vocab_path);
        goto done;
    }
    int64_t max_id = -1;
    for (size_t i = 0; i < j->n; i++) {
        const da_json *v = &j->items[i];
        if (v->type != DA_JSON_NUMBER || !v->is_int || v->inum < 0 || v->inum >= (1 << 24)) {
            st = da_err_set(err, DA_ERR_FORMAT, "%s: token '%s' has an id that is not an integer in [0, 2^24)", vocab_path,
                            j->keys[i]);
            goto done;
        }
        if (v->inum > max_id) max_id = v->inum;
    }
    size_t n_lines = 0;
    for (size_t i = 0; i < mlen; i++) n_lines += mtext[i] == '\n';
    t = tok_new((size_t)max_id + 1, n_lines + 1, err);
    if (!t) {
        st = DA_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < j->n && st == DA_OK; i++)
        st = set_token(t, (int32_t)j->items[i].inum, j->keys[i], j->key_lens[i], vocab_path, err);
    if (st == DA_OK) st = parse_merges(t, mtext, mlen, merges_path, err);
    if (st == DA_OK) st = finish(t, cfg, vocab_path, err);
done:
    da_json_free(j);
    free(vtext);
    free(mtext);
    if (st != DA_OK) {
        da_tokenizer_free(t);
        t = NULL;
    }
    *out = t;
    return st;
}

static const tok_config clip_defaults = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", 0};

da_status da_tokenizer_load_files(const char *vocab_json, const char *merges_txt, da_tokenizer **out, da_error *err) {
    if (!out) return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    if (!vocab_json || !merges_txt) return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: NULL path");
    return load_vocab_merges(vocab_json, merges_txt, &clip_defaults, out, err);
}

da_status da_tokenizer_load_bpe_gz(const char *path, da_tokenizer **out, da_error *err) {
    if (!out || !path) return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    gzFile gz = gzopen(path, "rb");
    if (!gz) return da_err_set(err, DA_ERR_IO, "%s: cannot open", path);
    da_buf b = {0};
    char chunk[65536];
    int r;
    while ((r = gzread(gz, chunk, sizeof chunk)) > 0) da_buf_append(&b, chunk, (size_t)r);
    int zerr = 0;
    const char *zmsg = r < 0 ? gzerror(gz, &zerr) : NULL;
    da_status st = DA_OK;
    if (r < 0) st = da_err_set(err, DA_ERR_FORMAT, "%s: gzip read failed: %s", path, zmsg ? zmsg : "?");
    gzclose(gz);
    if (st == DA_OK && b.failed) st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    da_tokenizer *t = NULL;
    if (st != DA_OK) goto done;
    /* lines 1 .. 48894 (line 0 is the version header) */
    char **line = calloc(CLIP_GZ_MERGES, sizeof *line);
    size_t *line_len = calloc(CLIP_GZ_MERGES, sizeof *line_len);
    if (!line || !line_len) {
        free(line), free(line_len);
        st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    char *p = b.data, *end = b.data + b.len;
    size_t got = 0;
    for (size_t ln = 0; p < end && got < CLIP_GZ_MERGES; ln++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if (ln > 0) line[got] = p, line_len[got++] = (size_t)(le - p);
        p = le + 1;
    }
    if (got < CLIP_GZ_MERGES) {
        st = da_err_set(err, DA_ERR_FORMAT, "%s: %zu merge lines, simple_tokenizer.py needs %d", path, got, CLIP_GZ_MERGES);
        goto done_lines;
    }
    t = tok_new(512 + CLIP_GZ_MERGES + 2, CLIP_GZ_MERGES, err);
    if (!t) {
        st = DA_ERR_NOMEM;
        goto done_lines;
    }
    /* vocab = bytes, bytes + "</w>", "".join(merge) for each merge, the two specials */
    uint32_t cp[256];
    int order[256];
    bytes_to_unicode(cp, order);
    int32_t id = 0;
    for (int pass = 0; pass < 2 && st == DA_OK; pass++)
        for (int i = 0; i < 256 && st == DA_OK; i++) {
            char s[16];
            size_t k = utf8_encode(cp[order[i]], s);
            if (pass) memcpy(s + k, "</w>", 4), k += 4;
            st = set_token(t, id++, s, k, path, err);
        }
    /* merge.split(): whitespace-separated, exactly two parts */
    typedef struct { size_t a0, la, b0, lb; } merge_span;
    merge_span *sp = calloc(CLIP_GZ_MERGES, sizeof *sp);
    if (!sp) st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < CLIP_GZ_MERGES && st == DA_OK; i++) {
        const char *s = line[i];
        size_t n = line_len[i], pos = 0, part[4], np = 0;
        while (np < 4) {
            while (pos < n && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r')) pos++;
            if (pos == n) break;
            part[np++] = pos;
            while (pos < n && !(s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r')) pos++;
            part[np++] = pos;
        }
        while (pos < n && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r')) pos++;
        if (np != 4 || pos != n) {
            st = da_err_set(err, DA_ERR_FORMAT, "%s: line %zu: malformed merge '%.*s' (expected two tokens)", path, i + 2,
                            (int)(n > 80 ? 80 : n), s);
            break;
        }
        sp[i] = (merge_span){part[0], part[1] - part[0], part[2], part[3] - part[2]};
        char tmp[512];
        if (sp[i].la + sp[i].lb > sizeof tmp) {
            st = da_err_set(err, DA_ERR_FORMAT, "%s: line %zu: merge too long", path, i + 2);
            break;
        }
        memcpy(tmp, s + sp[i].a0, sp[i].la);
        memcpy(tmp + sp[i].la, s + sp[i].b0, sp[i].lb);
        /* a result seen before is looked up by its new id (a dict built from a list keeps the last) */
        st = set_token(t, id++, tmp, sp[i].la + sp[i].lb, path, err);
    }
    if (st == DA_OK) st = set_token(t, id++, "<|startoftext|>", 15, path, err);
    if (st == DA_OK) st = set_token(t, id++, "<|endoftext|>", 13, path, err);
    for (size_t i = 0; i < CLIP_GZ_MERGES && st == DA_OK; i++)
        st = add_merge(t, line[i] + sp[i].a0, sp[i].la, line[i] + sp[i].b0, sp[i].lb, (int32_t)i, path, i + 2, err);
    if (st == DA_OK) st = finish(t, &clip_defaults, path, err);
    free(sp);
done_lines:
    free(line), free(line_len);
done:
    da_buf_free(&b);
    if (st != DA_OK) {
        da_tokenizer_free(t);
        t = NULL;
    }
    *out = t;
    return st;
}

/* A special token in a tokenizer config: a string, or an AddedToken object {"content": ...}. */
static const char *config_token(const da_json *j, const char *key) {
    const da_json *v = da_json_get(j, key);
    if (!v) return NULL;
    if (v->type == DA_JSON_STRING) return v->str;
    if (v->type == DA_JSON_OBJECT) return da_json_get_str(v, "content");
    return NULL;
}

/* A tokenizer folder: vocab.json + merges.txt, and the special tokens from tokenizer_config.json,
 * overridden by special_tokens_map.json as transformers does when the config has no
 * added_tokens_decoder. */
static da_status load_folder(const char *dir, da_tokenizer **out, da_error *err) {
    char *vocab = da_path_join(dir, "vocab.json"), *merges = da_path_join(dir, "merges.txt");
    char *cfgp = da_path_join(dir, "tokenizer_config.json"), *mapp = da_path_join(dir, "special_tokens_map.json");
    da_json *cfg = NULL, *map = NULL;
    da_status st = DA_OK;
    tok_config c = clip_defaults;
    if (!vocab || !merges || !cfgp || !mapp) {
        st = da_err_set(err, DA_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    if (!da_is_file(merges)) {
        st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: missing (the tokenizer needs vocab.json and merges.txt)", merges);
        goto done;
    }
    if (da_is_file(cfgp)) {
        if ((st = da_json_read_object(cfgp, &cfg, err)) != DA_OK) goto done;
        const char *s;
        if ((s = config_token(cfg, "bos_token"))) c.bos = s;
        if ((s = config_token(cfg, "eos_token"))) c.eos = s;
        if ((s = config_token(cfg, "unk_token"))) c.unk = s;
        if ((s = config_token(cfg, "pad_token"))) c.pad = s;
        int64_t ml;
        if (da_json_get_int(cfg, "model_max_length", &ml) && ml >= 2 && ml <= 1 << 20) c.max_length = (int)ml;
    }
    if (da_is_file(mapp) && !(cfg && da_json_get(cfg, "added_tokens_decoder"))) {
        if ((st = da_json_read_object(mapp, &map, err)) != DA_OK) goto done;
        const char *s;
        if ((s = config_token(map, "bos_token"))) c.bos = s;
        if ((s = config_token(map, "eos_token"))) c.eos = s;
        if ((s = config_token(map, "unk_token"))) c.unk = s;
        if ((s = config_token(map, "pad_token"))) c.pad = s;
    }
    st = load_vocab_merges(vocab, merges, &c, out, err);
done:
    da_json_free(cfg);
    da_json_free(map);
    free(vocab), free(merges), free(cfgp), free(mapp);
    return st;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

da_status da_tokenizer_load(const char *path, da_tokenizer **out, da_error *err) {
    if (!out || !path) return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    if (da_is_dir(path)) {
        char *sub = da_path_join(path, "tokenizer");
        char *sub_vocab = sub ? da_path_join(sub, "vocab.json") : NULL;
        char *vocab = da_path_join(path, "vocab.json");
        da_status st;
        if (!sub || !sub_vocab || !vocab) st = da_err_set(err, DA_ERR_NOMEM, "tokenizer: out of memory");
        else if (da_is_file(sub_vocab)) st = load_folder(sub, out, err);
        else if (da_is_file(vocab)) st = load_folder(path, out, err);
        else st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: no tokenizer: neither %s nor %s exists", path, sub_vocab, vocab);
        free(sub), free(sub_vocab), free(vocab);
        return st;
    }
    if (!da_is_file(path)) return da_err_set(err, DA_ERR_NOT_FOUND, "%s: no such file or directory", path);
    if (ends_with(path, ".gz")) return da_tokenizer_load_bpe_gz(path, out, err);
    if (ends_with(path, ".json")) {
        /* vocab.json with merges.txt beside it */
        const char *slash = strrchr(path, '/');
        size_t dl = slash ? (size_t)(slash - path) : 0;
        char *dir = malloc(dl + 2);
        if (!dir) return da_err_set(err, DA_ERR_NOMEM, "tokenizer: out of memory");
        if (slash) memcpy(dir, path, dl), dir[dl] = 0;
        else strcpy(dir, ".");
        char *merges = da_path_join(dir, "merges.txt");
        da_status st;
        if (!merges) st = da_err_set(err, DA_ERR_NOMEM, "tokenizer: out of memory");
        else if (!da_is_file(merges)) st = da_err_set(err, DA_ERR_NOT_FOUND, "%s: missing (needed beside %s)", merges, path);
        else st = load_vocab_merges(path, merges, &clip_defaults, out, err);
        free(dir), free(merges);
        return st;
    }
    return da_err_set(err, DA_ERR_UNSUPPORTED,
                      "%s: not a tokenizer source (give a model folder, a vocab.json or bpe_simple_vocab_16e6.txt.gz)", path);
}

da_status da_tokenizer_set_pad(da_tokenizer *t, const char *token, da_error *err) {
    if (!t || !token) return da_err_set(err, DA_ERR_INVALID_ARG, "tokenizer: NULL argument");
    if (vocab_find(t, token, strlen(token)) < 0)
        return da_err_set(err, DA_ERR_NOT_FOUND, "tokenizer: pad token '%s' is not in the vocabulary", token);
    /* the old pad leaves the matched specials unless it is also bos / eos / unk */
    int32_t old = t->pad;
    if (old != t->bos && old != t->eos && old != t->unk)
        for (int k = 0; k < t->n_special; k++)
            if (t->special_id[k] == old) {
                free(t->special[k]);
                for (int j = k + 1; j < t->n_special; j++) {
                    t->special[j - 1] = t->special[j];
                    t->special_id[j - 1] = t->special_id[j];
                }
                t->n_special--;
                break;
            }
    return add_special(t, token, &t->pad, "tokenizer", err);
}

int32_t da_tokenizer_bos_id(const da_tokenizer *t) { return t->bos; }
int32_t da_tokenizer_eos_id(const da_tokenizer *t) { return t->eos; }
int32_t da_tokenizer_pad_id(const da_tokenizer *t) { return t->pad; }
int da_tokenizer_max_length(const da_tokenizer *t) { return t->max_length; }
size_t da_tokenizer_vocab_size(const da_tokenizer *t) { return t->n_tokens; }
const char *da_tokenizer_token(const da_tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_tokens ? t->tokens[id] : NULL;
}
