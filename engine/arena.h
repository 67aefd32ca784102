/* arena.h - activation memory sized before a run, allocated once, handed out with mark/reset.
 *
 * A network forward runs twice: first with the arena (and the backend) in planning mode, where
 * allocations only advance an offset and record the high-water mark, then for real into one block
 * of exactly that size. Both passes execute the same code, so the size cannot drift from the
 * forward's real needs, and no allocation happens inside a forward.
 */
#ifndef DA_ARENA_H
#define DA_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "diffaug.h"

#define DA_ARENA_ALIGN 64

typedef struct da_arena {
    char *base;     /* NULL while planning */
    size_t cap;     /* bytes usable at base */
    size_t off;     /* bytes handed out */
    size_t peak;    /* high-water mark of off */
    bool planning;  /* allocations are counted, not backed */
    bool overflow;  /* an allocation did not fit (a bug: the plan was smaller than the run) */
    /* Where the block lives: NULL = host memory (aligned_alloc); a backend sets these (backend.h
     * da_arena_on_backend) to put activations in device memory. Kept across plan / free. */
    void *(*block_alloc)(void *ctx, size_t bytes);
    void (*block_free)(void *ctx, void *p);
    void *block_ctx;
} da_arena;

/* Start counting (no memory). */
void da_arena_plan(da_arena *a);
/* Allocate the block for the planned peak (plus extra bytes) and switch to real mode. */
da_status da_arena_commit(da_arena *a, size_t extra, da_error *err);
void da_arena_free(da_arena *a);

/* bytes rounded up to DA_ARENA_ALIGN. Planning: returns a non-NULL placeholder that must never be
 * dereferenced (planning-mode backends compute nothing). Real mode: NULL and a.overflow when the
 * block is exhausted. */
void *da_arena_alloc(da_arena *a, size_t bytes);
/* Convenience for float buffers. */
static inline float *da_arena_floats(da_arena *a, size_t n) { return (float *)da_arena_alloc(a, n * sizeof(float)); }

static inline size_t da_arena_mark(const da_arena *a) { return a->off; }
static inline void da_arena_reset(da_arena *a, size_t mark) { a->off = mark; }

#endif
