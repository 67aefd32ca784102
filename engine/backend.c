/* backend.c - choosing a backend by name (backend.h da_backend_new) and the pieces shared by every
 * backend that are not kernel tables: placing an arena's block in backend memory. Compiled in both
 * builds; the CUDA constructor is referenced only when DIFFAUG_HAVE_CUDA is defined. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"
#ifdef DIFFAUG_HAVE_CUDA
#include "dcuda.h"
#endif

da_backend *da_backend_new(const char *name, da_error *err) {
    if (!name || !strcmp(name, "cpu")) {
        da_backend *be = da_backend_cpu_new();
        if (!be) da_err_set(err, DA_ERR_NOMEM, "cannot allocate the CPU backend");
        return be;
    }
    int is_auto = !strcmp(name, "auto");
    int device = 0;
    if (!is_auto) {
        if (strncmp(name, "cuda", 4) != 0 || (name[4] != 0 && name[4] != ':')) {
            da_err_set(err, DA_ERR_INVALID_ARG, "unknown backend '%s' (expected cpu, cuda, cuda:N or auto)", name);
            return NULL;
        }
        if (name[4] == ':') {
            char *end;
            long v = strtol(name + 5, &end, 10);
            if (end == name + 5 || *end || v < 0 || v > 1024) {
                da_err_set(err, DA_ERR_INVALID_ARG, "backend '%s': bad device number", name);
                return NULL;
            }
            device = (int)v;
        }
    }
#ifdef DIFFAUG_HAVE_CUDA
    if (is_auto) {
        int n = 0;
        char msg[256];
        if (dcu_device_count(&n, msg, sizeof msg) != 0 || n == 0) return da_backend_new("cpu", err);
    }
    return da_backend_cuda_new(device, err);
#else
    (void)device;
    if (is_auto) return da_backend_new("cpu", err);
    da_err_set(err, DA_ERR_CUDA, "backend '%s': this build has no CUDA backend (nvcc was not found at build time)",
               name);
    return NULL;
#endif
}

static void *arena_block_alloc(void *ctx, size_t bytes) {
    da_backend *be = ctx;
    return be->ops->mem_alloc(be, bytes);
}
static void arena_block_free(void *ctx, void *p) {
    da_backend *be = ctx;
    be->ops->mem_free(be, p);
}

void da_arena_on_backend(da_arena *a, da_backend *be) {
    if (!be->ops->mem_alloc || !be->ops->mem_free) return; /* host memory: the arena's default */
    a->block_alloc = arena_block_alloc;
    a->block_free = arena_block_free;
    a->block_ctx = be;
}
