/* backend.c - choosing a backend by name (backend.h da_backend_new) and the pieces shared by every
 * backend that are not kernel tables: placing an arena's block in backend memory. Compiled in both
 * builds; the CUDA constructor is referenced only when DIFFAUG_HAVE_CUDA is defined. */
#include <stdbool.h>
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
    if (!strcmp(name, "guard")) return da_backend_guard_new(err);
    int is_auto = !strcmp(name, "auto");
    int device = 0;
    if (!is_auto) {
        if (strncmp(name, "cuda", 4) != 0 || (name[4] != 0 && name[4] != ':')) {
            da_err_set(err, DA_ERR_INVALID_ARG, "unknown backend '%s' (expected cpu, cuda, cuda:N, auto or guard)", name);
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
    bool host = !be->ops->mem_alloc || !be->ops->mem_free; /* host memory: the arena's default */
    void *(*ba)(void *, size_t) = host ? NULL : arena_block_alloc;
    void (*bf)(void *, void *) = host ? NULL : arena_block_free;
    void *ctx = host ? NULL : be;
    if (a->block_alloc == ba && a->block_free == bf && a->block_ctx == ctx) return;
    da_arena_free(a); /* a block from the previous allocator goes back to it */
    a->block_alloc = ba;
    a->block_free = bf;
    a->block_ctx = ctx;
}

da_status da_backend_check_weights(const da_backend *wbe, const da_backend *be, const char *what, da_error *err) {
    bool whost = !wbe || !wbe->ops->mem_alloc; /* host views, or copies a host-memory backend made */
    if (wbe == be || (whost && !be->ops->mem_alloc)) return DA_OK;
    if (!wbe)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: the weights are host memory (loaded without a backend) but the "
                          "forward runs on the %s backend; load with the *_load_on variant and that backend",
                          what, be->ops->name);
    return da_err_set(err, DA_ERR_INVALID_ARG, "%s: the weights were placed on a %s backend, the forward runs on a "
                      "different %s backend", what, wbe->ops->name, be->ops->name);
}

da_status da_plan_and_run(da_backend *be, const da_backend *wbe, da_arena *a, da_forward_fn fwd, const void *ctx,
                          const char *what, da_error *err) {
    if (be->st) return da_backend_take_error(be, err);
    if (da_backend_check_weights(wbe, be, what, err)) return err->code;
    da_arena_on_backend(a, be); /* activations in backend memory (frees a block of another allocator) */
    da_arena plan = {0}; /* counts only: never allocates */
    da_arena_plan(&plan);
    da_backend_plan(be);
    fwd(ctx, be, &plan);
    size_t need = plan.peak;
    bool overflow = plan.overflow;
    da_arena_free(&plan);
    if (da_backend_commit(be, err)) return err->code;
    if (overflow) return da_err_set(err, DA_ERR_OVERFLOW, "%s: activation size overflows", what);
    /* keep the caller's block when it is big enough: repeated calls allocate nothing */
    if (a->planning || !a->base || a->cap < need) {
        da_arena_free(a);
        a->peak = need;
        if (da_arena_commit(a, 0, err)) return err->code;
    }
    a->off = 0;
    a->overflow = false;
    fwd(ctx, be, a);
    if (be->st) return da_backend_take_error(be, err);
    if (a->overflow)
        return da_err_set(err, DA_ERR_OVERFLOW, "%s: activation arena overflow (the plan was smaller than the run)",
                          what);
    return DA_OK;
}
