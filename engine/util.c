/* util.c - error records, allocation, whole-file reads, atomic writes, directories, buffers. */

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const status_names[DA_STATUS_COUNT] = {
    [DA_OK] = "ok",
    [DA_ERR_INVALID_ARG] = "invalid argument",
    [DA_ERR_IO] = "i/o error",
    [DA_ERR_NOMEM] = "out of memory",
    [DA_ERR_FORMAT] = "format error",
    [DA_ERR_TRUNCATED] = "truncated",
    [DA_ERR_OVERFLOW] = "size overflow",
    [DA_ERR_BOUNDS] = "out of bounds",
    [DA_ERR_DUPLICATE] = "duplicate",
    [DA_ERR_DTYPE] = "bad dtype",
    [DA_ERR_SHAPE] = "bad shape",
    [DA_ERR_NOT_FOUND] = "not found",
    [DA_ERR_UNSUPPORTED] = "unsupported",
    [DA_ERR_OVERLAP] = "overlap",
    [DA_ERR_CUDA] = "cuda error",
    [DA_ERR_IMAGE] = "bad image",
    [DA_ERR_INTERRUPTED] = "interrupted",
};

const char *da_status_name(da_status s) {
    if ((unsigned)s >= DA_STATUS_COUNT) return "unknown status";
    return status_names[s];
}

da_status da_err_set(da_error *err, da_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void da_err_clear(da_error *err) {
    if (err) {
        err->code = DA_OK;
        err->msg[0] = 0;
    }
}

void da_err_prefix(da_error *err, const char *fmt, ...) {
    if (!err) return;
    char joined[sizeof err->msg * 2];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(joined, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    size_t used = (size_t)k < sizeof err->msg ? (size_t)k : sizeof err->msg - 1;
    snprintf(joined + used, sizeof joined - used, ": %s", err->msg);
    memcpy(err->msg, joined, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = 0;
}

void *da_malloc(size_t n, da_error *err) {
    void *p = malloc(n ? n : 1);
    if (!p) da_err_set(err, DA_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *da_calloc(size_t n, size_t size, da_error *err) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) da_err_set(err, DA_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

da_status da_read_file(const char *path, char **data, size_t *len, da_error *err) {
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return da_err_set(err, DA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    da_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) da_buf_append(&b, chunk, n);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr) {
        da_buf_free(&b);
        return da_err_set(err, DA_ERR_IO, "%s: read error", path);
    }
    da_buf_append(&b, "", 1);
    if (b.failed) {
        da_buf_free(&b);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory reading file", path);
    }
    *data = b.data;
    *len = b.len - 1;
    return DA_OK;
}

static atomic_uint tmp_counter;

da_status da_atomic_open(da_atomic_file *af, const char *path, da_error *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 64;
    af->final_path = strdup(path);
    af->tmp_path = malloc(n);
    if (!af->final_path || !af->tmp_path) {
        da_atomic_abort(af);
        return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", path);
    }
    unsigned k = atomic_fetch_add(&tmp_counter, 1);
    snprintf(af->tmp_path, n, "%s.tmp.%ld.%u", path, (long)getpid(), k);
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        int e = errno;
        free(af->tmp_path);
        af->tmp_path = NULL;
        da_atomic_abort(af);
        return da_err_set(err, DA_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    return DA_OK;
}

da_status da_atomic_commit(da_atomic_file *af, da_error *err) {
    if (!af->fp) return da_err_set(err, DA_ERR_INVALID_ARG, "atomic file not open");
    int bad = ferror(af->fp) || fflush(af->fp) != 0;
    int e = errno;
    if (!bad && fsync(fileno(af->fp)) != 0 && errno != EINVAL) {
        bad = 1;
        e = errno;
    }
    if (fclose(af->fp) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    af->fp = NULL;
    if (bad) {
        da_err_set(err, DA_ERR_IO, "%s: write failed: %s", af->final_path, strerror(e));
        da_atomic_abort(af);
        return DA_ERR_IO;
    }
    if (rename(af->tmp_path, af->final_path) != 0) {
        da_err_set(err, DA_ERR_IO, "%s: cannot rename temporary file into place: %s", af->final_path,
                   strerror(errno));
        da_atomic_abort(af);
        return DA_ERR_IO;
    }
    free(af->tmp_path);
    free(af->final_path);
    af->tmp_path = af->final_path = NULL;
    return DA_OK;
}

void da_atomic_abort(da_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
}

da_status da_write_file_atomic(const char *path, const void *data, size_t len, da_error *err) {
    da_atomic_file af;
    da_status st = da_atomic_open(&af, path, err);
    if (st) return st;
    if (len && fwrite(data, 1, len, af.fp) != len) {
        int e = errno;
        da_atomic_abort(&af);
        return da_err_set(err, DA_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return da_atomic_commit(&af, err);
}

bool da_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool da_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

da_status da_mkdirs(const char *path, da_error *err) {
    char *p = strdup(path);
    if (!p) return da_err_set(err, DA_ERR_NOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            da_err_set(err, DA_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return DA_ERR_IO;
        }
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        da_err_set(err, DA_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
        free(p);
        return DA_ERR_IO;
    }
    free(p);
    if (!da_is_dir(path)) return da_err_set(err, DA_ERR_IO, "%s: exists and is not a directory", path);
    return DA_OK;
}

char *da_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    char *r = malloc(la + lb + 2);
    if (!r) return NULL;
    memcpy(r, a, la);
    r[la] = '/';
    memcpy(r + la + 1, b, lb + 1);
    return r;
}

void da_buf_append(da_buf *b, const void *data, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void da_buf_printf(da_buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        da_buf_append(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    da_buf_append(b, big, (size_t)n);
    free(big);
}

void da_buf_json_string(da_buf *b, const char *s) {
    da_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': da_buf_append(b, "\\\"", 2); break;
        case '\\': da_buf_append(b, "\\\\", 2); break;
        case '\n': da_buf_append(b, "\\n", 2); break;
        case '\r': da_buf_append(b, "\\r", 2); break;
        case '\t': da_buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20) da_buf_printf(b, "\\u%04x", *p);
            else da_buf_append(b, p, 1);
        }
    }
    da_buf_append(b, "\"", 1);
}

void da_buf_free(da_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

double da_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t da_utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    uint32_t c = s[0], need, min;
    if (c < 0x80) need = 0, min = 0;
    else if ((c & 0xE0) == 0xC0) need = 1, c &= 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) need = 2, c &= 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) need = 3, c &= 0x07, min = 0x10000;
    else return 0;
    if (len <= need) return 0;
    for (uint32_t k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        c = c << 6 | (s[k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c < 0xE000)) return 0;
    *cp = c;
    return need + 1;
}

long da_utf8_invalid_at(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        size_t k = da_utf8_next(u + i, len - i, &cp);
        if (!k) return (long)i;
        i += k;
    }
    return -1;
}
