/* diffaug.h - the public API of the diffaug engine.
 *
 * One header, opaque handles, params structs with _init() defaults, named status codes and a
 * per-call error record that carries a message naming the file, the tensor and the problem.
 * The library never calls exit(); only tools do.
 */
#ifndef DIFFAUG_H
#define DIFFAUG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIFFAUG_VERSION "0.1.0"

typedef enum da_status {
    DA_OK = 0,
    DA_ERR_INVALID_ARG,   /* a caller passed something that cannot be right */
    DA_ERR_IO,            /* open/read/write/rename/mmap failed (errno text in the message) */
    DA_ERR_NOMEM,         /* an allocation failed */
    DA_ERR_FORMAT,        /* a file is not of the expected format (bad header, bad JSON, ...) */
    DA_ERR_TRUNCATED,     /* a file ends before the data its header promises */
    DA_ERR_OVERFLOW,      /* a size computation would overflow */
    DA_ERR_BOUNDS,        /* an offset or range lies outside its container */
    DA_ERR_DUPLICATE,     /* a name appears twice */
    DA_ERR_DTYPE,         /* an unknown or unsupported dtype */
    DA_ERR_SHAPE,         /* a shape is invalid or does not match what is expected */
    DA_ERR_NOT_FOUND,     /* a tensor, key or file that must exist does not */
    DA_ERR_UNSUPPORTED,   /* valid input this version does not handle (e.g. SDXL today) */
    DA_ERR_OVERLAP,       /* two tensors share bytes of the data area */
    DA_ERR_CUDA,          /* a CUDA or cuBLAS call failed, or CUDA is not available */
    DA_ERR_IMAGE,         /* an image file is corrupt or of an unsupported kind */
    DA_ERR_INTERRUPTED,   /* the user asked to stop */
    DA_STATUS_COUNT
} da_status;

/* A short, stable name for a status ("format", "truncated", ...). */
const char *da_status_name(da_status s);

/* The error record every fallible call fills. msg names the file, the tensor and the problem. */
typedef struct da_error {
    da_status code;
    char msg[1024];
} da_error;

#ifdef __cplusplus
}
#endif
#endif /* DIFFAUG_H */
