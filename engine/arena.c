/* arena.c - planned activation arena (see arena.h). */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* What planning-mode allocations point at: a valid address nobody writes through. */
static _Alignas(DA_ARENA_ALIGN) char plan_placeholder[DA_ARENA_ALIGN];

void da_arena_plan(da_arena *a) {
    da_arena_free(a);
    a->planning = true;
}

da_status da_arena_commit(da_arena *a, size_t extra, da_error *err) {
    size_t bytes;
    if (!da_add_size(a->peak, extra, &bytes) || !da_add_size(bytes, DA_ARENA_ALIGN, &bytes))
        return da_err_set(err, DA_ERR_OVERFLOW, "activation arena: size overflow");
    bytes = bytes / DA_ARENA_ALIGN * DA_ARENA_ALIGN;
    char *p = a->block_alloc ? a->block_alloc(a->block_ctx, bytes) : aligned_alloc(DA_ARENA_ALIGN, bytes);
    if (!p)
        return da_err_set(err, DA_ERR_NOMEM, "activation arena: cannot allocate %.1f MiB%s", bytes / 1048576.0,
                          a->block_alloc ? " of backend memory" : "");
    if (a->block_free) a->block_free(a->block_ctx, a->base);
    else free(a->base);
    a->base = p;
    a->cap = bytes;
    a->off = 0;
    a->planning = false;
    a->overflow = false;
    return DA_OK;
}

void da_arena_free(da_arena *a) {
    void *(*ba)(void *, size_t) = a->block_alloc;
    void (*bf)(void *, void *) = a->block_free;
    void *ctx = a->block_ctx;
    if (bf) bf(ctx, a->base);
    else free(a->base);
    memset(a, 0, sizeof *a);
    a->block_alloc = ba, a->block_free = bf, a->block_ctx = ctx;
}

void *da_arena_alloc(da_arena *a, size_t bytes) {
    size_t n = (bytes + DA_ARENA_ALIGN - 1) / DA_ARENA_ALIGN * DA_ARENA_ALIGN;
    if (n < bytes) {
        a->overflow = true;
        return NULL;
    }
    if (a->planning) {
        a->off += n;
        if (a->off > a->peak) a->peak = a->off;
        return plan_placeholder;
    }
    if (n > a->cap - a->off) {
        a->overflow = true;
        return NULL;
    }
    void *p = a->base + a->off;
    a->off += n;
    if (a->off > a->peak) a->peak = a->off;
    return p;
}
