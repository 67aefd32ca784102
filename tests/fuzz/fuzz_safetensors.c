/* fuzz_safetensors.c - libFuzzer target for the safetensors reader (engine/safetensors.c) and the
 * JSON reader under it: parse the input as a whole file, then touch everything a loader would
 * (every tensor converted to f32, every metadata entry, lookups by name), so ASan/UBSan see any
 * read the validation failed to guard.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy sized exactly, so an over-read lands in ASan's redzone */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    da_st_file *f = NULL;
    da_error err;
    if (da_st_parse(buf, size, "fuzz", &f, &err) == DA_OK) {
        volatile float sink = 0;
        for (size_t i = 0; i < f->n_tensors; i++) {
            const da_st_tensor *t = &f->tensors[i];
            /* header-declared sizes are proven to lie inside the buffer, so this is bounded by size */
            float *v = NULL;
            if (da_st_tensor_to_f32(t, &v, &err) == DA_OK) {
                for (uint64_t k = 0; k < t->numel; k++) sink += v[k];
                free(v);
            }
            if (da_st_find(f, t->name) == NULL) abort(); /* every tensor must be findable by name */
        }
        for (size_t i = 0; i < f->n_meta; i++) {
            const char *v = da_st_meta(f, f->meta_keys[i]);
            if (!v) abort();
            sink += (float)strlen(v);
        }
        (void)sink;
        da_st_close(f);
    } else if (f != NULL || err.msg[0] == 0) {
        abort(); /* a failure must leave no file and say why */
    }
    free(buf);
    return 0;
}
