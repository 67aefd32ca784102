/* util.h - small helpers shared by every engine module: error records, overflow-checked size
 * arithmetic, whole-file reads, atomic writes (temporary name then rename), directories.
 */
#ifndef DA_UTIL_H
#define DA_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "diffaug.h"

#if defined(__GNUC__)
#define DA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DA_PRINTF(a, b)
#endif

/* Fill err (may be NULL) with code and a formatted message; returns code so callers can
 * write `return da_err_set(err, DA_ERR_FORMAT, "%s: ...", path);`. */
da_status da_err_set(da_error *err, da_status code, const char *fmt, ...) DA_PRINTF(3, 4);
/* Clear an error record to DA_OK / "". */
void da_err_clear(da_error *err);
/* Prefix the existing message with "prefix: " (used to add context on the way up). */
void da_err_prefix(da_error *err, const char *fmt, ...) DA_PRINTF(2, 3);

/* Overflow-checked arithmetic on sizes: return false on overflow (and leave *out undefined). */
static inline bool da_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool da_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool da_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool da_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }

/* malloc/calloc/realloc wrappers that never return NULL for a non-zero size without setting err. */
void *da_malloc(size_t n, da_error *err);
void *da_calloc(size_t n, size_t size, da_error *err);

/* Read a whole file into a NUL-terminated malloc'd buffer (*len excludes the NUL). */
da_status da_read_file(const char *path, char **data, size_t *len, da_error *err);

/* Atomic output: open "<path>.tmp.<pid>.<n>" for writing; da_atomic_commit flushes, fsyncs and
 * renames it over path; da_atomic_abort closes and removes it. A reader never sees a partial file. */
typedef struct da_atomic_file {
    FILE *fp;
    char *final_path;
    char *tmp_path;
} da_atomic_file;
da_status da_atomic_open(da_atomic_file *af, const char *path, da_error *err);
da_status da_atomic_commit(da_atomic_file *af, da_error *err);
void da_atomic_abort(da_atomic_file *af);
/* Write a buffer to path atomically. */
da_status da_write_file_atomic(const char *path, const void *data, size_t len, da_error *err);

/* mkdir -p; succeeds if the directory exists. */
da_status da_mkdirs(const char *path, da_error *err);
bool da_is_dir(const char *path);
bool da_is_file(const char *path);
/* Join two path parts with one '/', malloc'd. */
char *da_path_join(const char *a, const char *b);

/* Growable byte buffer (for building JSON, headers, manifests). */
typedef struct da_buf {
    char *data;
    size_t len, cap;
    bool failed; /* set once an allocation failed; further appends are ignored */
} da_buf;
void da_buf_append(da_buf *b, const void *data, size_t n);
void da_buf_printf(da_buf *b, const char *fmt, ...) DA_PRINTF(2, 3);
/* Append s as a JSON string literal (quotes and escapes included). */
void da_buf_json_string(da_buf *b, const char *s);
void da_buf_free(da_buf *b);

/* Wall-clock seconds from a monotonic clock. */
double da_now(void);

/* Strict UTF-8: decode the code point at s[0..len) (no overlongs, surrogates or code points past
 * U+10FFFF). Returns the bytes it takes (1..4), or 0 when the sequence there is invalid. */
size_t da_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);
/* The offset of the first invalid byte of s[0..len), or -1 when all of it is valid UTF-8. */
long da_utf8_invalid_at(const char *s, size_t len);

#endif /* DA_UTIL_H */
