/* safetensors.h - our own reader and writer for the safetensors format
 * (https://github.com/huggingface/safetensors: 8-byte little-endian header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {str: str}}, then the
 * data area; offsets are relative to the data area).
 *
 * The reader mmaps the file read-only and validates everything before trusting it: header length
 * vs file size, JSON syntax and depth, duplicate names, dtype names, shape rank and product,
 * data_offsets inside the data area, begin <= end, end - begin == numel * element size, and no two
 * tensors overlapping. Every error names the file, the tensor and the problem. Nothing is read
 * outside the mapping.
 */
#ifndef DA_SAFETENSORS_H
#define DA_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diffaug.h"

typedef enum da_dtype {
    DA_F64,
    DA_F32,
    DA_F16,
    DA_BF16,
    DA_I64,
    DA_I32,
    DA_I16,
    DA_I8,
    DA_U8,
    DA_BOOL,
    DA_F8_E4M3, /* "F8_E4M3" (fn: no infinities, 0x7f/0xff are NaN) */
    DA_F8_E5M2, /* "F8_E5M2" (IEEE-like, with infinities) */
    DA_DTYPE_COUNT
} da_dtype;

#define DA_ST_MAX_RANK 8

const char *da_dtype_name(da_dtype t);            /* "F32", "BF16", ... */
size_t da_dtype_size(da_dtype t);                 /* bytes per element */
bool da_dtype_from_name(const char *s, da_dtype *out);

typedef struct da_st_tensor {
    char *name;
    da_dtype dtype;
    int rank;
    int64_t shape[DA_ST_MAX_RANK];
    uint64_t numel;
    uint64_t nbytes;
    const void *data; /* points into the mapping (or into the caller's buffer) */
} da_st_tensor;

typedef struct da_st_file {
    char *path;
    void *map;          /* whole-file mapping from da_st_open (NULL for da_st_parse: the caller's buffer) */
    size_t map_len;
    uint64_t header_len;
    size_t n_tensors;
    da_st_tensor *tensors; /* in data-offset order */
    size_t n_meta;
    char **meta_keys;
    char **meta_values;
    size_t *by_name;    /* tensor indices sorted by name, so da_st_find is a binary search */
} da_st_file;

/* Open and validate; on failure *out is NULL and err names the file, the tensor and the problem. */
da_status da_st_open(const char *path, da_st_file **out, da_error *err);
/* The same validation over a buffer already in memory (used by the fuzzer and tests); the buffer
 * must outlive the returned file. label names it in messages. */
da_status da_st_parse(const void *buf, size_t len, const char *label, da_st_file **out, da_error *err);
void da_st_close(da_st_file *f);

const da_st_tensor *da_st_find(const da_st_file *f, const char *name);
const char *da_st_meta(const da_st_file *f, const char *key);

/* Convert n elements of any float or integer dtype to f32 (F8 both kinds, F16/BF16 exact, F64
 * rounded, integers converted, BOOL as 0/1). Reads src unaligned-safely. */
void da_convert_to_f32(da_dtype t, const void *src, float *dst, size_t n);
/* Copy a whole tensor to a new f32 buffer (caller frees). */
da_status da_st_tensor_to_f32(const da_st_tensor *t, float **out, da_error *err);

/* Writer: collect tensors, then write the file atomically (temporary name, then rename).
 * Tensors are written in the order added, 8-byte aligned data area, header padded with spaces. */
typedef struct da_st_writer da_st_writer;
da_st_writer *da_st_writer_new(void);
/* Copies name and shape; data is copied too when copy is true, otherwise it must stay valid
 * until da_st_writer_write returns. nbytes must equal numel * dtype size. */
da_status da_st_writer_add(da_st_writer *w, const char *name, da_dtype dtype, int rank, const int64_t *shape,
                           const void *data, size_t nbytes, bool copy, da_error *err);
/* Add a tensor whose bytes are produced later by a callback at write time (used to stream
 * multi-gigabyte random models without holding them in memory). fill(ctx, dst, nbytes). */
typedef da_status (*da_st_fill_fn)(void *ctx, void *dst, size_t nbytes, da_error *err);
da_status da_st_writer_add_lazy(da_st_writer *w, const char *name, da_dtype dtype, int rank, const int64_t *shape,
                                da_st_fill_fn fill, void *ctx, da_error *err);
da_status da_st_writer_meta(da_st_writer *w, const char *key, const char *value, da_error *err);
da_status da_st_writer_write(da_st_writer *w, const char *path, da_error *err);
void da_st_writer_free(da_st_writer *w);

#endif /* DA_SAFETENSORS_H */
