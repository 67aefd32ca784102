/* test_safetensors.c - the safetensors reader and writer (engine/safetensors.c): writer -> reader
 * round trips for every dtype, f32 conversion against hand-computed constants and against torch
 * (tests/data/safetensors, made by tests/reference/make_safetensors_fixture.py with the reference
 * implementation), a table of malformed files run through both da_st_parse and da_st_open, and the
 * writer's atomicity and streaming.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "safetensors.h"
#include "testutil.h"
#include "util.h"

/* ---- helpers ----------------------------------------------------------------------------------- */

static size_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (size_t)sb.st_size : (size_t)-1;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Same value, treating every NaN as equal and telling -0 from +0. */
static bool same_f32(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

/* ---- round trip --------------------------------------------------------------------------------- */

typedef struct fill_log {
    int calls;
    char order[16];
} fill_log;

static da_status fill_pattern(void *ctx, void *dst, size_t n, da_error *err) {
    fill_log *log = ctx;
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = (unsigned char)(i * 7 + 3);
    log->order[log->calls++] = 'L';
    return DA_OK;
}

START_TEST(test_roundtrip_all_dtypes) {
    char *dir = da_test_tmpdir("st");
    char *path = da_path_join(dir, "rt.safetensors");
    da_error e;
    da_st_writer *w = da_st_writer_new();
    ck_assert_ptr_nonnull(w);
    unsigned char src[DA_DTYPE_COUNT][64];
    int64_t shapes[DA_DTYPE_COUNT][3];
    for (int t = 0; t < DA_DTYPE_COUNT; t++) {
        for (int i = 0; i < 64; i++) src[t][i] = (unsigned char)(t * 31 + i * 5);
        /* odd sizes so offsets are not all 8-aligned: element count 3*1*(t%3+1) */
        shapes[t][0] = 3;
        shapes[t][1] = 1;
        shapes[t][2] = t % 3 + 1;
        size_t nbytes = (size_t)(3 * (t % 3 + 1)) * da_dtype_size((da_dtype)t);
        char name[32];
        snprintf(name, sizeof name, "t%02d.%s", t, da_dtype_name((da_dtype)t));
        ck_assert_int_eq(da_st_writer_add(w, name, (da_dtype)t, 3, shapes[t], src[t], nbytes, t % 2 == 0, &e), DA_OK);
    }
    /* a scalar, an empty tensor, a lazy tensor and a name needing JSON escapes */
    float scalar = 1.25f;
    ck_assert_int_eq(da_st_writer_add(w, "scalar", DA_F32, 0, NULL, &scalar, 4, true, &e), DA_OK);
    int64_t empty_shape[2] = {0, 5};
    ck_assert_int_eq(da_st_writer_add(w, "empty", DA_F16, 2, empty_shape, NULL, 0, false, &e), DA_OK);
    fill_log log = {0};
    int64_t lazy_shape[1] = {37};
    ck_assert_int_eq(da_st_writer_add_lazy(w, "lazy", DA_U8, 1, lazy_shape, fill_pattern, &log, &e), DA_OK);
    ck_assert_int_eq(log.calls, 0); /* not before write time */
    const char *odd = "we\"ird\\name\t\xc3\xa9";
    float one = 1.0f;
    ck_assert_int_eq(da_st_writer_add(w, odd, DA_F32, 0, NULL, &one, 4, false, &e), DA_OK);
    ck_assert_int_eq(da_st_writer_meta(w, "format", "pt", &e), DA_OK);
    ck_assert_int_eq(da_st_writer_meta(w, "note", "caf\xc3\xa9 \"q\"\n", &e), DA_OK);
    ck_assert_int_eq(da_st_writer_write(w, path, &e), DA_OK);
    ck_assert_int_eq(log.calls, 1);
    da_st_writer_free(w);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary left behind */

    da_st_file *f;
    ck_assert_msg(da_st_open(path, &f, &e) == DA_OK, "%s", e.msg);
    ck_assert_uint_eq(f->header_len % 8, 0);
    ck_assert_uint_eq(f->n_tensors, DA_DTYPE_COUNT + 4);
    ck_assert_str_eq(da_st_meta(f, "format"), "pt");
    ck_assert_str_eq(da_st_meta(f, "note"), "caf\xc3\xa9 \"q\"\n");
    ck_assert_ptr_null(da_st_meta(f, "missing"));
    /* tensors come back in data-offset order, which is insertion order, and tile the data area */
    const unsigned char *data0 = (const unsigned char *)f->map + 8 + f->header_len;
    size_t off = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const da_st_tensor *t = &f->tensors[i];
        ck_assert_ptr_eq(t->data, data0 + off);
        off += t->nbytes;
    }
    ck_assert_uint_eq(8 + f->header_len + off, file_size(path));
    for (int t = 0; t < DA_DTYPE_COUNT; t++) {
        const da_st_tensor *x = &f->tensors[t];
        char name[32];
        snprintf(name, sizeof name, "t%02d.%s", t, da_dtype_name((da_dtype)t));
        ck_assert_str_eq(x->name, name);
        ck_assert_ptr_eq(da_st_find(f, name), x);
        ck_assert_int_eq(x->dtype, t);
        ck_assert_int_eq(x->rank, 3);
        for (int d = 0; d < 3; d++) ck_assert_int_eq(x->shape[d], shapes[t][d]);
        ck_assert_uint_eq(x->numel, (uint64_t)(3 * (t % 3 + 1)));
        ck_assert_uint_eq(x->nbytes, x->numel * da_dtype_size((da_dtype)t));
        ck_assert(memcmp(x->data, src[t], x->nbytes) == 0);
    }
    const da_st_tensor *s = da_st_find(f, "scalar");
    ck_assert(s && s->rank == 0 && s->numel == 1 && memcmp(s->data, &scalar, 4) == 0);
    const da_st_tensor *em = da_st_find(f, "empty");
    ck_assert(em && em->rank == 2 && em->numel == 0 && em->nbytes == 0 && em->shape[1] == 5);
    const da_st_tensor *lz = da_st_find(f, "lazy");
    ck_assert(lz && lz->nbytes == 37);
    for (int i = 0; i < 37; i++) ck_assert_uint_eq(((const unsigned char *)lz->data)[i], (unsigned char)(i * 7 + 3));
    ck_assert_ptr_nonnull(da_st_find(f, odd));
    ck_assert_ptr_null(da_st_find(f, "nope"));
    float *v;
    ck_assert_int_eq(da_st_tensor_to_f32(em, &v, &e), DA_OK);
    free(v);
    ck_assert_int_eq(da_st_tensor_to_f32(s, &v, &e), DA_OK);
    ck_assert(v[0] == 1.25f);
    free(v);

    /* the same bytes through da_st_parse give the same tensors */
    char *bytes;
    size_t len;
    ck_assert_int_eq(da_read_file(path, &bytes, &len, &e), DA_OK);
    da_st_file *g;
    ck_assert_msg(da_st_parse(bytes, len, "mem", &g, &e) == DA_OK, "%s", e.msg);
    ck_assert_uint_eq(g->n_tensors, f->n_tensors);
    ck_assert_ptr_null(g->map);
    for (size_t i = 0; i < g->n_tensors; i++) {
        ck_assert_str_eq(g->tensors[i].name, f->tensors[i].name);
        ck_assert(memcmp(g->tensors[i].data, f->tensors[i].data, f->tensors[i].nbytes) == 0);
    }
    da_st_close(g);
    free(bytes);
    da_st_close(f);

    /* an empty writer produces a valid file with no tensors */
    w = da_st_writer_new();
    ck_assert_int_eq(da_st_writer_write(w, path, &e), DA_OK);
    da_st_writer_free(w);
    ck_assert_int_eq(da_st_open(path, &f, &e), DA_OK);
    ck_assert_uint_eq(f->n_tensors, 0);
    ck_assert_uint_eq(f->n_meta, 0);
    ck_assert_uint_eq(file_size(path), 16); /* 8 + "{}" padded to 8 */
    da_st_close(f);
    free(path);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- conversion constants ------------------------------------------------------------------------ */

typedef struct conv_case {
    da_dtype t;
    uint8_t bytes[8]; /* little-endian */
    float want;       /* NAN means "any NaN" */
} conv_case;

static const conv_case conv_cases[] = {
    /* float8 e4m3fn: S.EEEE.MMM, bias 7, no inf, S.1111.111 NaN */
    {DA_F8_E4M3, {0x00}, 0.0f},
    {DA_F8_E4M3, {0x80}, -0.0f},
    {DA_F8_E4M3, {0x01}, 0.001953125f},  /* smallest subnormal 2^-9 */
    {DA_F8_E4M3, {0x07}, 0.013671875f},  /* largest subnormal 7 * 2^-9 */
    {DA_F8_E4M3, {0x08}, 0.015625f},     /* smallest normal 2^-6 */
    {DA_F8_E4M3, {0x38}, 1.0f},
    {DA_F8_E4M3, {0x3c}, 1.5f},
    {DA_F8_E4M3, {0xb8}, -1.0f},
    {DA_F8_E4M3, {0x7e}, 448.0f},        /* largest finite */
    {DA_F8_E4M3, {0xfe}, -448.0f},
    {DA_F8_E4M3, {0x78}, 256.0f},        /* exponent 15 is a normal binade here */
    {DA_F8_E4M3, {0x7f}, NAN},
    {DA_F8_E4M3, {0xff}, NAN},
    /* float8 e5m2: S.EEEEE.MM, bias 15, IEEE-like */
    {DA_F8_E5M2, {0x00}, 0.0f},
    {DA_F8_E5M2, {0x01}, 1.52587890625e-05f}, /* 2^-16 */
    {DA_F8_E5M2, {0x03}, 4.57763671875e-05f}, /* 3 * 2^-16 */
    {DA_F8_E5M2, {0x04}, 6.103515625e-05f},   /* 2^-14 */
    {DA_F8_E5M2, {0x3c}, 1.0f},
    {DA_F8_E5M2, {0x3e}, 1.5f},
    {DA_F8_E5M2, {0xc0}, -2.0f},
    {DA_F8_E5M2, {0x7b}, 57344.0f},
    {DA_F8_E5M2, {0x7c}, INFINITY},
    {DA_F8_E5M2, {0xfc}, -INFINITY},
    {DA_F8_E5M2, {0x7d}, NAN},
    {DA_F8_E5M2, {0xff}, NAN},
    /* f16 */
    {DA_F16, {0x00, 0x3c}, 1.0f},
    {DA_F16, {0x01, 0x00}, 5.9604644775390625e-08f}, /* 2^-24 */
    {DA_F16, {0xff, 0x7b}, 65504.0f},
    {DA_F16, {0x00, 0xfc}, -INFINITY},
    {DA_F16, {0x00, 0x7e}, NAN},
    {DA_F16, {0x00, 0x80}, -0.0f},
    {DA_F16, {0x55, 0x35}, 0.333251953125f},
    /* bf16 */
    {DA_BF16, {0x80, 0x3f}, 1.0f},
    {DA_BF16, {0x40, 0xc0}, -3.0f},
    {DA_BF16, {0x01, 0x00}, 9.18354961579912e-41f}, /* 2^-133, a float32 subnormal */
    {DA_BF16, {0x80, 0x7f}, INFINITY},
    {DA_BF16, {0xc0, 0x7f}, NAN},
    /* others */
    {DA_F64, {0, 0, 0, 0, 0, 0, 0xf8, 0x3f}, 1.5f},
    {DA_F64, {0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f}, 0.1f}, /* rounded to nearest */
    {DA_F32, {0x00, 0x00, 0x20, 0xc1}, -10.0f},
    {DA_I64, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, -2.0f},
    {DA_I64, {0, 0, 0, 0, 0, 0, 0, 0x80}, -9223372036854775808.0f},
    {DA_I32, {0x01, 0x00, 0x00, 0x01}, 16777217.0f}, /* rounds to 16777216 */
    {DA_I16, {0x00, 0x80}, -32768.0f},
    {DA_I8, {0x80}, -128.0f},
    {DA_U8, {0xff}, 255.0f},
    {DA_BOOL, {0x01}, 1.0f},
    {DA_BOOL, {0x00}, 0.0f},
    {DA_BOOL, {0x02}, 1.0f}, /* torch: any non-zero byte is true */
};

START_TEST(test_convert_constants) {
    for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; i++) {
        const conv_case *c = &conv_cases[i];
        /* convert from an odd address to exercise unaligned loads */
        unsigned char buf[9];
        memcpy(buf + 1, c->bytes, 8);
        float got = 12345.0f;
        da_convert_to_f32(c->t, buf + 1, &got, 1);
        bool ok = isnan(c->want) ? isnan(got) : same_f32(got, c->want);
        if (c->t == DA_I32 && c->want == 16777217.0f) ok = got == 16777216.0f;
        ck_assert_msg(ok, "case %zu (%s 0x%02x%02x): got %.9g want %.9g", i, da_dtype_name(c->t), c->bytes[1],
                      c->bytes[0], got, c->want);
    }
    /* every F8 code: E4M3 is finite except 0x7f/0xff; E5M2 is the top byte of an f16 */
    for (int b = 0; b < 256; b++) {
        uint8_t u = (uint8_t)b;
        float x;
        da_convert_to_f32(DA_F8_E4M3, &u, &x, 1);
        ck_assert(((b & 0x7f) == 0x7f) == (bool)isnan(x));
        ck_assert(!isinf(x));
        ck_assert(isnan(x) || fabsf(x) <= 448.0f);
        float y;
        da_convert_to_f32(DA_F8_E5M2, &u, &y, 1);
        ck_assert(((b & 0x7f) > 0x7c) == (bool)isnan(y));
        ck_assert(((b & 0x7f) == 0x7c) == (bool)isinf(y));
    }
    /* names and sizes */
    da_dtype t;
    ck_assert(da_dtype_from_name("F8_E4M3", &t) && t == DA_F8_E4M3);
    ck_assert(da_dtype_from_name("BOOL", &t) && t == DA_BOOL);
    ck_assert(!da_dtype_from_name("f32", &t));
    ck_assert(!da_dtype_from_name("F8_E4M3FNUZ", &t));
    ck_assert_uint_eq(da_dtype_size(DA_F64), 8);
    ck_assert_uint_eq(da_dtype_size(DA_BF16), 2);
    ck_assert_uint_eq(da_dtype_size(DA_F8_E5M2), 1);
}
END_TEST

/* ---- reference fixture (written by huggingface safetensors + torch) ------------------------------- */

START_TEST(test_reference_fixture) {
    da_st_file *r, *x;
    da_error e;
    ck_assert_msg(da_st_open("tests/data/safetensors/reference.safetensors", &r, &e) == DA_OK, "%s", e.msg);
    ck_assert_msg(da_st_open("tests/data/safetensors/expected_f32.safetensors", &x, &e) == DA_OK, "%s", e.msg);
    ck_assert_uint_eq(r->n_tensors, 15);
    ck_assert_uint_eq(r->n_tensors, x->n_tensors);
    ck_assert_str_eq(da_st_meta(r, "note"), "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80");
    ck_assert_str_eq(da_st_meta(r, "seed"), "1234");
    struct {
        const char *name;
        da_dtype t;
    } want[] = {{"f8_e4m3.all_codes", DA_F8_E4M3}, {"f8_e5m2.all_codes", DA_F8_E5M2}, {"bf16.random", DA_BF16},
                {"f16.specials", DA_F16},          {"f64.values", DA_F64},           {"i64.values", DA_I64},
                {"bool.values", DA_BOOL},          {"empty.f16", DA_F16},            {"scalar.f32", DA_F32}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const da_st_tensor *t = da_st_find(r, want[i].name);
        ck_assert_msg(t && t->dtype == want[i].t, "%s", want[i].name);
    }
    ck_assert_int_eq(da_st_find(r, "f8_e5m2.all_codes")->rank, 3);
    ck_assert_int_eq(da_st_find(r, "scalar.f32")->rank, 0);
    size_t compared = 0;
    for (size_t i = 0; i < r->n_tensors; i++) {
        const da_st_tensor *t = &r->tensors[i];
        const da_st_tensor *ref = da_st_find(x, t->name);
        ck_assert_msg(ref != NULL, "%s missing from expected_f32", t->name);
        ck_assert_int_eq(ref->dtype, DA_F32);
        ck_assert_uint_eq(ref->numel, t->numel);
        ck_assert_int_eq(ref->rank, t->rank);
        for (int d = 0; d < t->rank; d++) ck_assert_int_eq(ref->shape[d], t->shape[d]);
        float *got, *exp;
        ck_assert_int_eq(da_st_tensor_to_f32(t, &got, &e), DA_OK);
        ck_assert_int_eq(da_st_tensor_to_f32(ref, &exp, &e), DA_OK);
        for (uint64_t k = 0; k < t->numel; k++) {
            ck_assert_msg(same_f32(got[k], exp[k]), "%s[%llu]: got %.9g, torch says %.9g", t->name,
                          (unsigned long long)k, got[k], exp[k]);
            compared++;
        }
        free(got);
        free(exp);
    }
    ck_assert_uint_ge(compared, 256 + 256 + 16);
    da_st_close(r);
    da_st_close(x);
}
END_TEST

/* ---- malformed files ------------------------------------------------------------------------------ */

#define B10 "[[[[[[[[[["
#define ENT(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

typedef struct bad_file {
    const char *desc;
    const char *header;   /* header text (its strlen is the header length unless set_len) */
    size_t header_len;    /* for headers with embedded NULs: explicit length (0 = strlen) */
    bool set_len;         /* write len_field instead of the header's length */
    uint64_t len_field;
    size_t data_len;      /* zero bytes appended after the header */
    const char *raw;      /* when non-NULL: the whole file is raw[0..raw_len) */
    size_t raw_len;
    da_status want;
    const char *substr;   /* the message must contain this */
} bad_file;

static const bad_file bad_files[] = {
    {"empty file", .raw = "", .raw_len = 0, .want = DA_ERR_TRUNCATED, .substr = "0 bytes, shorter than the 8-byte"},
    {"5-byte file", .raw = "\x02\0\0\0\0", .raw_len = 5, .want = DA_ERR_TRUNCATED, .substr = "5 bytes"},
    {"header length 0", "", .want = DA_ERR_FORMAT, .substr = "header length is 0"},
    {"header length beyond the file", "{}", .set_len = true, .len_field = 1000, .want = DA_ERR_TRUNCATED,
     .substr = "header length 1000 exceeds the 2 bytes"},
    {"header length above 100 MB", "{}", .set_len = true, .len_field = 200000000, .want = DA_ERR_FORMAT,
     .substr = "header length 200000000 exceeds the 100000000-byte limit"},
    {"header length 2^64-1", "{}", .set_len = true, .len_field = UINT64_MAX, .want = DA_ERR_FORMAT,
     .substr = "18446744073709551615"},
    {"header is an array", "[]", .want = DA_ERR_FORMAT, .substr = "not a JSON object"},
    {"header is a string", "  \"x\"", .want = DA_ERR_FORMAT, .substr = "offset 10"},
    {"header all spaces", "        ", .want = DA_ERR_FORMAT, .substr = "not a JSON object"},
    {"truncated JSON", "{\"a\":", .want = DA_ERR_FORMAT, .substr = "header: JSON error at byte 5"},
    {"trailing garbage", "{} x", .want = DA_ERR_FORMAT, .substr = "trailing characters"},
    {"NUL padding", "{}\0\0\0\0\0\0", .header_len = 8, .want = DA_ERR_FORMAT, .substr = "trailing characters"},
    {"nesting too deep", "{\"__metadata__\":" B10 B10 B10 B10 B10 B10 B10 "}", .want = DA_ERR_FORMAT,
     .substr = "nesting deeper than 64"},
    {"unterminated name", "{\"abc", .want = DA_ERR_FORMAT, .substr = "unterminated string"},
    {"invalid UTF-8 in name", "{\"\xc3\x28\":" ENT("F32", "[]", "[0,4]") "}", .data_len = 4, .want = DA_ERR_FORMAT,
     .substr = "invalid UTF-8"},
    {"lone surrogate in name", "{\"\\udc00\":" ENT("F32", "[]", "[0,4]") "}", .data_len = 4, .want = DA_ERR_FORMAT,
     .substr = "lone low surrogate"},
    {"NUL in name", "{\"a\\u0000b\":" ENT("F32", "[]", "[0,4]") "}", .data_len = 4, .want = DA_ERR_FORMAT,
     .substr = "tensor 'a': name contains a NUL"},
    {"duplicate tensor", "{\"dup\":" ENT("F32", "[1]", "[0,4]") ",\"dup\":" ENT("F32", "[1]", "[4,8]") "}",
     .data_len = 8, .want = DA_ERR_DUPLICATE, .substr = "tensor 'dup': name appears twice"},
    {"entry not an object", "{\"w\":[1,2]}", .want = DA_ERR_FORMAT, .substr = "tensor 'w': entry is not a JSON object"},
    {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", .data_len = 4, .want = DA_ERR_FORMAT,
     .substr = "tensor 'w': missing key 'dtype'"},
    {"missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", .data_len = 4, .want = DA_ERR_FORMAT,
     .substr = "missing key 'shape'"},
    {"missing data_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", .data_len = 4, .want = DA_ERR_FORMAT,
     .substr = "missing key 'data_offsets'"},
    {"unknown key", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", .data_len = 4,
     .want = DA_ERR_FORMAT, .substr = "tensor 'w': unknown key 'extra'"},
    {"duplicate key in entry", "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     .data_len = 4, .want = DA_ERR_FORMAT, .substr = "key 'dtype' appears twice"},
    {"unknown dtype", "{\"w\":" ENT("F4", "[1]", "[0,1]") "}", .data_len = 1, .want = DA_ERR_DTYPE,
     .substr = "tensor 'w': unknown dtype 'F4'"},
    {"lower-case dtype", "{\"w\":" ENT("f32", "[1]", "[0,4]") "}", .data_len = 4, .want = DA_ERR_DTYPE,
     .substr = "unknown dtype 'f32'"},
    {"dtype not a string", "{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", .data_len = 4,
     .want = DA_ERR_DTYPE, .substr = "tensor 'w': dtype is not a string"},
    {"shape not an array", "{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", .data_len = 16,
     .want = DA_ERR_SHAPE, .substr = "tensor 'w': shape is not an array"},
    {"negative dimension", "{\"w\":" ENT("F32", "[2,-1]", "[0,0]") "}", .want = DA_ERR_SHAPE,
     .substr = "tensor 'w': shape[1] is not a non-negative integer"},
    {"fractional dimension", "{\"w\":" ENT("F32", "[2.5]", "[0,8]") "}", .data_len = 8, .want = DA_ERR_SHAPE,
     .substr = "shape[0]"},
    {"string dimension", "{\"w\":" ENT("F32", "[\"2\"]", "[0,8]") "}", .data_len = 8, .want = DA_ERR_SHAPE,
     .substr = "shape[0]"},
    {"rank 9", "{\"w\":" ENT("U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", .data_len = 1, .want = DA_ERR_SHAPE,
     .substr = "tensor 'w': rank 9 exceeds the maximum 8"},
    {"element count overflow", "{\"w\":" ENT("U8", "[4294967296,2147483648,4]", "[0,1]") "}", .data_len = 1,
     .want = DA_ERR_OVERFLOW, .substr = "tensor 'w': element count overflows at shape[2] = 4"},
    {"byte count overflow", "{\"w\":" ENT("F64", "[4611686018427387904]", "[0,8]") "}", .data_len = 8,
     .want = DA_ERR_OVERFLOW, .substr = "4611686018427387904 elements of F64 overflow"},
    {"dimension beyond int64", "{\"w\":" ENT("U8", "[99999999999999999999]", "[0,1]") "}", .data_len = 1,
     .want = DA_ERR_OVERFLOW, .substr = "shape[0] does not fit in 64 bits"},
    {"data_offsets of length 1", "{\"w\":" ENT("U8", "[1]", "[0]") "}", .data_len = 1, .want = DA_ERR_FORMAT,
     .substr = "tensor 'w': data_offsets is not an array of two integers"},
    {"data_offsets strings", "{\"w\":" ENT("U8", "[1]", "[\"0\",\"1\"]") "}", .data_len = 1, .want = DA_ERR_FORMAT,
     .substr = "data_offsets[0] is not an integer"},
    {"data_offsets fractional", "{\"w\":" ENT("U8", "[1]", "[0,1.0]") "}", .data_len = 1, .want = DA_ERR_FORMAT,
     .substr = "data_offsets[1] is not an integer"},
    {"negative offset", "{\"w\":" ENT("U8", "[4]", "[-4,0]") "}", .data_len = 4, .want = DA_ERR_BOUNDS,
     .substr = "tensor 'w': data_offsets[0] is negative"},
    {"begin after end", "{\"w\":" ENT("F32", "[1]", "[8,4]") "}", .data_len = 8, .want = DA_ERR_BOUNDS,
     .substr = "tensor 'w': data_offsets begin 8 > end 4"},
    {"size mismatch", "{\"w\":" ENT("F32", "[2]", "[0,4]") "}", .data_len = 4, .want = DA_ERR_SHAPE,
     .substr = "tensor 'w': data_offsets [0, 4] hold 4 bytes but 2 elements of F32 need 8"},
    {"file cut short", "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"b\":" ENT("F32", "[4]", "[4,20]") "}", .data_len = 10,
     .want = DA_ERR_TRUNCATED, .substr = "tensor 'b': data_offsets [4, 20] run past the end of the 10-byte data area (file truncated?)"},
    {"empty data area", "{\"w\":" ENT("F32", "[1]", "[0,4]") "}", .data_len = 0, .want = DA_ERR_TRUNCATED,
     .substr = "tensor 'w'"},
    {"offsets outside data area", "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"b\":" ENT("F32", "[1]", "[100,104]") "}",
     .data_len = 8, .want = DA_ERR_BOUNDS, .substr = "tensor 'b': data_offsets [100, 104] lie outside the 8-byte"},
    {"huge end offset", "{\"w\":" ENT("U8", "[18446744073709551615]", "[0,18446744073709551615]") "}", .data_len = 4,
     .want = DA_ERR_OVERFLOW, .substr = "does not fit in 64 bits"},
    {"overlap", "{\"a\":" ENT("F32", "[2]", "[0,8]") ",\"b\":" ENT("F32", "[1]", "[4,8]") "}", .data_len = 8,
     .want = DA_ERR_OVERLAP, .substr = "tensor 'b': data_offsets [4, 8] overlap tensor 'a' ending at 8"},
    {"identical offsets", "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"b\":" ENT("F32", "[1]", "[0,4]") "}",
     .data_len = 4, .want = DA_ERR_OVERLAP, .substr = "overlap tensor 'a'"},
    {"empty tensor inside another", "{\"a\":" ENT("F32", "[2]", "[0,8]") ",\"e\":" ENT("F32", "[0]", "[4,4]") "}",
     .data_len = 8, .want = DA_ERR_OVERLAP, .substr = "tensor 'e'"},
    {"hole", "{\"a\":" ENT("F32", "[1]", "[0,4]") ",\"b\":" ENT("F32", "[1]", "[8,12]") "}", .data_len = 12,
     .want = DA_ERR_FORMAT, .substr = "tensor 'b': data_offsets begin 8 leaves a hole: bytes [4, 8)"},
    {"hole at start", "{\"a\":" ENT("F32", "[1]", "[4,8]") "}", .data_len = 8, .want = DA_ERR_FORMAT,
     .substr = "bytes [0, 4)"},
    {"trailing bytes", "{\"a\":" ENT("F32", "[1]", "[0,4]") "}", .data_len = 8, .want = DA_ERR_FORMAT,
     .substr = "4 trailing bytes after the last tensor"},
    {"data but no tensors", "{}", .data_len = 3, .want = DA_ERR_FORMAT, .substr = "3 trailing bytes"},
    {"metadata not an object", "{\"__metadata__\":[\"a\"]}", .want = DA_ERR_FORMAT,
     .substr = "__metadata__ is not an object"},
    {"metadata value not a string", "{\"__metadata__\":{\"k\":1}}", .want = DA_ERR_FORMAT,
     .substr = "__metadata__ value of 'k' is not a string"},
    {"metadata duplicate key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", .want = DA_ERR_DUPLICATE,
     .substr = "__metadata__ key 'k' appears twice"},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", .want = DA_ERR_DUPLICATE,
     .substr = "tensor '__metadata__'"},
    {"NaN offset", "{\"w\":" ENT("U8", "[1]", "[0,NaN]") "}", .data_len = 1, .want = DA_ERR_FORMAT,
     .substr = "unexpected character"},
    {"leading zero offset", "{\"w\":" ENT("U8", "[1]", "[00,1]") "}", .data_len = 1, .want = DA_ERR_FORMAT,
     .substr = "leading zero"},
};

/* Builds the file bytes of one row (malloc'd). */
static unsigned char *build_bad(const bad_file *b, size_t *len) {
    if (b->raw) {
        unsigned char *p = malloc(b->raw_len ? b->raw_len : 1);
        memcpy(p, b->raw, b->raw_len);
        *len = b->raw_len;
        return p;
    }
    size_t hl = b->header_len ? b->header_len : strlen(b->header);
    *len = 8 + hl + b->data_len;
    unsigned char *p = calloc(1, *len);
    uint64_t n = b->set_len ? b->len_field : hl;
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(n >> (8 * i));
    memcpy(p + 8, b->header, hl);
    return p;
}

START_TEST(test_malformed_table) {
    size_t rows = sizeof bad_files / sizeof *bad_files;
    ck_assert_uint_ge(rows, 30);
    char *dir = da_test_tmpdir("st");
    for (size_t i = 0; i < rows; i++) {
        const bad_file *b = &bad_files[i];
        size_t len;
        unsigned char *bytes = build_bad(b, &len);
        /* memory: an exact-size copy, so an over-read is caught by ASan */
        da_st_file *f = (da_st_file *)1;
        da_error e;
        da_status st = da_st_parse(bytes, len, "bad.st", &f, &e);
        ck_assert_msg(st == b->want, "row %zu (%s): parse gave %s, want %s: %s", i, b->desc, da_status_name(st),
                      da_status_name(b->want), e.msg);
        ck_assert_ptr_null(f);
        ck_assert_msg(strncmp(e.msg, "bad.st: ", 8) == 0, "row %zu (%s): message '%s' does not name the file", i,
                      b->desc, e.msg);
        ck_assert_msg(strstr(e.msg, b->substr) != NULL, "row %zu (%s): message '%s' lacks '%s'", i, b->desc, e.msg,
                      b->substr);
        /* the same bytes as a file through mmap */
        char fname[64];
        snprintf(fname, sizeof fname, "bad%02zu.safetensors", i);
        char *path = da_path_join(dir, fname);
        ck_assert_int_eq(da_write_file_atomic(path, bytes, len, &e), DA_OK);
        f = (da_st_file *)1;
        st = da_st_open(path, &f, &e);
        ck_assert_msg(st == b->want, "row %zu (%s): open gave %s, want %s: %s", i, b->desc, da_status_name(st),
                      da_status_name(b->want), e.msg);
        ck_assert_ptr_null(f);
        ck_assert_msg(strncmp(e.msg, path, strlen(path)) == 0, "row %zu: '%s' does not start with the path", i, e.msg);
        ck_assert_msg(strstr(e.msg, b->substr) != NULL, "row %zu (%s): open message '%s' lacks '%s'", i, b->desc,
                      e.msg, b->substr);
        free(path);
        free(bytes);
    }
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* Edge cases that must be accepted. */
START_TEST(test_valid_edges) {
    static const struct {
        const char *header;
        size_t data_len, n_tensors;
    } ok[] = {
        {"{}", 0, 0},
        {" \n{}  ", 0, 0},
        {"{\"__metadata__\":{}}", 0, 0},
        {"{\"e\":" ENT("F16", "[0,3]", "[0,0]") "}", 0, 1},
        {"{\"s\":" ENT("F64", "[]", "[0,8]") "}", 8, 1},
        /* zero-size tensors at shared boundaries, declared out of offset order */
        {"{\"b\":" ENT("U8", "[2]", "[2,4]") ",\"z\":" ENT("U8", "[0]", "[2,2]") ",\"a\":" ENT("U8", "[2]", "[0,2]") "}",
         4, 3},
        {"{\"w\":{\"data_offsets\":[0,2],\"shape\":[1],\"dtype\":\"BF16\"}}", 2, 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        bad_file b = {"ok", ok[i].header, .data_len = ok[i].data_len};
        size_t len;
        unsigned char *bytes = build_bad(&b, &len);
        da_st_file *f;
        da_error e;
        ck_assert_msg(da_st_parse(bytes, len, "ok.st", &f, &e) == DA_OK, "row %zu: %s", i, e.msg);
        ck_assert_uint_eq(f->n_tensors, ok[i].n_tensors);
        for (size_t k = 1; k < f->n_tensors; k++)
            ck_assert((const char *)f->tensors[k].data >= (const char *)f->tensors[k - 1].data);
        if (i == 5) {
            ck_assert_str_eq(f->tensors[0].name, "a");
            ck_assert_ptr_eq(da_st_find(f, "z")->data, (const char *)bytes + len - 2);
        }
        da_st_close(f);
        free(bytes);
    }
    da_error e;
    da_st_file *f;
    ck_assert_int_eq(da_st_open("/nonexistent/x.safetensors", &f, &e), DA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/x.safetensors"));
    ck_assert_int_eq(da_st_open("/tmp", &f, &e), DA_ERR_IO);
}
END_TEST

/* ---- writer errors and atomicity -------------------------------------------------------------------- */

static da_status fill_fail(void *ctx, void *dst, size_t n, da_error *err) {
    fill_log *log = ctx;
    log->order[log->calls++] = 'F';
    return da_err_set(err, DA_ERR_IO, "generator broke");
}

START_TEST(test_writer_errors) {
    char *dir = da_test_tmpdir("st");
    char *path = da_path_join(dir, "w.safetensors");
    da_error e;
    float v[4] = {1, 2, 3, 4};
    int64_t shp[2] = {2, 2}, neg[1] = {-1}, big[2] = {INT64_MAX, 4};
    da_st_writer *w = da_st_writer_new();
    ck_assert_int_eq(da_st_writer_add(w, "a", DA_F32, 2, shp, v, 16, false, &e), DA_OK);
    ck_assert_int_eq(da_st_writer_add(w, "a", DA_F32, 2, shp, v, 16, false, &e), DA_ERR_DUPLICATE);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a'"));
    ck_assert_int_eq(da_st_writer_add(w, "b", DA_F32, 2, shp, v, 12, false, &e), DA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "12 bytes given"));
    ck_assert_int_eq(da_st_writer_add(w, "c", DA_F32, 1, neg, v, 0, false, &e), DA_ERR_SHAPE);
    ck_assert_int_eq(da_st_writer_add(w, "d", DA_F32, 2, big, v, 0, false, &e), DA_ERR_OVERFLOW);
    ck_assert_int_eq(da_st_writer_add(w, "e", DA_F32, 9, shp, v, 16, false, &e), DA_ERR_SHAPE);
    ck_assert_int_eq(da_st_writer_add(w, "f", (da_dtype)99, 2, shp, v, 16, false, &e), DA_ERR_DTYPE);
    ck_assert_int_eq(da_st_writer_add(w, "__metadata__", DA_F32, 2, shp, v, 16, false, &e), DA_ERR_INVALID_ARG);
    ck_assert_int_eq(da_st_writer_add(w, "\xff", DA_F32, 2, shp, v, 16, false, &e), DA_ERR_INVALID_ARG);
    ck_assert_int_eq(da_st_writer_meta(w, "k", "v", &e), DA_OK);
    ck_assert_int_eq(da_st_writer_meta(w, "k", "w", &e), DA_ERR_DUPLICATE);
    ck_assert_int_eq(da_st_writer_meta(w, "k2", "\xc3", &e), DA_ERR_INVALID_ARG);
    ck_assert_int_eq(da_st_writer_write(w, path, &e), DA_OK);
    /* a failing fill callback aborts the write: the previous file stays, no temporary remains */
    size_t before = file_size(path);
    fill_log log = {0};
    ck_assert_int_eq(da_st_writer_add_lazy(w, "lz", DA_U8, 1, shp, fill_pattern, &log, &e), DA_OK);
    ck_assert_int_eq(da_st_writer_add_lazy(w, "bad", DA_U8, 1, shp, fill_fail, &log, &e), DA_OK);
    ck_assert_int_eq(da_st_writer_add_lazy(w, "never", DA_U8, 1, shp, fill_pattern, &log, &e), DA_OK);
    ck_assert_int_eq(da_st_writer_write(w, path, &e), DA_ERR_IO);
    ck_assert_str_eq(log.order, "LF"); /* insertion order, stopped at the failure */
    ck_assert_ptr_nonnull(strstr(e.msg, "tensor 'bad': generator broke"));
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_uint_eq(file_size(path), before);
    ck_assert_int_eq(count_entries(dir), 1);
    da_st_file *f;
    ck_assert_int_eq(da_st_open(path, &f, &e), DA_OK);
    ck_assert_uint_eq(f->n_tensors, 1);
    da_st_close(f);
    /* a missing directory fails cleanly */
    char *bad = da_path_join(dir, "no/such/dir.safetensors");
    ck_assert_int_eq(da_st_writer_write(w, bad, &e), DA_ERR_IO);
    free(bad);
    da_st_writer_free(w);
    free(path);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* Many tensors: lookups by name stay correct with the sorted index. */
START_TEST(test_many_tensors) {
    char *dir = da_test_tmpdir("st");
    char *path = da_path_join(dir, "many.safetensors");
    da_error e;
    da_st_writer *w = da_st_writer_new();
    int16_t vals[3000];
    for (int i = 0; i < 3000; i++) {
        vals[i] = (int16_t)(i - 1500);
        char name[48];
        snprintf(name, sizeof name, "model.layers.%d.weight", (i * 7919) % 3000);
        int64_t one = 1;
        ck_assert_int_eq(da_st_writer_add(w, name, DA_I16, 1, &one, &vals[i], 2, false, &e), DA_OK);
    }
    ck_assert_int_eq(da_st_writer_write(w, path, &e), DA_OK);
    da_st_writer_free(w);
    da_st_file *f;
    ck_assert_int_eq(da_st_open(path, &f, &e), DA_OK);
    ck_assert_uint_eq(f->n_tensors, 3000);
    for (int i = 0; i < 3000; i++) {
        char name[48];
        snprintf(name, sizeof name, "model.layers.%d.weight", (i * 7919) % 3000);
        const da_st_tensor *t = da_st_find(f, name);
        ck_assert_msg(t != NULL, "%s", name);
        float x;
        da_convert_to_f32(t->dtype, t->data, &x, 1);
        ck_assert(x == (float)(i - 1500));
    }
    da_st_close(f);
    free(path);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* The fuzzer's seed files (written by the Python library) must stay valid, or fuzzing starts blind. */
START_TEST(test_fuzz_seeds_valid) {
    const char *dir = "tests/fuzz/corpus/safetensors";
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *ent;
    int n = 0;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        char *path = da_path_join(dir, ent->d_name);
        da_st_file *f;
        da_error e;
        ck_assert_msg(da_st_open(path, &f, &e) == DA_OK, "%s", e.msg);
        da_st_close(f);
        free(path);
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 3);
}
END_TEST

static Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = da_tcase("safetensors", "fast", 60);
    tcase_add_test(tc, test_roundtrip_all_dtypes);
    tcase_add_test(tc, test_convert_constants);
    tcase_add_test(tc, test_reference_fixture);
    tcase_add_test(tc, test_malformed_table);
    tcase_add_test(tc, test_valid_edges);
    tcase_add_test(tc, test_writer_errors);
    tcase_add_test(tc, test_many_tensors);
    tcase_add_test(tc, test_fuzz_seeds_valid);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(safetensors_suite)
