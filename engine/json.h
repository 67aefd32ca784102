/* json.h - a small, strict JSON reader (RFC 8259) for safetensors headers and model config files.
 *
 * The whole document is parsed into one allocation-owning tree. Limits guard untrusted input:
 * nesting depth, and the parser never reads past the given length (the text need not be
 * NUL-terminated). Strings are decoded to UTF-8 (\uXXXX escapes and surrogate pairs included);
 * numbers keep both their double value and, when integral and in range, an exact int64.
 */
#ifndef DA_JSON_H
#define DA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"

typedef enum da_json_type {
    DA_JSON_NULL,
    DA_JSON_FALSE,
    DA_JSON_TRUE,
    DA_JSON_NUMBER,
    DA_JSON_STRING,
    DA_JSON_ARRAY,
    DA_JSON_OBJECT
} da_json_type;

typedef struct da_json da_json;
struct da_json {
    da_json_type type;
    /* NUMBER */
    double num;
    bool is_int;     /* the literal had no fraction/exponent and fits in int64 */
    int64_t inum;
    /* STRING: decoded UTF-8, NUL-terminated; len excludes the NUL (may contain NULs from \u0000) */
    char *str;
    size_t len;
    /* ARRAY / OBJECT: n children in document order; for OBJECT, keys[i] names items[i] */
    size_t n;
    da_json *items;
    char **keys;
    size_t *key_lens;
};

#define DA_JSON_MAX_DEPTH 64

/* Parse text[0..len). On error returns a status (DA_ERR_FORMAT, or DA_ERR_NOMEM) and err->msg
 * says what and at which byte offset; what = a label for messages (usually the file name).
 * Duplicate object keys are allowed here (callers that care check them: see da_json_find_dup). */
da_status da_json_parse(const char *text, size_t len, const char *what, da_json **out, da_error *err);
/* Read and parse the file at path, which must hold a JSON object (errors name the path). */
da_status da_json_read_object(const char *path, da_json **out, da_error *err);
void da_json_free(da_json *j);

/* Object lookup by key (first match), NULL when absent or j is not an object. */
const da_json *da_json_get(const da_json *j, const char *key);
/* Typed lookups; return false when absent or of another type. */
bool da_json_get_int(const da_json *j, const char *key, int64_t *out);
bool da_json_get_num(const da_json *j, const char *key, double *out);
bool da_json_get_bool(const da_json *j, const char *key, bool *out);
const char *da_json_get_str(const da_json *j, const char *key);
/* Index of the first key that appears twice in an object, or -1. */
long da_json_find_dup(const da_json *obj);
/* Whether s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points
 * above U+10FFFF), i.e. text the parser would accept inside a string. */
bool da_json_utf8_valid(const char *s, size_t n);

#endif /* DA_JSON_H */
