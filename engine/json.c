/* json.c - a small, strict JSON reader (RFC 8259; number grammar of section 6, string grammar of
 * section 7, UTF-8 text per section 8.1) for safetensors headers, config.json and vocab.json.
 *
 * Recursive descent over text[0..len): every read is bounds-checked against len, so the text need
 * not be NUL-terminated and a truncated document is an error, never an over-read. Recursion depth
 * is capped by DA_JSON_MAX_DEPTH, which also bounds stack use on hostile input.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct jp {
    const unsigned char *s;
    size_t len, pos;
    const char *what;
    da_error *err;
    da_status st; /* first error, so nested failures do not overwrite the message */
} jp;

static da_status jp_fail(jp *p, size_t at, const char *problem) {
    if (p->st == DA_OK) {
        p->st = DA_ERR_FORMAT;
        da_err_set(p->err, DA_ERR_FORMAT, "%s: JSON error at byte %zu: %s", p->what ? p->what : "json", at,
                   problem);
    }
    return p->st;
}

static da_status jp_nomem(jp *p) {
    if (p->st == DA_OK) {
        p->st = DA_ERR_NOMEM;
        da_err_set(p->err, DA_ERR_NOMEM, "%s: out of memory parsing JSON at byte %zu", p->what ? p->what : "json",
                   p->pos);
    }
    return p->st;
}

static void skip_ws(jp *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static void json_free_children(da_json *j) {
    if (j->type == DA_JSON_STRING) free(j->str);
    if (j->type == DA_JSON_ARRAY || j->type == DA_JSON_OBJECT) {
        for (size_t i = 0; i < j->n; i++) json_free_children(&j->items[i]);
        if (j->keys)
            for (size_t i = 0; i < j->n; i++) free(j->keys[i]);
        free(j->items);
        free(j->keys);
        free(j->key_lens);
    }
}

void da_json_free(da_json *j) {
    if (!j) return;
    json_free_children(j);
    free(j);
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at p->pos (after "\u"). */
static bool read_hex4(jp *p, unsigned *out) {
    if (p->len - p->pos < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p->s[p->pos + i]);
        if (h < 0) return false;
        v = v << 4 | (unsigned)h;
    }
    p->pos += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *d, unsigned cp) {
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of a well-formed UTF-8 sequence at s[0..avail), or 0 when it is not one: overlong
 * forms, encoded surrogates and code points above U+10FFFF are rejected (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

bool da_json_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* Parses a string literal starting at the opening quote; *out is malloc'd, NUL-terminated. */
static da_status parse_string(jp *p, char **out, size_t *out_len) {
    size_t start = p->pos;
    p->pos++; /* opening quote */
    /* First pass: find the closing quote so the output can be allocated once; the decoded text is
     * never longer than the raw text (every escape shrinks or keeps its length). */
    size_t q = p->pos;
    while (q < p->len && p->s[q] != '"') {
        if (p->s[q] == '\\') q++;
        q++;
    }
    if (q >= p->len) return jp_fail(p, start, "unterminated string");
    char *d = malloc(q - p->pos + 1);
    if (!d) return jp_nomem(p);
    size_t n = 0;
    while (p->pos < q) {
        unsigned char c = p->s[p->pos];
        if (c < 0x20) {
            free(d);
            return jp_fail(p, p->pos, "control character in string (must be escaped)");
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(p->s + p->pos, q - p->pos);
            if (!k) {
                free(d);
                return jp_fail(p, p->pos, "invalid UTF-8 in string");
            }
            memcpy(d + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
            continue;
        }
        if (c != '\\') {
            d[n++] = (char)c;
            p->pos++;
            continue;
        }
        size_t esc = p->pos;
        p->pos++;
        unsigned char e = p->s[p->pos++]; /* in range: the first pass skipped over it */
        switch (e) {
        case '"': d[n++] = '"'; break;
        case '\\': d[n++] = '\\'; break;
        case '/': d[n++] = '/'; break;
        case 'b': d[n++] = '\b'; break;
        case 'f': d[n++] = '\f'; break;
        case 'n': d[n++] = '\n'; break;
        case 'r': d[n++] = '\r'; break;
        case 't': d[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (p->pos > q || q - p->pos < 4 || !read_hex4(p, &cp)) {
                free(d);
                return jp_fail(p, esc, "bad \\u escape (need 4 hex digits)");
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                free(d);
                return jp_fail(p, esc, "lone low surrogate in \\u escape");
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (q - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    free(d);
                    return jp_fail(p, esc, "lone high surrogate in \\u escape");
                }
                p->pos += 2;
                if (!read_hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                    free(d);
                    return jp_fail(p, esc, "high surrogate not followed by a low surrogate");
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            n += put_utf8(d + n, cp);
            break;
        }
        default:
            free(d);
            return jp_fail(p, esc, "invalid escape in string");
        }
    }
    p->pos = q + 1;
    d[n] = 0;
    *out = d;
    *out_len = n;
    return DA_OK;
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static da_status parse_number(jp *p, da_json *j) {
    size_t start = p->pos;
    const unsigned char *s = p->s;
    size_t i = p->pos;
    bool neg = false, integral = true;
    if (i < p->len && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i >= p->len || !is_digit(s[i])) return jp_fail(p, start, "invalid number");
    /* Exact int64: accumulate the magnitude as uint64 with overflow checks. */
    uint64_t mag = 0;
    bool fits = true;
    if (s[i] == '0') {
        i++;
        if (i < p->len && is_digit(s[i])) return jp_fail(p, start, "leading zero in number");
    } else {
        while (i < p->len && is_digit(s[i])) {
            if (fits && (!da_mul_u64(mag, 10, &mag) || !da_add_u64(mag, (uint64_t)(s[i] - '0'), &mag))) fits = false;
            i++;
        }
    }
    if (i < p->len && s[i] == '.') {
        integral = false;
        i++;
        if (i >= p->len || !is_digit(s[i])) return jp_fail(p, start, "digit expected after decimal point");
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = false;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !is_digit(s[i])) return jp_fail(p, start, "digit expected in exponent");
        while (i < p->len && is_digit(s[i])) i++;
    }
    size_t n = i - start;
    /* strtod needs a NUL-terminated copy; the grammar above already rejected everything strtod
     * would accept beyond JSON (hex, inf, nan, leading '+'). */
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return jp_nomem(p);
    memcpy(buf, s + start, n);
    buf[n] = 0;
    j->type = DA_JSON_NUMBER;
    j->num = strtod(buf, NULL); /* out-of-range values become +-HUGE_VAL or 0, as JSON allows */
    if (buf != small) free(buf);
    j->is_int = false;
    j->inum = 0;
    if (integral && fits) {
        if (!neg && mag <= (uint64_t)INT64_MAX) {
            j->is_int = true;
            j->inum = (int64_t)mag;
        } else if (neg && mag <= (uint64_t)INT64_MAX + 1) {
            j->is_int = true;
            j->inum = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
        }
    }
    p->pos = i;
    return DA_OK;
}

static bool match_lit(jp *p, const char *lit) {
    size_t n = strlen(lit);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n) != 0) return false;
    p->pos += n;
    return true;
}

static da_status parse_value(jp *p, da_json *j, int depth);

/* Appends one zeroed slot to a growing child array (doubling, overflow-checked). */
static bool grow(jp *p, da_json *j, size_t *cap, bool keys) {
    if (j->n < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 4, bytes;
    if (!da_mul_size(nc, sizeof(da_json), &bytes)) return false;
    da_json *items = realloc(j->items, bytes);
    if (!items) return false;
    j->items = items;
    if (keys) {
        char **k = realloc(j->keys, nc * sizeof(char *));
        if (!k) return false;
        j->keys = k;
        size_t *kl = realloc(j->key_lens, nc * sizeof(size_t));
        if (!kl) return false;
        j->key_lens = kl;
    }
    *cap = nc;
    return true;
}

static da_status parse_array(jp *p, da_json *j, int depth) {
    j->type = DA_JSON_ARRAY;
    size_t cap = 0;
    p->pos++; /* '[' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return DA_OK;
    }
    for (;;) {
        if (!grow(p, j, &cap, false)) return jp_nomem(p);
        memset(&j->items[j->n], 0, sizeof(da_json));
        j->n++;
        da_status st = parse_value(p, &j->items[j->n - 1], depth + 1);
        if (st) return st;
        skip_ws(p);
        if (p->pos >= p->len) return jp_fail(p, p->pos, "unterminated array");
        unsigned char c = p->s[p->pos++];
        if (c == ']') return DA_OK;
        if (c != ',') return jp_fail(p, p->pos - 1, "',' or ']' expected in array");
        skip_ws(p);
    }
}

static da_status parse_object(jp *p, da_json *j, int depth) {
    j->type = DA_JSON_OBJECT;
    size_t cap = 0;
    p->pos++; /* '{' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return DA_OK;
    }
    for (;;) {
        if (p->pos >= p->len || p->s[p->pos] != '"') return jp_fail(p, p->pos, "string key expected in object");
        if (!grow(p, j, &cap, true)) return jp_nomem(p);
        size_t i = j->n;
        memset(&j->items[i], 0, sizeof(da_json));
        char *key = NULL;
        size_t klen = 0;
        da_status st = parse_string(p, &key, &klen);
        if (st) return st;
        j->keys[i] = key;
        j->key_lens[i] = klen;
        j->n++; /* the slot is now owned, so a failure below frees it */
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') return jp_fail(p, p->pos, "':' expected after object key");
        p->pos++;
        st = parse_value(p, &j->items[i], depth + 1);
        if (st) return st;
        skip_ws(p);
        if (p->pos >= p->len) return jp_fail(p, p->pos, "unterminated object");
        unsigned char c = p->s[p->pos++];
        if (c == '}') return DA_OK;
        if (c != ',') return jp_fail(p, p->pos - 1, "',' or '}' expected in object");
        skip_ws(p);
    }
}

static da_status parse_value(jp *p, da_json *j, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) return jp_fail(p, p->pos, "value expected, end of text found");
    unsigned char c = p->s[p->pos];
    if ((c == '[' || c == '{') && depth >= DA_JSON_MAX_DEPTH) {
        char msg[80];
        snprintf(msg, sizeof msg, "nesting deeper than %d levels", DA_JSON_MAX_DEPTH);
        return jp_fail(p, p->pos, msg);
    }
    switch (c) {
    case '{': return parse_object(p, j, depth);
    case '[': return parse_array(p, j, depth);
    case '"':
        j->type = DA_JSON_STRING;
        return parse_string(p, &j->str, &j->len);
    case 't':
        if (!match_lit(p, "true")) return jp_fail(p, p->pos, "invalid literal");
        j->type = DA_JSON_TRUE;
        return DA_OK;
    case 'f':
        if (!match_lit(p, "false")) return jp_fail(p, p->pos, "invalid literal");
        j->type = DA_JSON_FALSE;
        return DA_OK;
    case 'n':
        if (!match_lit(p, "null")) return jp_fail(p, p->pos, "invalid literal");
        j->type = DA_JSON_NULL;
        return DA_OK;
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, j);
        return jp_fail(p, p->pos, "unexpected character (NaN, Infinity and comments are not JSON)");
    }
}

da_status da_json_parse(const char *text, size_t len, const char *what, da_json **out, da_error *err) {
    *out = NULL;
    if (!text && len) return da_err_set(err, DA_ERR_INVALID_ARG, "%s: NULL JSON text", what ? what : "json");
    jp p = {.s = (const unsigned char *)text, .len = len, .pos = 0, .what = what, .err = err, .st = DA_OK};
    da_json *root = calloc(1, sizeof *root);
    if (!root) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory parsing JSON", what ? what : "json");
    da_status st = parse_value(&p, root, 0);
    if (!st) {
        skip_ws(&p);
        if (p.pos < p.len) st = jp_fail(&p, p.pos, "trailing characters after the JSON value");
    }
    if (st) {
        da_json_free(root);
        return st;
    }
    *out = root;
    return DA_OK;
}

const da_json *da_json_get(const da_json *j, const char *key) {
    if (!j || j->type != DA_JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < j->n; i++)
        if (j->key_lens[i] == kl && memcmp(j->keys[i], key, kl) == 0) return &j->items[i];
    return NULL;
}

bool da_json_get_int(const da_json *j, const char *key, int64_t *out) {
    const da_json *v = da_json_get(j, key);
    if (!v || v->type != DA_JSON_NUMBER || !v->is_int) return false;
    *out = v->inum;
    return true;
}

bool da_json_get_num(const da_json *j, const char *key, double *out) {
    const da_json *v = da_json_get(j, key);
    if (!v || v->type != DA_JSON_NUMBER) return false;
    *out = v->num;
    return true;
}

bool da_json_get_bool(const da_json *j, const char *key, bool *out) {
    const da_json *v = da_json_get(j, key);
    if (!v || (v->type != DA_JSON_TRUE && v->type != DA_JSON_FALSE)) return false;
    *out = v->type == DA_JSON_TRUE;
    return true;
}

const char *da_json_get_str(const da_json *j, const char *key) {
    const da_json *v = da_json_get(j, key);
    return v && v->type == DA_JSON_STRING ? v->str : NULL;
}

/* Sorting (key, index) records makes duplicate detection O(n log n): a safetensors header of an
 * SDXL checkpoint has ~2500 keys and a vocab.json ~50k, where the quadratic scan would hurt. The
 * records carry the key itself because C11 qsort has no context argument (no globals: callers may
 * parse on several threads). */
typedef struct dup_rec {
    const char *key;
    size_t len, idx;
} dup_rec;

static int dup_cmp(const void *a, const void *b) {
    const dup_rec *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

long da_json_find_dup(const da_json *obj) {
    if (!obj || obj->type != DA_JSON_OBJECT || obj->n < 2) return -1;
    dup_rec *r = malloc(obj->n * sizeof *r);
    if (!r) {
        /* no memory for the index: fall back to the quadratic scan rather than failing */
        for (size_t i = 1; i < obj->n; i++)
            for (size_t k = 0; k < i; k++)
                if (obj->key_lens[i] == obj->key_lens[k] && !memcmp(obj->keys[i], obj->keys[k], obj->key_lens[i]))
                    return (long)i;
        return -1;
    }
    for (size_t i = 0; i < obj->n; i++) r[i] = (dup_rec){obj->keys[i], obj->key_lens[i], i};
    qsort(r, obj->n, sizeof *r, dup_cmp);
    long best = -1;
    for (size_t i = 1; i < obj->n; i++) {
        /* r[i] repeats an earlier key; report the earliest repeat in document order */
        if (r[i].len == r[i - 1].len && !memcmp(r[i].key, r[i - 1].key, r[i].len) && (best < 0 || (long)r[i].idx < best))
            best = (long)r[i].idx;
    }
    free(r);
    return best;
}

da_status da_json_read_object(const char *path, da_json **out, da_error *err) {
    char *text;
    size_t len;
    *out = NULL;
    da_status st = da_read_file(path, &text, &len, err);
    if (st != DA_OK) return st;
    st = da_json_parse(text, len, path, out, err);
    free(text);
    if (st == DA_OK && (*out)->type != DA_JSON_OBJECT) {
        da_json_free(*out);
        *out = NULL;
        st = da_err_set(err, DA_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    return st;
}
