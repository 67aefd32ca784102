/* safetensors.c - validating reader (mmap) and atomic writer for the safetensors format, mirroring
 * huggingface/safetensors (safetensors/src/tensor.rs: Metadata::validate, the 100 MB header cap,
 * serialize's space padding to 8 bytes) and its dtype names, including float8 e4m3fn / e5m2 as
 * defined by torch.float8_e4m3fn / torch.float8_e5m2 (OCP FP8 spec).
 *
 * Nothing from the file is trusted before it is checked: every size is computed with overflow
 * checks and every data pointer is derived from offsets already proven to lie inside the buffer.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "kcommon.h"
#include "util.h"

/* The reference implementation refuses larger headers (MAX_HEADER_SIZE); a bigger one can only be
 * an attack or corruption, and parsing it would cost memory proportional to the claim. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const char *const dtype_names[DA_DTYPE_COUNT] = {
    [DA_F64] = "F64", [DA_F32] = "F32", [DA_F16] = "F16", [DA_BF16] = "BF16",
    [DA_I64] = "I64", [DA_I32] = "I32", [DA_I16] = "I16", [DA_I8] = "I8",
    [DA_U8] = "U8",   [DA_BOOL] = "BOOL", [DA_F8_E4M3] = "F8_E4M3", [DA_F8_E5M2] = "F8_E5M2",
};
static const unsigned char dtype_sizes[DA_DTYPE_COUNT] = {
    [DA_F64] = 8, [DA_F32] = 4, [DA_F16] = 2, [DA_BF16] = 2, [DA_I64] = 8,     [DA_I32] = 4,
    [DA_I16] = 2, [DA_I8] = 1,  [DA_U8] = 1,  [DA_BOOL] = 1, [DA_F8_E4M3] = 1, [DA_F8_E5M2] = 1,
};

const char *da_dtype_name(da_dtype t) { return (unsigned)t < DA_DTYPE_COUNT ? dtype_names[t] : "?"; }
size_t da_dtype_size(da_dtype t) { return (unsigned)t < DA_DTYPE_COUNT ? dtype_sizes[t] : 0; }

bool da_dtype_from_name(const char *s, da_dtype *out) {
    if (!s) return false;
    for (int i = 0; i < DA_DTYPE_COUNT; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (da_dtype)i;
            return true;
        }
    return false;
}

/* ---- reader ---------------------------------------------------------------------------------- */

void da_st_close(da_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->by_name);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

/* Offsets of one tensor while validating (kept beside the tensor until the layout check). */
typedef struct st_span {
    uint64_t begin, end;
    size_t idx;
} st_span;

static int span_cmp(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A JSON integer that must be a non-negative int64; distinguishes "not an integer" (1) from
 * "an integer too large for int64" (2) and "negative" (3). */
static int json_uint(const da_json *v, uint64_t *out) {
    if (!v || v->type != DA_JSON_NUMBER) return 1;
    if (!v->is_int) {
        if (v->num == floor(v->num) && v->num >= 9223372036854775808.0) return 2;
        return 1;
    }
    if (v->inum < 0) return 3;
    *out = (uint64_t)v->inum;
    return 0;
}

/* Validates one header entry into t (name already set) and its offsets into sp. */
static da_status parse_entry(const char *label, const char *name, const da_json *e, da_st_tensor *t, st_span *sp,
                             da_error *err) {
    if (e->type != DA_JSON_OBJECT)
        return da_err_set(err, DA_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", label, name);
    long dup = da_json_find_dup(e);
    if (dup >= 0)
        return da_err_set(err, DA_ERR_FORMAT, "%s: tensor '%s': key '%s' appears twice", label, name, e->keys[dup]);
    const da_json *dt = NULL, *shape = NULL, *offs = NULL;
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->keys[i], "dtype") == 0 && e->key_lens[i] == 5) dt = &e->items[i];
        else if (strcmp(e->keys[i], "shape") == 0 && e->key_lens[i] == 5) shape = &e->items[i];
        else if (strcmp(e->keys[i], "data_offsets") == 0 && e->key_lens[i] == 12) offs = &e->items[i];
        else
            return da_err_set(err, DA_ERR_FORMAT, "%s: tensor '%s': unknown key '%s' (expected dtype, shape, data_offsets)",
                              label, name, e->keys[i]);
    }
    if (!dt || !shape || !offs)
        return da_err_set(err, DA_ERR_FORMAT, "%s: tensor '%s': missing key '%s'", label, name,
                          !dt ? "dtype" : !shape ? "shape" : "data_offsets");

    if (dt->type != DA_JSON_STRING)
        return da_err_set(err, DA_ERR_DTYPE, "%s: tensor '%s': dtype is not a string", label, name);
    if (strlen(dt->str) != dt->len || !da_dtype_from_name(dt->str, &t->dtype))
        return da_err_set(err, DA_ERR_DTYPE, "%s: tensor '%s': unknown dtype '%s'", label, name, dt->str);

    if (shape->type != DA_JSON_ARRAY)
        return da_err_set(err, DA_ERR_SHAPE, "%s: tensor '%s': shape is not an array", label, name);
    if (shape->n > DA_ST_MAX_RANK)
        return da_err_set(err, DA_ERR_SHAPE, "%s: tensor '%s': rank %zu exceeds the maximum %d", label, name, shape->n,
                          DA_ST_MAX_RANK);
    t->rank = (int)shape->n;
    uint64_t numel = 1;
    for (size_t i = 0; i < shape->n; i++) {
        uint64_t d;
        int r = json_uint(&shape->items[i], &d);
        if (r == 2)
            return da_err_set(err, DA_ERR_OVERFLOW, "%s: tensor '%s': shape[%zu] does not fit in 64 bits", label, name, i);
        if (r)
            return da_err_set(err, DA_ERR_SHAPE, "%s: tensor '%s': shape[%zu] is not a non-negative integer", label,
                              name, i);
        t->shape[i] = (int64_t)d;
        if (!da_mul_u64(numel, d, &numel))
            return da_err_set(err, DA_ERR_OVERFLOW, "%s: tensor '%s': element count overflows at shape[%zu] = %" PRIu64,
                              label, name, i, d);
    }
    t->numel = numel;
    if (!da_mul_u64(numel, da_dtype_size(t->dtype), &t->nbytes))
        return da_err_set(err, DA_ERR_OVERFLOW, "%s: tensor '%s': %" PRIu64 " elements of %s overflow a byte count",
                          label, name, numel, da_dtype_name(t->dtype));

    if (offs->type != DA_JSON_ARRAY || offs->n != 2)
        return da_err_set(err, DA_ERR_FORMAT, "%s: tensor '%s': data_offsets is not an array of two integers", label,
                          name);
    uint64_t be[2];
    for (int i = 0; i < 2; i++) {
        int r = json_uint(&offs->items[i], &be[i]);
        if (r == 1)
            return da_err_set(err, DA_ERR_FORMAT, "%s: tensor '%s': data_offsets[%d] is not an integer", label, name, i);
        if (r)
            return da_err_set(err, DA_ERR_BOUNDS, "%s: tensor '%s': data_offsets[%d] is %s", label, name, i,
                              r == 3 ? "negative" : "beyond 64 bits");
    }
    if (be[0] > be[1])
        return da_err_set(err, DA_ERR_BOUNDS, "%s: tensor '%s': data_offsets begin %" PRIu64 " > end %" PRIu64, label,
                          name, be[0], be[1]);
    if (be[1] - be[0] != t->nbytes)
        return da_err_set(err, DA_ERR_SHAPE,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                          " bytes but %" PRIu64 " elements of %s need %" PRIu64,
                          label, name, be[0], be[1], be[1] - be[0], numel, da_dtype_name(t->dtype), t->nbytes);
    sp->begin = be[0];
    sp->end = be[1];
    return DA_OK;
}

static da_status parse_metadata(da_st_file *f, const da_json *m, da_error *err) {
    const char *label = f->path;
    if (m->type != DA_JSON_OBJECT)
        return da_err_set(err, DA_ERR_FORMAT, "%s: __metadata__ is not an object", label);
    long dup = da_json_find_dup(m);
    if (dup >= 0) return da_err_set(err, DA_ERR_DUPLICATE, "%s: __metadata__ key '%s' appears twice", label, m->keys[dup]);
    f->meta_keys = calloc(m->n ? m->n : 1, sizeof(char *));
    f->meta_values = calloc(m->n ? m->n : 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_values) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", label);
    for (size_t i = 0; i < m->n; i++) {
        if (m->items[i].type != DA_JSON_STRING)
            return da_err_set(err, DA_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", label, m->keys[i]);
        f->meta_keys[i] = strdup(m->keys[i]);
        f->meta_values[i] = strdup(m->items[i].str);
        f->n_meta = i + 1; /* owned from here on, freed by da_st_close */
        if (!f->meta_keys[i] || !f->meta_values[i]) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", label);
    }
    return DA_OK;
}

static int name_cmp_idx(const size_t *a, const size_t *b, const da_st_file *f) {
    return strcmp(f->tensors[*a].name, f->tensors[*b].name);
}

/* Sorts tensor indices by name with a small merge sort (C11 qsort has no context pointer and
 * the reader must be thread-safe). */
static void sort_by_name(da_st_file *f, size_t *tmp) {
    size_t n = f->n_tensors;
    size_t *a = f->by_name, *b = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) b[k++] = name_cmp_idx(&a[j], &a[i], f) < 0 ? a[j++] : a[i++];
            while (i < mid) b[k++] = a[i++];
            while (j < hi) b[k++] = a[j++];
        }
        size_t *t = a;
        a = b;
        b = t;
    }
    if (a != f->by_name) memcpy(f->by_name, a, n * sizeof *a);
}

static da_status st_parse(const unsigned char *buf, size_t len, da_st_file *f, da_error *err) {
    const char *label = f->path;
    if (len < 8)
        return da_err_set(err, DA_ERR_TRUNCATED, "%s: file is %zu bytes, shorter than the 8-byte header length", label,
                          len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    f->header_len = n;
    if (n == 0) return da_err_set(err, DA_ERR_FORMAT, "%s: header length is 0", label);
    if (n > ST_MAX_HEADER)
        return da_err_set(err, DA_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit", label,
                          n, ST_MAX_HEADER);
    if (n > len - 8)
        return da_err_set(err, DA_ERR_TRUNCATED, "%s: header length %" PRIu64 " exceeds the %zu bytes after it", label, n,
                          len - 8);
    const char *hdr = (const char *)buf + 8;
    size_t hlen = (size_t)n;
    size_t k = 0;
    while (k < hlen && (hdr[k] == ' ' || hdr[k] == '\t' || hdr[k] == '\n' || hdr[k] == '\r')) k++;
    if (k >= hlen || hdr[k] != '{')
        return da_err_set(err, DA_ERR_FORMAT, "%s: header is not a JSON object (first byte 0x%02x at offset %zu)", label,
                          k < hlen ? (unsigned char)hdr[k] : 0, 8 + k);

    size_t wlen = strlen(label) + 16;
    char *what = malloc(wlen);
    if (!what) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", label);
    snprintf(what, wlen, "%s: header", label);
    da_json *root = NULL;
    da_status st = da_json_parse(hdr, hlen, what, &root, err);
    free(what);
    if (st) return st;

    st_span *spans = NULL;
    size_t *tmp = NULL;
    long dup = da_json_find_dup(root);
    if (dup >= 0) {
        st = da_err_set(err, DA_ERR_DUPLICATE, "%s: tensor '%s': name appears twice in the header", label, root->keys[dup]);
        goto done;
    }
    size_t cap = root->n ? root->n : 1;
    f->tensors = calloc(cap, sizeof *f->tensors);
    spans = calloc(cap, sizeof *spans);
    if (!f->tensors || !spans) {
        st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory for %zu tensors", label, root->n);
        goto done;
    }
    for (size_t i = 0; i < root->n; i++) {
        const char *name = root->keys[i];
        if (strcmp(name, "__metadata__") == 0 && root->key_lens[i] == 12) {
            st = parse_metadata(f, &root->items[i], err);
            if (st) goto done;
            continue;
        }
        if (strlen(name) != root->key_lens[i]) {
            st = da_err_set(err, DA_ERR_FORMAT, "%s: tensor '%s': name contains a NUL character", label, name);
            goto done;
        }
        da_st_tensor *t = &f->tensors[f->n_tensors];
        st_span *sp = &spans[f->n_tensors];
        st = parse_entry(label, name, &root->items[i], t, sp, err);
        if (st) goto done;
        /* take the name from the JSON tree instead of copying it */
        t->name = root->keys[i];
        root->keys[i] = NULL;
        root->key_lens[i] = 0;
        sp->idx = f->n_tensors++;
    }

    /* Layout: sorted by offset, the tensors must tile the data area exactly, as the reference's
     * validate() requires (no overlap, no hole, no trailing bytes). */
    uint64_t data_len = (uint64_t)(len - 8 - hlen);
    qsort(spans, f->n_tensors, sizeof *spans, span_cmp);
    uint64_t prev_end = 0;
    const char *prev_name = NULL;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_span *sp = &spans[i];
        const char *name = f->tensors[sp->idx].name;
        if (sp->end > data_len) {
            /* a header that is consistent with itself but promises more bytes than exist means the
             * file was cut short; anything else is a bad offset */
            bool cut = i + 1 == f->n_tensors && sp->begin == prev_end;
            st = da_err_set(err, cut ? DA_ERR_TRUNCATED : DA_ERR_BOUNDS,
                            "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] %s the %" PRIu64
                            "-byte data area%s",
                            label, name, sp->begin, sp->end, cut ? "run past the end of" : "lie outside", data_len,
                            cut ? " (file truncated?)" : "");
            goto done;
        }
        if (sp->begin < prev_end) {
            st = da_err_set(err, DA_ERR_OVERLAP,
                            "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor '%s' ending at %" PRIu64,
                            label, name, sp->begin, sp->end, prev_name, prev_end);
            goto done;
        }
        if (sp->begin > prev_end) {
            st = da_err_set(err, DA_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets begin %" PRIu64 " leaves a hole: bytes [%" PRIu64 ", %" PRIu64
                            ") of the data area belong to no tensor",
                            label, name, sp->begin, prev_end, sp->begin);
            goto done;
        }
        prev_end = sp->end;
        prev_name = name;
    }
    if (prev_end != data_len) {
        st = da_err_set(err, DA_ERR_FORMAT,
                        "%s: %" PRIu64 " trailing bytes after the last tensor (data area %" PRIu64 " bytes, tensors end at %" PRIu64 ")",
                        label, data_len - prev_end, data_len, prev_end);
        goto done;
    }

    /* Reorder the tensors by offset and attach their data. */
    da_st_tensor *sorted = calloc(cap, sizeof *sorted);
    f->by_name = calloc(cap, sizeof *f->by_name);
    tmp = calloc(cap, sizeof *tmp);
    if (!sorted || !f->by_name || !tmp) {
        free(sorted);
        st = da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", label);
        goto done;
    }
    const unsigned char *data = buf + 8 + hlen;
    for (size_t i = 0; i < f->n_tensors; i++) {
        sorted[i] = f->tensors[spans[i].idx];
        sorted[i].data = data + spans[i].begin;
        f->by_name[i] = i;
    }
    free(f->tensors);
    f->tensors = sorted;
    sort_by_name(f, tmp);
    st = DA_OK;
done:
    free(tmp);
    free(spans);
    da_json_free(root);
    return st;
}

static da_st_file *st_new(const char *label, da_error *err) {
    da_st_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(label ? label : "(buffer)");
    if (!f || !f->path) {
        free(f);
        da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", label ? label : "(buffer)");
        return NULL;
    }
    return f;
}

da_status da_st_parse(const void *buf, size_t len, const char *label, da_st_file **out, da_error *err) {
    *out = NULL;
    if (!buf && len) return da_err_set(err, DA_ERR_INVALID_ARG, "%s: NULL buffer", label ? label : "(buffer)");
    da_st_file *f = st_new(label, err);
    if (!f) return DA_ERR_NOMEM;
    da_status st = st_parse(buf ? buf : (const void *)"", len, f, err);
    if (st) {
        da_st_close(f);
        return st;
    }
    *out = f;
    return DA_OK;
}

da_status da_st_open(const char *path, da_st_file **out, da_error *err) {
    *out = NULL;
    if (!path) return da_err_set(err, DA_ERR_INVALID_ARG, "da_st_open: NULL path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return da_err_set(err, DA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return da_err_set(err, DA_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return da_err_set(err, DA_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return da_err_set(err, DA_ERR_OVERFLOW, "%s: file of %lld bytes cannot be mapped", path, (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    da_st_file *f = st_new(path, err);
    if (!f) {
        close(fd);
        return DA_ERR_NOMEM;
    }
    /* mmap of zero bytes is an error, and a file under 8 bytes fails validation anyway */
    const void *base = "";
    if (len >= 8) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            da_st_close(f);
            return da_err_set(err, DA_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, len, strerror(e));
        }
        f->map = m;
        f->map_len = len;
        base = m;
    }
    close(fd);
    da_status st = st_parse(base, len, f, err);
    if (st) {
        da_st_close(f);
        return st;
    }
    *out = f;
    return DA_OK;
}

const da_st_tensor *da_st_find(const da_st_file *f, const char *name) {
    if (!f || !name || !f->by_name) return NULL;
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const da_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *da_st_meta(const da_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

/* ---- conversion ------------------------------------------------------------------------------ */

/* float8 e4m3fn: bias 7, no infinities; S.1111.111 is the only NaN, so the top finite value is
 * S.1111.110 = 448. Subnormals are m * 2^-9. */
static float f8_e4m3_to_f32(uint8_t v) {
    uint32_t sign = (uint32_t)(v & 0x80) << 24;
    uint32_t e = (v >> 3) & 0xf, m = v & 7;
    if (e == 0xf && m == 7) return dk_bits_f32(sign | 0x7fc00000u);
    if (e == 0) {
        float x = (float)m * 0x1p-9f;
        return sign ? -x : x;
    }
    return dk_bits_f32(sign | ((e + 120u) << 23) | (m << 20));
}

/* float8 e5m2: bias 15, IEEE-like (exponent 31 is infinity or NaN); subnormals are m * 2^-16.
 * It is the top byte of an IEEE binary16, which gives the conversion for free. */
static float f8_e5m2_to_f32(uint8_t v) { return dk_f16_to_f32((uint16_t)((uint16_t)v << 8)); }

void da_convert_to_f32(da_dtype t, const void *src, float *dst, size_t n) {
    const unsigned char *s = src;
    switch (t) {
    case DA_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case DA_F32: memcpy(dst, s, n * 4); break;
    case DA_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = dk_f16_to_f32(h);
        }
        break;
    case DA_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = dk_bf16_to_f32(h);
        }
        break;
    case DA_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case DA_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case DA_I16:
        for (size_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, s + 2 * i, 2);
            dst[i] = (float)v;
        }
        break;
    case DA_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)s[i];
        break;
    case DA_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    case DA_BOOL: /* torch reads any non-zero byte as true */
        for (size_t i = 0; i < n; i++) dst[i] = s[i] ? 1.0f : 0.0f;
        break;
    case DA_F8_E4M3:
        for (size_t i = 0; i < n; i++) dst[i] = f8_e4m3_to_f32(s[i]);
        break;
    case DA_F8_E5M2:
        for (size_t i = 0; i < n; i++) dst[i] = f8_e5m2_to_f32(s[i]);
        break;
    default:
        for (size_t i = 0; i < n; i++) dst[i] = NAN;
        break;
    }
}

da_status da_st_tensor_to_f32(const da_st_tensor *t, float **out, da_error *err) {
    *out = NULL;
    if (!t || (unsigned)t->dtype >= DA_DTYPE_COUNT)
        return da_err_set(err, DA_ERR_INVALID_ARG, "da_st_tensor_to_f32: bad tensor");
    size_t bytes;
    if (t->numel > SIZE_MAX || !da_mul_size((size_t)t->numel, sizeof(float), &bytes))
        return da_err_set(err, DA_ERR_OVERFLOW, "tensor '%s': %" PRIu64 " elements overflow an f32 buffer", t->name,
                          t->numel);
    float *d = malloc(bytes ? bytes : 1);
    if (!d)
        return da_err_set(err, DA_ERR_NOMEM, "tensor '%s': out of memory for %zu bytes of f32", t->name, bytes);
    da_convert_to_f32(t->dtype, t->data, d, (size_t)t->numel);
    *out = d;
    return DA_OK;
}

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct st_wentry {
    char *name;
    da_dtype dtype;
    int rank;
    int64_t shape[DA_ST_MAX_RANK];
    uint64_t nbytes;
    const void *data; /* borrowed or owned (== owned) */
    void *owned;
    da_st_fill_fn fill;
    void *ctx;
} st_wentry;

struct da_st_writer {
    st_wentry *t;
    size_t n, cap;
    char **mk, **mv;
    size_t n_meta, cap_meta;
};

da_st_writer *da_st_writer_new(void) { return calloc(1, sizeof(da_st_writer)); }

void da_st_writer_free(da_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

/* Checks what every added tensor needs and fills e (without data); returns its byte size. */
static da_status writer_entry(da_st_writer *w, const char *name, da_dtype dtype, int rank, const int64_t *shape,
                              st_wentry *e, da_error *err) {
    if (!w || !name) return da_err_set(err, DA_ERR_INVALID_ARG, "safetensors writer: NULL writer or name");
    if (!da_json_utf8_valid(name, strlen(name)))
        return da_err_set(err, DA_ERR_INVALID_ARG, "safetensors writer: tensor name is not valid UTF-8");
    if (strcmp(name, "__metadata__") == 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "safetensors writer: '__metadata__' is reserved");
    if ((unsigned)dtype >= DA_DTYPE_COUNT)
        return da_err_set(err, DA_ERR_DTYPE, "tensor '%s': unknown dtype %d", name, (int)dtype);
    if (rank < 0 || rank > DA_ST_MAX_RANK || (rank > 0 && !shape))
        return da_err_set(err, DA_ERR_SHAPE, "tensor '%s': rank %d outside 0..%d", name, rank, DA_ST_MAX_RANK);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return da_err_set(err, DA_ERR_DUPLICATE, "tensor '%s': added twice", name);
    memset(e, 0, sizeof *e);
    uint64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return da_err_set(err, DA_ERR_SHAPE, "tensor '%s': shape[%d] = %" PRId64 " is negative", name, i, shape[i]);
        if (!da_mul_u64(numel, (uint64_t)shape[i], &numel))
            return da_err_set(err, DA_ERR_OVERFLOW, "tensor '%s': element count overflows", name);
        e->shape[i] = shape[i];
    }
    if (!da_mul_u64(numel, da_dtype_size(dtype), &e->nbytes) || e->nbytes > SIZE_MAX)
        return da_err_set(err, DA_ERR_OVERFLOW, "tensor '%s': byte size overflows", name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        st_wentry *t = realloc(w->t, nc * sizeof *t);
        if (!t) return da_err_set(err, DA_ERR_NOMEM, "tensor '%s': out of memory", name);
        w->t = t;
        w->cap = nc;
    }
    e->name = strdup(name);
    if (!e->name) return da_err_set(err, DA_ERR_NOMEM, "tensor '%s': out of memory", name);
    e->dtype = dtype;
    e->rank = rank;
    return DA_OK;
}

da_status da_st_writer_add(da_st_writer *w, const char *name, da_dtype dtype, int rank, const int64_t *shape,
                           const void *data, size_t nbytes, bool copy, da_error *err) {
    st_wentry e;
    da_status st = writer_entry(w, name, dtype, rank, shape, &e, err);
    if (st) return st;
    if (nbytes != e.nbytes || (!data && nbytes)) {
        free(e.name);
        return da_err_set(err, DA_ERR_SHAPE, "tensor '%s': %zu bytes given, shape and dtype %s need %" PRIu64, name,
                          nbytes, da_dtype_name(dtype), e.nbytes);
    }
    if (copy && nbytes) {
        e.owned = malloc(nbytes);
        if (!e.owned) {
            free(e.name);
            return da_err_set(err, DA_ERR_NOMEM, "tensor '%s': out of memory copying %zu bytes", name, nbytes);
        }
        memcpy(e.owned, data, nbytes);
        e.data = e.owned;
    } else {
        e.data = data;
    }
    w->t[w->n++] = e;
    return DA_OK;
}

da_status da_st_writer_add_lazy(da_st_writer *w, const char *name, da_dtype dtype, int rank, const int64_t *shape,
                                da_st_fill_fn fill, void *ctx, da_error *err) {
    if (!fill) return da_err_set(err, DA_ERR_INVALID_ARG, "tensor '%s': NULL fill callback", name ? name : "?");
    st_wentry e;
    da_status st = writer_entry(w, name, dtype, rank, shape, &e, err);
    if (st) return st;
    e.fill = fill;
    e.ctx = ctx;
    w->t[w->n++] = e;
    return DA_OK;
}

da_status da_st_writer_meta(da_st_writer *w, const char *key, const char *value, da_error *err) {
    if (!w || !key || !value) return da_err_set(err, DA_ERR_INVALID_ARG, "safetensors writer: NULL metadata argument");
    if (!da_json_utf8_valid(key, strlen(key)) || !da_json_utf8_valid(value, strlen(value)))
        return da_err_set(err, DA_ERR_INVALID_ARG, "metadata '%s': not valid UTF-8", key);
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->mk[i], key) == 0) return da_err_set(err, DA_ERR_DUPLICATE, "metadata '%s': set twice", key);
    if (w->n_meta == w->cap_meta) {
        size_t nc = w->cap_meta ? w->cap_meta * 2 : 8;
        char **k = realloc(w->mk, nc * sizeof *k);
        if (!k) return da_err_set(err, DA_ERR_NOMEM, "metadata '%s': out of memory", key);
        w->mk = k;
        char **v = realloc(w->mv, nc * sizeof *v);
        if (!v) return da_err_set(err, DA_ERR_NOMEM, "metadata '%s': out of memory", key);
        w->mv = v;
        w->cap_meta = nc;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return da_err_set(err, DA_ERR_NOMEM, "metadata '%s': out of memory", key);
    }
    w->mk[w->n_meta] = k;
    w->mv[w->n_meta++] = v;
    return DA_OK;
}

static da_status write_bytes(da_atomic_file *af, const void *p, size_t n, const char *path, da_error *err) {
    if (n && fwrite(p, 1, n, af->fp) != n)
        return da_err_set(err, DA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return DA_OK;
}

da_status da_st_writer_write(da_st_writer *w, const char *path, da_error *err) {
    if (!w || !path) return da_err_set(err, DA_ERR_INVALID_ARG, "safetensors writer: NULL writer or path");
    da_buf h = {0};
    da_buf_append(&h, "{", 1);
    bool first = true;
    if (w->n_meta) {
        da_buf_append(&h, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) da_buf_append(&h, ",", 1);
            da_buf_json_string(&h, w->mk[i]);
            da_buf_append(&h, ":", 1);
            da_buf_json_string(&h, w->mv[i]);
        }
        da_buf_append(&h, "}", 1);
        first = false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_wentry *e = &w->t[i];
        if (!first) da_buf_append(&h, ",", 1);
        first = false;
        da_buf_json_string(&h, e->name);
        da_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", da_dtype_name(e->dtype));
        for (int d = 0; d < e->rank; d++) da_buf_printf(&h, "%s%" PRId64, d ? "," : "", e->shape[d]);
        uint64_t end;
        if (!da_add_u64(off, e->nbytes, &end)) {
            da_buf_free(&h);
            return da_err_set(err, DA_ERR_OVERFLOW, "%s: tensor '%s': data area size overflows", path, e->name);
        }
        da_buf_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, end);
        off = end;
    }
    da_buf_append(&h, "}", 1);
    /* pad with spaces so the data area starts 8-byte aligned, as the reference writer does */
    while (!h.failed && h.len % 8) da_buf_append(&h, " ", 1);
    if (h.failed) {
        da_buf_free(&h);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    if ((uint64_t)h.len > ST_MAX_HEADER) {
        size_t hl = h.len;
        da_buf_free(&h);
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: header of %zu bytes exceeds the %" PRIu64 "-byte limit readers enforce",
                          path, hl, ST_MAX_HEADER);
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)h.len >> (8 * i));

    da_atomic_file af;
    da_status st = da_atomic_open(&af, path, err);
    if (st) {
        da_buf_free(&h);
        return st;
    }
    st = write_bytes(&af, lenb, 8, path, err);
    if (!st) st = write_bytes(&af, h.data, h.len, path, err);
    da_buf_free(&h);
    for (size_t i = 0; i < w->n && !st; i++) {
        const st_wentry *e = &w->t[i];
        if (!e->fill) {
            st = write_bytes(&af, e->data, (size_t)e->nbytes, path, err);
            continue;
        }
        /* one tensor in memory at a time, so multi-gigabyte files stream */
        void *buf = malloc(e->nbytes ? (size_t)e->nbytes : 1);
        if (!buf) {
            st = da_err_set(err, DA_ERR_NOMEM, "%s: tensor '%s': out of memory for %" PRIu64 " bytes", path, e->name,
                            e->nbytes);
            break;
        }
        st = e->fill(e->ctx, buf, (size_t)e->nbytes, err);
        if (st) da_err_prefix(err, "%s: tensor '%s'", path, e->name);
        else st = write_bytes(&af, buf, (size_t)e->nbytes, path, err);
        free(buf);
    }
    if (st) {
        da_atomic_abort(&af);
        return st;
    }
    return da_atomic_commit(&af, err);
}
