/* backend_guard.c - the "guard" backend: the CPU kernels behind the memory discipline of a device
 * backend, so that code written for CUDA can be proven on a machine without a GPU.
 *
 * Everything the backend owns (the arena blocks and scratch from mem_alloc, the adopted copies of
 * weights) lives in mmap'd regions that are PROT_NONE except while one of this backend's ops runs.
 * A network that reads or writes an activation or a weight directly from the host, instead of
 * through da_op_upload / da_op_download, therefore faults at once (SIGSEGV, reported with the
 * address by the handler installed here) instead of silently working as it would on the CPU backend
 * and crashing on a GPU. Every op also checks its arguments the other way round: each buffer an op
 * reads or writes must lie inside this backend's memory (a host pointer handed to an op would be an
 * illegal address on a GPU), and the host side of upload / download and gather_rows' ids must not.
 * Both checks are sticky DA_ERR_INVALID_ARG errors naming the op and the argument.
 *
 * The arithmetic is exactly the CPU backend's (the ops forward to an inner CPU backend sharing this
 * one's scratch), so a forward on "guard" is bit-identical to the same forward on "cpu": the parity
 * tests (tests/test_backend_guard.c) compare them byte for byte. Not for production: every op costs
 * two mprotect calls per region.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "util.h"

typedef struct gregion {
    char *p;
    size_t len; /* mapped bytes (pages) */
    size_t used; /* weight pools: bytes handed out */
    bool pool;
} gregion;

typedef struct guard_backend {
    da_backend base; /* first: a da_backend * is a guard_backend * */
    da_backend *cpu; /* the kernels; its ws is pointed at ours for each op */
    gregion *r;
    size_t n, cap;
    int open; /* >0 while an op runs: regions are readable and writable */
} guard_backend;

#define POOL_BYTES ((size_t)64 << 20) /* weights are packed into pools of at least this size */

static guard_backend *gb(da_backend *be) { return (guard_backend *)be; }
static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

/* ---- the fault report ------------------------------------------------------------------------- */

/* Regions of every live guard backend, for the SIGSEGV message (a fixed table: the handler must not
 * allocate or lock). */
#define MAX_TRACKED 4096
static struct {
    char *p;
    size_t len;
} tracked[MAX_TRACKED];
static volatile sig_atomic_t handler_installed;
static struct sigaction prev_segv;

static void track(char *p, size_t len) {
    for (int i = 0; i < MAX_TRACKED; i++)
        if (!tracked[i].p) {
            tracked[i].len = len;
            tracked[i].p = p;
            return;
        }
}
static void untrack(char *p) {
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i].p == p) tracked[i].p = NULL;
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
    char *a = si ? (char *)si->si_addr : NULL;
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i].p && a >= tracked[i].p && a < tracked[i].p + tracked[i].len) {
            static const char msg[] = "guard backend: host access to backend memory outside a da_op_* call "
                                      "(a network read or wrote an activation or weight directly; on a GPU this "
                                      "would be an illegal access)\n";
            ssize_t rc = write(2, msg, sizeof msg - 1);
            (void)rc;
            break;
        }
    /* the previous disposition (default: a core, or Check's signal report; or a sanitizer's handler) takes
     * the fault again when the instruction re-executes on return */
    sigaction(sig, &prev_segv, NULL);
}

static void install_handler(void) {
    if (handler_installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    handler_installed = 1;
}

/* ---- regions ---------------------------------------------------------------------------------- */

static void protect_all(guard_backend *g, int prot) {
    for (size_t i = 0; i < g->n; i++) mprotect(g->r[i].p, g->r[i].len, prot);
}

static void enter(da_backend *be) {
    guard_backend *g = gb(be);
    if (g->open++ == 0) protect_all(g, PROT_READ | PROT_WRITE);
    g->cpu->ws = be->ws;
    g->cpu->ws_bytes = be->ws_bytes;
}

/* Close the regions again and move an error of the inner CPU backend to this one. */
static void leave(da_backend *be) {
    guard_backend *g = gb(be);
    if (--g->open == 0) protect_all(g, PROT_NONE);
    if (g->cpu->st) {
        da_error e;
        da_status st = da_backend_take_error(g->cpu, &e);
        da_backend_fail(be, st, "%s", e.msg);
    }
}

static gregion *add_region(guard_backend *g, size_t len, bool pool) {
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        gregion *r = realloc(g->r, cap * sizeof *r);
        if (!r) return NULL;
        g->r = r;
        g->cap = cap;
    }
    size_t ps = page_size();
    len = (len + ps - 1) / ps * ps;
    if (!len) len = ps;
    /* mapped readable now when an op is running (the arena's block may be allocated mid-run by a
     * test), PROT_NONE otherwise */
    void *p = mmap(NULL, len, g->open ? PROT_READ | PROT_WRITE : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) return NULL;
    gregion *r = &g->r[g->n++];
    *r = (gregion){p, len, 0, pool};
    track(p, len);
    return r;
}

static bool inside(const guard_backend *g, const void *p, size_t bytes) {
    const char *c = p;
    for (size_t i = 0; i < g->n; i++)
        if (c >= g->r[i].p && c <= g->r[i].p + g->r[i].len && bytes <= (size_t)(g->r[i].p + g->r[i].len - c))
            return true;
    return false;
}
static bool overlaps(const guard_backend *g, const void *p, size_t bytes) {
    const char *c = p;
    for (size_t i = 0; i < g->n; i++)
        if (c < g->r[i].p + g->r[i].len && c + bytes > g->r[i].p) return true;
    return false;
}

/* A device-side argument: must lie entirely in this backend's memory. */
static bool dev(da_backend *be, const char *op, const char *arg, const void *p, size_t bytes) {
    if (be->st) return false;
    if (!bytes) return true;
    if (p && inside(gb(be), p, bytes)) return true;
    da_backend_fail(be, DA_ERR_INVALID_ARG,
                    "guard %s: argument '%s' (%p, %zu bytes) is not backend memory (a host pointer passed to an op; "
                    "a device backend would fault)",
                    op, arg, p, bytes);
    return false;
}
/* A host-side argument (upload source, download destination, gather ids): must not be ours. */
static bool host(da_backend *be, const char *op, const char *arg, const void *p, size_t bytes) {
    if (be->st) return false;
    if (!bytes || !overlaps(gb(be), p, bytes)) return true;
    da_backend_fail(be, DA_ERR_INVALID_ARG,
                    "guard %s: host argument '%s' (%p) points into backend memory (upload / download need host "
                    "memory on one side)",
                    op, arg, p);
    return false;
}

#define F(n) ((n) * sizeof(float))

/* ---- ops ---------------------------------------------------------------------------------------- */

static size_t guard_linear_ws(int M, int N, int K);
static size_t guard_conv2d_ws(const dk_conv2d *s);
static size_t guard_attention_ws(const dk_attn_params *p);

static const da_backend_ops *cpu_table(void) {
    static const da_backend_ops *t;
    if (!t) {
        da_backend *c = da_backend_cpu_new();
        if (c) {
            t = c->ops;
            da_backend_free(c);
        }
    }
    return t;
}
static size_t guard_linear_ws(int M, int N, int K) { return cpu_table()->linear_ws(M, N, K); }
static size_t guard_conv2d_ws(const dk_conv2d *s) { return cpu_table()->conv2d_ws(s); }
static size_t guard_attention_ws(const dk_attn_params *p) { return cpu_table()->attention_ws(p); }

static size_t wbytes(const da_w *w, size_t n) { return n * dk_wtype_size(w->t); }

static da_status guard_linear(da_backend *be, int M, int N, int K, const float *x, const da_w *w, const float *bias,
                              float *y) {
    if (!dev(be, "linear", "x", x, F((size_t)M * K)) || !dev(be, "linear", "weight", w->p, wbytes(w, (size_t)N * K)) ||
        (bias && !dev(be, "linear", "bias", bias, F((size_t)N))) || !dev(be, "linear", "y", y, F((size_t)M * N)) ||
        (be->ws_bytes && !dev(be, "linear", "scratch", be->ws, be->ws_bytes)))
        return be->st;
    enter(be);
    gb(be)->cpu->ops->linear(gb(be)->cpu, M, N, K, x, w, bias, y);
    leave(be);
    return be->st;
}

static da_status guard_conv2d(da_backend *be, const dk_conv2d *s, const float *x, const da_w *w, const float *bias,
                              float *y) {
    int OH = (s->H + s->pad_t + s->pad_b - s->dil_h * (s->KH - 1) - 1) / s->stride_h + 1;
    int OW = (s->W + s->pad_l + s->pad_r - s->dil_w * (s->KW - 1) - 1) / s->stride_w + 1;
    if (!dev(be, "conv2d", "x", x, F((size_t)s->N * s->C * s->H * s->W)) ||
        !dev(be, "conv2d", "weight", w->p, wbytes(w, (size_t)s->OC * s->C * s->KH * s->KW)) ||
        (bias && !dev(be, "conv2d", "bias", bias, F((size_t)s->OC))) ||
        (OH > 0 && OW > 0 && !dev(be, "conv2d", "y", y, F((size_t)s->N * s->OC * OH * OW))))
        return be->st;
    enter(be);
    gb(be)->cpu->ops->conv2d(gb(be)->cpu, s, x, w, bias, y);
    leave(be);
    return be->st;
}

static da_status guard_attention(da_backend *be, const dk_attn_params *p, const float *q, const float *k,
                                 const float *v, float *o) {
    /* the extent of each operand under its strides (zero strides: packed, as kernels/cpu/attention.c) */
    size_t row = (size_t)p->heads * p->head_dim;
    size_t qr = p->q_row ? p->q_row : row, kr = p->k_row ? p->k_row : row, vr = p->v_row ? p->v_row : row;
    size_t orow = p->o_row ? p->o_row : row;
    size_t qb = p->q_batch ? p->q_batch : (size_t)p->nq * qr, kb = p->k_batch ? p->k_batch : (size_t)p->nk * kr;
    size_t vb = p->v_batch ? p->v_batch : (size_t)p->nk * vr, ob = p->o_batch ? p->o_batch : (size_t)p->nq * orow;
    size_t B1 = p->batch > 0 ? (size_t)p->batch - 1 : 0, nq1 = p->nq > 0 ? (size_t)p->nq - 1 : 0;
    size_t nk1 = p->nk > 0 ? (size_t)p->nk - 1 : 0;
    if (!dev(be, "attention", "q", q, F(B1 * qb + nq1 * qr + row)) ||
        !dev(be, "attention", "k", k, F(B1 * kb + nk1 * kr + row)) ||
        !dev(be, "attention", "v", v, F(B1 * vb + nk1 * vr + row)) ||
        !dev(be, "attention", "o", o, F(B1 * ob + nq1 * orow + row)))
        return be->st;
    enter(be);
    gb(be)->cpu->ops->attention(gb(be)->cpu, p, q, k, v, o);
    leave(be);
    return be->st;
}

static void guard_groupnorm(da_backend *be, float *y, const float *x, const dk_groupnorm_params *p) {
    size_t n = p->N * p->C * p->HW, cb = p->C * dk_wtype_size(p->wtype);
    if (!dev(be, "groupnorm", "x", x, F(n)) || !dev(be, "groupnorm", "y", y, F(n)) ||
        (p->gamma && !dev(be, "groupnorm", "gamma", p->gamma, cb)) ||
        (p->beta && !dev(be, "groupnorm", "beta", p->beta, cb)))
        return;
    enter(be);
    gb(be)->cpu->ops->groupnorm(gb(be)->cpu, y, x, p);
    leave(be);
}

static void guard_layernorm(da_backend *be, float *y, const float *x, size_t M, size_t D, float eps, const float *g,
                            const float *b) {
    if (!dev(be, "layernorm", "x", x, F(M * D)) || !dev(be, "layernorm", "y", y, F(M * D)) ||
        (g && !dev(be, "layernorm", "gamma", g, F(D))) || (b && !dev(be, "layernorm", "beta", b, F(D))))
        return;
    enter(be);
    gb(be)->cpu->ops->layernorm(gb(be)->cpu, y, x, M, D, eps, g, b);
    leave(be);
}

static void guard_act(da_backend *be, da_act kind, float *y, const float *x, size_t n) {
    if (!dev(be, "act", "x", x, F(n)) || !dev(be, "act", "y", y, F(n))) return;
    enter(be);
    gb(be)->cpu->ops->act(gb(be)->cpu, kind, y, x, n);
    leave(be);
}

static void guard_geglu(da_backend *be, float *y, const float *x, size_t M, size_t Fd) {
    if (!dev(be, "geglu", "x", x, F(M * 2 * Fd)) || !dev(be, "geglu", "y", y, F(M * Fd))) return;
    enter(be);
    gb(be)->cpu->ops->geglu(gb(be)->cpu, y, x, M, Fd);
    leave(be);
}

static void guard_add(da_backend *be, float *y, const float *a, const float *b, size_t n) {
    if (!dev(be, "add", "a", a, F(n)) || !dev(be, "add", "b", b, F(n)) || !dev(be, "add", "y", y, F(n))) return;
    enter(be);
    gb(be)->cpu->ops->add(gb(be)->cpu, y, a, b, n);
    leave(be);
}

static void guard_mul(da_backend *be, float *y, const float *a, const float *b, size_t n) {
    if (!dev(be, "mul", "a", a, F(n)) || !dev(be, "mul", "b", b, F(n)) || !dev(be, "mul", "y", y, F(n))) return;
    enter(be);
    gb(be)->cpu->ops->mul(gb(be)->cpu, y, a, b, n);
    leave(be);
}

static void guard_scale(da_backend *be, float *y, const float *x, float s, float t, size_t n) {
    if (!dev(be, "scale", "x", x, F(n)) || !dev(be, "scale", "y", y, F(n))) return;
    enter(be);
    gb(be)->cpu->ops->scale(gb(be)->cpu, y, x, s, t, n);
    leave(be);
}

static void guard_add_channel_bias(da_backend *be, float *y, const float *x, const float *bias, size_t N, size_t C,
                                   size_t HW) {
    if (!dev(be, "add_channel_bias", "x", x, F(N * C * HW)) || !dev(be, "add_channel_bias", "y", y, F(N * C * HW)) ||
        !dev(be, "add_channel_bias", "bias", bias, F(C)))
        return;
    enter(be);
    gb(be)->cpu->ops->add_channel_bias(gb(be)->cpu, y, x, bias, N, C, HW);
    leave(be);
}

static void guard_add_row(da_backend *be, float *y, const float *x, const float *row, size_t M, size_t N) {
    if (!dev(be, "add_row", "x", x, F(M * N)) || !dev(be, "add_row", "y", y, F(M * N)) ||
        !dev(be, "add_row", "row", row, F(N)))
        return;
    enter(be);
    gb(be)->cpu->ops->add_row(gb(be)->cpu, y, x, row, M, N);
    leave(be);
}

static void guard_upsample2x(da_backend *be, float *y, const float *x, size_t N, size_t C, size_t H, size_t W) {
    if (!dev(be, "upsample2x", "x", x, F(N * C * H * W)) || !dev(be, "upsample2x", "y", y, F(N * C * H * W * 4)))
        return;
    enter(be);
    gb(be)->cpu->ops->upsample2x(gb(be)->cpu, y, x, N, C, H, W);
    leave(be);
}

static void guard_concat(da_backend *be, float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N,
                         size_t HW) {
    if (!dev(be, "concat_channels", "a", a, F(N * Ca * HW)) || !dev(be, "concat_channels", "b", b, F(N * Cb * HW)) ||
        !dev(be, "concat_channels", "y", y, F(N * (Ca + Cb) * HW)))
        return;
    enter(be);
    gb(be)->cpu->ops->concat_channels(gb(be)->cpu, y, a, Ca, b, Cb, N, HW);
    leave(be);
}

static void guard_temb(da_backend *be, float *y, const float *t, size_t B, const dk_temb_params *p) {
    if (!dev(be, "timestep_embedding", "timesteps", t, F(B)) ||
        !dev(be, "timestep_embedding", "y", y, F(B * (size_t)p->dim)))
        return;
    enter(be);
    gb(be)->cpu->ops->timestep_embedding(gb(be)->cpu, y, t, B, p);
    leave(be);
}

static void guard_transpose(da_backend *be, float *y, const float *x, size_t B, size_t M, size_t N) {
    if (!dev(be, "transpose", "x", x, F(B * M * N)) || !dev(be, "transpose", "y", y, F(B * M * N))) return;
    enter(be);
    gb(be)->cpu->ops->transpose(gb(be)->cpu, y, x, B, M, N);
    leave(be);
}

static void guard_gather_rows(da_backend *be, float *y, const da_w *table, const int32_t *ids, size_t n, size_t D) {
    if (!dev(be, "gather_rows", "y", y, F(n * D)) || !dev(be, "gather_rows", "table", table->p, wbytes(table, D)) ||
        !host(be, "gather_rows", "ids", ids, n * sizeof *ids))
        return;
    enter(be);
    gb(be)->cpu->ops->gather_rows(gb(be)->cpu, y, table, ids, n, D);
    leave(be);
}

static void guard_copy(da_backend *be, float *dst, const float *src, size_t n) {
    if (!dev(be, "copy", "src", src, F(n)) || !dev(be, "copy", "dst", dst, F(n))) return;
    enter(be);
    gb(be)->cpu->ops->copy(gb(be)->cpu, dst, src, n);
    leave(be);
}

static void guard_upload(da_backend *be, float *dst, const float *hsrc, size_t n) {
    if (!dev(be, "upload", "dst", dst, F(n)) || !host(be, "upload", "host", hsrc, F(n))) return;
    enter(be);
    memcpy(dst, hsrc, F(n));
    leave(be);
}

static void guard_download(da_backend *be, float *hdst, const float *src, size_t n) {
    if (!dev(be, "download", "src", src, F(n)) || !host(be, "download", "host", hdst, F(n))) return;
    enter(be);
    memcpy(hdst, src, F(n));
    leave(be);
}

static void *guard_mem_alloc(da_backend *be, size_t bytes) {
    gregion *r = add_region(gb(be), bytes, false);
    return r ? r->p : NULL;
}

static void guard_mem_free(da_backend *be, void *p) {
    guard_backend *g = gb(be);
    if (!p) return;
    for (size_t i = 0; i < g->n; i++)
        if (g->r[i].p == p && !g->r[i].pool) {
            untrack(p);
            munmap(p, g->r[i].len);
            g->r[i] = g->r[--g->n];
            return;
        }
}

/* Weights are copied into pools (a few mappings instead of one per tensor), 64-byte aligned. */
static da_status guard_adopt(da_backend *be, da_w *w, size_t bytes) {
    guard_backend *g = gb(be);
    if (!w->p || !bytes) return DA_OK;
    size_t need = (bytes + 63) / 64 * 64;
    gregion *pool = NULL;
    for (size_t i = g->n; i-- > 0;)
        if (g->r[i].pool && g->r[i].len - g->r[i].used >= need) {
            pool = &g->r[i];
            break;
        }
    if (!pool && !(pool = add_region(g, need > POOL_BYTES ? need : POOL_BYTES, true)))
        return da_backend_fail(be, DA_ERR_NOMEM, "guard adopt_weight: cannot map %zu bytes", need);
    pool->used += need;
    char *d = pool->p + pool->used - need;
    if (overlaps(g, w->p, bytes))
        return da_backend_fail(be, DA_ERR_INVALID_ARG, "guard adopt_weight: the weight is already backend memory");
    enter(be);
    memcpy(d, w->p, bytes);
    leave(be);
    w->p = d;
    return DA_OK;
}

static void guard_destroy(da_backend *be) {
    guard_backend *g = gb(be);
    for (size_t i = 0; i < g->n; i++) {
        untrack(g->r[i].p);
        munmap(g->r[i].p, g->r[i].len);
    }
    free(g->r);
    g->cpu->ws = NULL; /* our scratch, unmapped above */
    g->cpu->ws_bytes = 0;
    da_backend_free(g->cpu);
    free(g);
}

static const da_backend_ops guard_ops = {
    .name = "guard",
    .linear_ws = guard_linear_ws,
    .conv2d_ws = guard_conv2d_ws,
    .attention_ws = guard_attention_ws,
    .linear = guard_linear,
    .conv2d = guard_conv2d,
    .attention = guard_attention,
    .groupnorm = guard_groupnorm,
    .layernorm = guard_layernorm,
    .act = guard_act,
    .geglu = guard_geglu,
    .add = guard_add,
    .mul = guard_mul,
    .scale = guard_scale,
    .add_channel_bias = guard_add_channel_bias,
    .add_row = guard_add_row,
    .upsample2x = guard_upsample2x,
    .concat_channels = guard_concat,
    .timestep_embedding = guard_temb,
    .transpose = guard_transpose,
    .gather_rows = guard_gather_rows,
    .copy = guard_copy,
    .upload = guard_upload,
    .download = guard_download,
    .mem_alloc = guard_mem_alloc,
    .mem_free = guard_mem_free,
    .adopt_weight = guard_adopt,
    .destroy = guard_destroy,
};

da_backend *da_backend_guard_new(da_error *err) {
    guard_backend *g = calloc(1, sizeof *g);
    if (!g || !cpu_table() || !(g->cpu = da_backend_cpu_new())) {
        free(g);
        da_err_set(err, DA_ERR_NOMEM, "cannot allocate the guard backend");
        return NULL;
    }
    g->base.ops = &guard_ops;
    install_handler();
    return &g->base;
}
