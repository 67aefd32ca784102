/* attention.c - flash-style attention on the CPU (see attention.h for the layout and the
 * upstream definition, torch scaled_dot_product_attention).
 *
 * First K and V are packed, once per (batch, head, key tile of BK keys), into the workspace:
 * K^T [d][BK] and V [BK][dpad] (dpad = d rounded up to 16, zero-filled), so the micro-kernels read
 * unit-stride vectors whatever the caller's strides. Then the work unit is one (batch, head, query
 * tile of BQ rows); for each key tile:
 *   1. (packed already);
 *   2. S = (scale*Q) K^T with a 4-row x up-to-64-key register block (16 zmm accumulators, one K^T
 *      vector load feeds 4 FMAs, Q broadcast from L1); BK = 128 keys as two such column groups;
 *   3. online softmax per row: m' = max(m, rowmax S), P = exp(S - m'), l = l*exp(m - m') + sum P,
 *      O *= exp(m - m') - the running-max form that keeps every exp argument <= 0;
 *   4. O += P V with a 4-row x up-to-96-column register block (24 accumulators), d split into
 *      near-equal chunks of at most 6 vectors (40 -> 3, 80 -> 5, 160 -> 5+5, 512 -> 6,6,5,5,5,5);
 *      for d <= 48 an 8-row x 3-vector block instead (also 24 accumulators, one V load per 8 FMAs).
 * At the end O is divided by l and written out. Memory: the caller's O(N*d) tensors, the packed
 * copy of K and V (B*H*Nk*(d + dpad) floats, rounded up to whole key tiles) and
 * BQ*(d + BK + dpad) floats per thread - never anything of size Nq*Nk.
 *
 * Parallel over all (batch, head, query tile) units, dynamic schedule (causal tiles differ in
 * cost). A unit's arithmetic does not depend on which thread runs it, so results are
 * bit-identical for any thread count.
 *
 * Numerics: f32 products and sums (as torch's CPU kernel), exp from nn_vec.h (~2 ulp); the scale
 * is folded into Q (one rounding of q*scale instead of one of the dot product).
 */
#include "attention.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn_vec.h"

#define AT_BK 128 /* 8 vectors: SD's 77 text tokens fit one key tile */

typedef struct at_tiles {
    int bq, bk, dpad;
    size_t q_off, s_off, o_off, m_off, l_off, floats; /* per-thread layout */
    size_t kt_tile, v_tile;                           /* floats of one packed key tile */
} at_tiles;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static at_tiles at_plan(int d) {
    at_tiles t;
    t.dpad = (int)round16((size_t)d);
    t.bk = AT_BK;
    /* keep one thread's tiles (~0.8 MB at the VAE's d = 512) inside a 1-2 MB L2 */
    t.bq = t.dpad > 256 ? 32 : 64;
    size_t off = 0;
    t.q_off = off, off += round16((size_t)t.bq * d);
    t.s_off = off, off += (size_t)t.bq * t.bk;
    t.o_off = off, off += (size_t)t.bq * t.dpad;
    t.m_off = off, off += round16((size_t)t.bq);
    t.l_off = off, off += round16((size_t)t.bq);
    t.floats = off;
    t.kt_tile = round16((size_t)d * t.bk);
    t.v_tile = (size_t)t.bk * t.dpad;
    return t;
}

/* Floats of the shared packed K^T / V of every (batch, head): O(B * H * Nk * d). */
static size_t at_packed_floats(const dk_attn_params *p, const at_tiles *t) {
    size_t nkt = ((size_t)p->nk + t->bk - 1) / t->bk;
    return (size_t)p->batch * p->heads * nkt * (t->kt_tile + t->v_tile);
}

dk_attn_params dk_attn_params_packed(int batch, int heads, int nq, int nk, int head_dim, int causal) {
    dk_attn_params p;
    memset(&p, 0, sizeof p);
    p.batch = batch, p.heads = heads, p.nq = nq, p.nk = nk, p.head_dim = head_dim, p.causal = causal;
    p.scale = head_dim > 0 ? (float)(1.0 / sqrt((double)head_dim)) : 1.0f;
    return p;
}

/* Resolve zero strides to the packed layout. */
static dk_attn_params at_resolve(const dk_attn_params *in) {
    dk_attn_params p = *in;
    size_t row = (size_t)p.heads * (size_t)p.head_dim;
    if (!p.q_row) p.q_row = row;
    if (!p.k_row) p.k_row = row;
    if (!p.v_row) p.v_row = row;
    if (!p.o_row) p.o_row = row;
    if (!p.q_batch) p.q_batch = (size_t)p.nq * p.q_row;
    if (!p.k_batch) p.k_batch = (size_t)p.nk * p.k_row;
    if (!p.v_batch) p.v_batch = (size_t)p.nk * p.v_row;
    if (!p.o_batch) p.o_batch = (size_t)p.nq * p.o_row;
    return p;
}

size_t dk_attention_workspace_size(const dk_attn_params *p, int nthreads) {
    if (p->head_dim < 1) return 0;
#ifdef _OPENMP
    if (nthreads <= 0) nthreads = omp_get_max_threads();
#else
    nthreads = 1;
#endif
    if (nthreads < 1) nthreads = 1;
    at_tiles t = at_plan(p->head_dim);
    return (at_packed_floats(p, &t) + (size_t)nthreads * t.floats) * sizeof(float) + 64; /* + alignment slack */
}

/* ---- micro-kernels (RB, NV are compile-time constants after inlining) ---- */

#define AT_INLINE static inline __attribute__((always_inline))

/* S[RB][NV*16] = Q[RB][d] * Kt[d][ldk] (first NV*16 columns) */
AT_INLINE void at_qk(float *S, int lds, const float *Q, int d, const float *Kt, int ldk, const int RB, const int NV) {
    dv16 acc[4][4];
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = dv_set1(0.0f);
    for (int c = 0; c < d; c++) {
        dv16 kv[4];
        for (int v = 0; v < NV; v++) kv[v] = dv_load(Kt + (size_t)c * ldk + 16 * v);
        for (int r = 0; r < RB; r++) {
            float qs = Q[(size_t)r * d + c];
            for (int v = 0; v < NV; v++) acc[r][v] += qs * kv[v];
        }
    }
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < NV; v++) dv_store(S + (size_t)r * lds + 16 * v, acc[r][v]);
}

/* O[RB][NV*16] += P[RB][0..nk) * V[0..nk)[NV*16] */
AT_INLINE void at_pv(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int nk, const int RB,
                     const int NV) {
    dv16 acc[8][6];
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = dv_load(O + (size_t)r * ldo + 16 * v);
    for (int j = 0; j < nk; j++) {
        dv16 vv[6];
        for (int v = 0; v < NV; v++) vv[v] = dv_load(V + (size_t)j * ldv + 16 * v);
        for (int r = 0; r < RB; r++) {
            float pr = P[(size_t)r * ldp + j];
            for (int v = 0; v < NV; v++) acc[r][v] += pr * vv[v];
        }
    }
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < NV; v++) dv_store(O + (size_t)r * ldo + 16 * v, acc[r][v]);
}

#define AT_QK_CASE(rb, nv)                                                                         \
    case (rb)*8 + (nv): at_qk(S, lds, Q, d, Kt, ldk, rb, nv); break;
static void at_qk_dispatch(float *S, int lds, const float *Q, int d, const float *Kt, int ldk, int rb, int nv) {
    switch (rb * 8 + nv) {
        AT_QK_CASE(4, 4) AT_QK_CASE(4, 3) AT_QK_CASE(4, 2) AT_QK_CASE(4, 1)
        AT_QK_CASE(3, 4) AT_QK_CASE(3, 3) AT_QK_CASE(3, 2) AT_QK_CASE(3, 1)
        AT_QK_CASE(2, 4) AT_QK_CASE(2, 3) AT_QK_CASE(2, 2) AT_QK_CASE(2, 1)
        AT_QK_CASE(1, 4) AT_QK_CASE(1, 3) AT_QK_CASE(1, 2) AT_QK_CASE(1, 1)
    default: abort(); /* unreachable: rb in 1..4, nv in 1..4 */
    }
}

#define AT_PV_CASE(rb, nv)                                                                         \
    case (rb)*8 + (nv): at_pv(O, ldo, P, ldp, V, ldv, nk, rb, nv); break;
static void at_pv_dispatch(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int nk, int rb,
                           int nv) {
    switch (rb * 8 + nv) {
        AT_PV_CASE(4, 6) AT_PV_CASE(4, 5) AT_PV_CASE(4, 4) AT_PV_CASE(4, 3) AT_PV_CASE(4, 2) AT_PV_CASE(4, 1)
        AT_PV_CASE(3, 6) AT_PV_CASE(3, 5) AT_PV_CASE(3, 4) AT_PV_CASE(3, 3) AT_PV_CASE(3, 2) AT_PV_CASE(3, 1)
        AT_PV_CASE(2, 6) AT_PV_CASE(2, 5) AT_PV_CASE(2, 4) AT_PV_CASE(2, 3) AT_PV_CASE(2, 2) AT_PV_CASE(2, 1)
        AT_PV_CASE(1, 6) AT_PV_CASE(1, 5) AT_PV_CASE(1, 4) AT_PV_CASE(1, 3) AT_PV_CASE(1, 2) AT_PV_CASE(1, 1)
        AT_PV_CASE(8, 3) AT_PV_CASE(8, 2) AT_PV_CASE(8, 1) AT_PV_CASE(7, 3) AT_PV_CASE(7, 2) AT_PV_CASE(7, 1)
        AT_PV_CASE(6, 3) AT_PV_CASE(6, 2) AT_PV_CASE(6, 1) AT_PV_CASE(5, 3) AT_PV_CASE(5, 2) AT_PV_CASE(5, 1)
    default: abort(); /* unreachable: rb in 1..4 with nv in 1..6, or rb in 5..8 with nv in 1..3 */
    }
}

/* One (batch b, head h, query rows i0 .. i0+nqt-1) unit. */
/* Pack key tile kt of (batch b, head h): K^T [d][bk] (columns past the tile's keys zero up to the
 * vector boundary) and V [bk][dpad] (columns d..dpad zero). */
static void at_pack(const dk_attn_params *p, const at_tiles *t, float *Kt, float *Vp, int b, int h, int kt,
                    const float *k, const float *v) {
    const int d = p->head_dim, bk = t->bk, dpad = t->dpad, j0 = kt * bk;
    const int nk = p->nk - j0 < bk ? p->nk - j0 : bk, nv = (nk + 15) / 16;
    const float *kb = k + (size_t)b * p->k_batch + (size_t)h * d;
    const float *vb = v + (size_t)b * p->v_batch + (size_t)h * d;
    for (int jj = 0; jj < nk; jj++) {
        const float *kr = kb + (size_t)(j0 + jj) * p->k_row;
        const float *vr = vb + (size_t)(j0 + jj) * p->v_row;
        for (int c = 0; c < d; c++) Kt[(size_t)c * bk + jj] = kr[c];
        memcpy(Vp + (size_t)jj * dpad, vr, (size_t)d * sizeof(float));
        for (int c = d; c < dpad; c++) Vp[(size_t)jj * dpad + c] = 0.0f;
    }
    for (int c = 0; c < d; c++)
        for (int jj = nk; jj < nv * 16; jj++) Kt[(size_t)c * bk + jj] = 0.0f;
}

static void at_unit(const dk_attn_params *p, const at_tiles *t, float *ws, const float *Ktb, const float *Vpb,
                    int b, int h, int i0, int nqt, const float *q, float *o) {
    const int d = p->head_dim, bk = t->bk, dpad = t->dpad;
    float *Qs = ws + t->q_off, *S = ws + t->s_off;
    float *O = ws + t->o_off, *M = ws + t->m_off, *L = ws + t->l_off;
    const float *qb = q + (size_t)b * p->q_batch + (size_t)h * d;
    float *ob = o + (size_t)b * p->o_batch + (size_t)h * d;

    for (int r = 0; r < nqt; r++) {
        const float *qr = qb + (size_t)(i0 + r) * p->q_row;
        for (int c = 0; c < d; c++) Qs[(size_t)r * d + c] = qr[c] * p->scale;
        M[r] = -__builtin_inff();
        L[r] = 0.0f;
    }
    memset(O, 0, (size_t)nqt * dpad * sizeof(float));

    /* d split into near-equal chunks of <= 6 vectors for the PV kernel */
    const int nvd = dpad / 16, nch = (nvd + 5) / 6;

    int kend = p->nk;
    if (p->causal && i0 + nqt < kend) kend = i0 + nqt; /* keys beyond the last row's index are all masked */
    for (int j0 = 0; j0 < kend; j0 += bk) {
        int nk = kend - j0 < bk ? kend - j0 : bk;
        int nv = (nk + 15) / 16;
        const float *Kt = Ktb + (size_t)(j0 / bk) * t->kt_tile, *Vp = Vpb + (size_t)(j0 / bk) * t->v_tile;

        /* key vectors split into near-equal groups of <= 4 (5 -> 3+2, 8 -> 4+4) */
        const int ng = (nv + 3) / 4;
        for (int r0 = 0; r0 < nqt; r0 += 4) {
            int rb = nqt - r0 < 4 ? nqt - r0 : 4;
            for (int g = 0, v0 = 0; g < ng; g++) {
                int gnv = (nv - v0) / (ng - g);
                at_qk_dispatch(S + (size_t)r0 * bk + 16 * v0, bk, Qs + (size_t)r0 * d, d, Kt + 16 * v0, bk, rb, gnv);
                v0 += gnv;
            }
        }

        /* online softmax, row by row */
        for (int r = 0; r < nqt; r++) {
            float *sr = S + (size_t)r * bk;
            int valid = nk;
            if (p->causal) {
                int lim = i0 + r - j0 + 1; /* keys j0 .. i0+r are visible */
                valid = lim < 0 ? 0 : lim < nk ? lim : nk;
            }
            /* masked and padding columns to -inf so whole 16-lane vectors can be processed */
            for (int j = valid; j < nv * 16; j++) sr[j] = -__builtin_inff();
            dv16 vmx = dv_load(sr);
            for (int vi = 1; vi < nv; vi++) {
                dv16 x = dv_load(sr + 16 * vi);
                vmx = dv_select(x > vmx, x, vmx);
            }
            float mx = dv_hmax(vmx);
            float mnew = mx > M[r] ? mx : M[r];
            float sum = 0.0f;
            if (valid > 0) {
                dv16 vs = dv_set1(0.0f), vm = dv_set1(mnew);
                for (int vi = 0; vi < nv; vi++) {
                    dv16 e = dv_exp(dv_load(sr + 16 * vi) - vm);
                    dv_store(sr + 16 * vi, e);
                    vs += e;
                }
                sum = dv_hsum(vs);
            } else {
                for (int j = 0; j < nk; j++) sr[j] = 0.0f;
            }
            if (mnew > M[r]) {
                /* M[r] = -inf on the first tile: exp(-inf) = 0 and O, L are still zero */
                float alpha = nn_expf(M[r] - mnew);
                float *orow = O + (size_t)r * dpad;
#pragma omp simd
                for (int c = 0; c < dpad; c++) orow[c] *= alpha;
                L[r] *= alpha;
                M[r] = mnew;
            }
            L[r] += sum;
        }

        const int rmax = nvd <= 3 ? 8 : 4; /* 8 x 3 = 24 accumulators for d <= 48 */
        for (int r0 = 0; r0 < nqt; r0 += rmax) {
            int rb = nqt - r0 < rmax ? nqt - r0 : rmax;
            int c0 = 0;
            for (int ch = 0; ch < nch; ch++) {
                int cnv = (nvd - c0 / 16) / (nch - ch); /* near-equal split of what is left */
                at_pv_dispatch(O + (size_t)r0 * dpad + c0, dpad, S + (size_t)r0 * bk, bk, Vp + c0, dpad, nk, rb, cnv);
                c0 += cnv * 16;
            }
        }
    }

    for (int r = 0; r < nqt; r++) {
        float inv = 1.0f / L[r];
        float *orow = ob + (size_t)(i0 + r) * p->o_row;
        const float *acc = O + (size_t)r * dpad;
        for (int c = 0; c < d; c++) orow[c] = acc[c] * inv;
    }
}

dk_attn_status dk_attention(const dk_attn_params *pin, const float *q, const float *k, const float *v, float *o,
                            void *workspace, size_t workspace_bytes) {
    if (pin->batch < 1 || pin->heads < 1 || pin->nq < 1 || pin->nk < 1 || pin->head_dim < 1) return DK_ATTN_BAD_SHAPE;
    dk_attn_params p = at_resolve(pin);
    at_tiles t = at_plan(p.head_dim);
    uintptr_t base = ((uintptr_t)workspace + 63) & ~(uintptr_t)63;
    size_t slack = base - (uintptr_t)workspace, packed = at_packed_floats(&p, &t) * sizeof(float);
    if (workspace_bytes < slack + packed + t.floats * sizeof(float)) return DK_ATTN_SMALL_WORKSPACE;
    size_t fit = (workspace_bytes - slack - packed) / (t.floats * sizeof(float));
    long nktiles = (p.nk + t.bk - 1) / t.bk;
    long packs = (long)p.batch * p.heads * nktiles;
    long nqtiles = (p.nq + t.bq - 1) / t.bq;
    long units = (long)p.batch * p.heads * nqtiles;
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
#endif
    if ((size_t)nthr > fit) nthr = (int)fit;
    if (nthr > units) nthr = (int)units;
    float *ktp = (float *)base, *vp = ktp + (size_t)packs * t.kt_tile;
    float *ws = vp + (size_t)packs * t.v_tile;

#pragma omp parallel num_threads(nthr)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *mine = ws + (size_t)tid * t.floats;
        /* K^T and V packed once per (batch, head, key tile) and shared by all query tiles: packing
         * per query tile cost as much as the FLOPs at d = 512 (v1 -> v2 in docs/KERNELS.md) */
#pragma omp for schedule(static)
        for (long u = 0; u < packs; u++) {
            long kt = u % nktiles, bh = u / nktiles;
            at_pack(&p, &t, ktp + (size_t)u * t.kt_tile, vp + (size_t)u * t.v_tile, (int)(bh / p.heads),
                    (int)(bh % p.heads), (int)kt, k, v);
        }
        /* query tiles in the inner position so that neighbouring units share a head's K/V in cache */
#pragma omp for schedule(dynamic, 1)
        for (long u = 0; u < units; u++) {
            long qt = u % nqtiles, bh = u / nqtiles;
            int b = (int)(bh / p.heads), h = (int)(bh % p.heads);
            int i0 = (int)qt * t.bq;
            int nqt = p.nq - i0 < t.bq ? p.nq - i0 : t.bq;
            size_t first = (size_t)bh * nktiles;
            at_unit(&p, &t, mine, ktp + first * t.kt_tile, vp + first * t.v_tile, b, h, i0, nqt, q, o);
        }
    }
    return DK_ATTN_OK;
}

void dk_attention_ref(const dk_attn_params *pin, const float *q, const float *k, const float *v, float *o) {
    dk_attn_params p = at_resolve(pin);
    int d = p.head_dim;
    double *s = malloc((size_t)p.nk * sizeof(double));
    double *acc = malloc((size_t)d * sizeof(double));
    if (!s || !acc) abort();
    for (int b = 0; b < p.batch; b++)
        for (int h = 0; h < p.heads; h++)
            for (int i = 0; i < p.nq; i++) {
                const float *qi = q + b * p.q_batch + i * p.q_row + (size_t)h * d;
                int nvis = p.causal ? (i + 1 < p.nk ? i + 1 : p.nk) : p.nk;
                double mx = -INFINITY;
                for (int j = 0; j < nvis; j++) {
                    const float *kj = k + b * p.k_batch + j * p.k_row + (size_t)h * d;
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += (double)qi[c] * kj[c];
                    s[j] = dot * p.scale;
                    if (s[j] > mx) mx = s[j];
                }
                double tot = 0;
                for (int c = 0; c < d; c++) acc[c] = 0;
                for (int j = 0; j < nvis; j++) {
                    double e = exp(s[j] - mx);
                    tot += e;
                    const float *vj = v + b * p.v_batch + j * p.v_row + (size_t)h * d;
                    for (int c = 0; c < d; c++) acc[c] += e * vj[c];
                }
                float *oi = o + b * p.o_batch + i * p.o_row + (size_t)h * d;
                for (int c = 0; c < d; c++) oi[c] = (float)(acc[c] / tot);
            }
    free(s);
    free(acc);
}
