/* attention_tc.cu - flash attention on tensor cores (WMMA, m16n16k16, f16 or bf16 inputs with f32
 * accumulation): softmax(Q K^T * scale) V with the semantics, layouts and strides of
 * kernels/cpu/attention.h and attention.cu's v1 (which stays as the FP32 reference and the fallback;
 * the backend picks with DIFFAUG_CUDA_ATTN, docs/CUDA.md).
 *
 * Shape of the computation. One block of 4 warps per (64 query rows, batch*head); warp w owns query
 * rows 16w .. 16w+15 of the block's tile for the whole kernel, so the softmax statistics and the
 * output accumulator of a row are touched by one warp only. K and V stream through shared memory in
 * tiles of 64 keys; per tile:
 *   1. all 128 threads load the K and V tiles (f32 from global, rounded RNE to T, zero beyond Nk
 *      and beyond d), __syncthreads;
 *   2. each warp: S[16 x 64] = Q_w K^T with WMMA (A = Q row-major, B = K^T read as a col-major view
 *      of the row-major K tile), stored f32 to its private S rows;
 *   3. each warp, row by row: scale, mask (key >= Nk, causal key > query) to -inf, the online
 *      softmax (running max m, running sum l of the f32 exponentials, alpha = exp(m_old - m_new)),
 *      P = exp(s - m_new) rounded to T into its private P rows;
 *   4. each warp: O_w = alpha * O_w + P V with WMMA, O_w kept in f32 in shared memory (the
 *      accumulator fragment is loaded from it, updated, stored back: WMMA's register layout is
 *      opaque, so the per-row rescale happens in shared memory where rows are addressable);
 *   5. __syncthreads before the next tile overwrites K and V.
 * At the end O / l goes to global memory for the rows that exist. Nothing Nq x Nk is ever stored.
 * The head dim is padded to DP = ceil(d/16)*16 with zeros in Q, K and V (zeros add nothing to a
 * dot product and produce ignored output columns). The causal case stops at the block's last query.
 *
 * Shared memory (bytes, each region rounded to 128): Q, K, V: 64 x (DP+8) x 2 each; S: 64 x 68 x 4;
 * P: 64 x 72 x 2; O: 64 x (DP+4) x 4; m, l, alpha: 64 x 4 each. d 40: 60.75 KiB, d 64: 70.75 KiB,
 * d 80: 80.75 KiB, d 160: 130.75 KiB; the backend falls back to the FP32 kernel where it exceeds
 * the device's opt-in limit (Hopper's 227 KiB: d <= 304). Row paddings (+8 halves, +4 floats) keep
 * the leading dimensions multiples of 16 bytes, as WMMA requires, and shift rows across banks;
 * every fragment pointer is 32-byte aligned because rows start at multiples of 16 and columns at
 * multiples of 16 elements.
 *
 * Precision: Q, K, V and P each rounded once to T (f16: 2^-11 relative, bf16: 2^-8); products and
 * sums in f32; exp is the accurate expf. Error bounds and the tested tolerances: tests/test_gpu.c.
 */
#ifdef DCU_EMULATE /* tests/emu: the kernels on the host, launchers left out */
#include "cuda_emu.h"
#define DCU_DYN_SMEM(name) unsigned char *name = emu_dynamic_smem()
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "dcu_common.cuh"
#define DCU_DYN_SMEM(name) extern __shared__ __align__(128) unsigned char name[]
#endif

using namespace nvcuda;

#define TC_BQ 64 /* query rows per block: 4 warps x 16 */
#define TC_BK 64 /* keys per tile */
#define TC_WARPS 4
#define TC_THREADS (TC_WARPS * 32)

struct tc_layout {
    int dp, ldh, lds, ldp, ldo;
    size_t q, k, v, s, p, o, m, l, a, total;
};

__host__ __device__ static inline size_t tc_al(size_t b) { return (b + 127) & ~(size_t)127; }

__host__ __device__ static inline tc_layout tc_make_layout(int d) {
    tc_layout L;
    L.dp = (d + 15) / 16 * 16;
    L.ldh = L.dp + 8;
    L.lds = TC_BK + 4;
    L.ldp = TC_BK + 8;
    L.ldo = L.dp + 4;
    size_t off = 0;
    L.q = off, off += tc_al((size_t)TC_BQ * L.ldh * 2);
    L.k = off, off += tc_al((size_t)TC_BK * L.ldh * 2);
    L.v = off, off += tc_al((size_t)TC_BK * L.ldh * 2);
    L.s = off, off += tc_al((size_t)TC_BQ * L.lds * 4);
    L.p = off, off += tc_al((size_t)TC_BQ * L.ldp * 2);
    L.o = off, off += tc_al((size_t)TC_BQ * L.ldo * 4);
    L.m = off, off += tc_al((size_t)TC_BQ * 4);
    L.l = off, off += tc_al((size_t)TC_BQ * 4);
    L.a = off, off += tc_al((size_t)TC_BQ * 4);
    L.total = off;
    return L;
}

template <typename T> __device__ __forceinline__ T tc_round(float x);
template <> __device__ __forceinline__ __half tc_round<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 tc_round<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* grid (ceil(Nq / 64), B * H), block 128, dynamic shared memory tc_make_layout(d).total bytes */
template <typename T>
__global__ void __launch_bounds__(TC_THREADS) k_attention_tc(dcu_attn p, const float *q, const float *k,
                                                              const float *v, float *o) {
    DCU_DYN_SMEM(smraw);
    const tc_layout L = tc_make_layout(p.head_dim);
    T *Qs = (T *)(smraw + L.q), *Ks = (T *)(smraw + L.k), *Vs = (T *)(smraw + L.v), *Ps = (T *)(smraw + L.p);
    float *Ss = (float *)(smraw + L.s), *Os = (float *)(smraw + L.o);
    float *Ms = (float *)(smraw + L.m), *Ls = (float *)(smraw + L.l), *As = (float *)(smraw + L.a);
    const int d = p.head_dim, dp = L.dp, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int b = blockIdx.y / p.heads, h = blockIdx.y % p.heads, q0 = blockIdx.x * TC_BQ;
    const float *qb = q + (size_t)b * p.q_batch + (size_t)h * d;
    const float *kb = k + (size_t)b * p.k_batch + (size_t)h * d;
    const float *vb = v + (size_t)b * p.v_batch + (size_t)h * d;
    float *ob = o + (size_t)b * p.o_batch + (size_t)h * d;

    for (int i = tid; i < TC_BQ * dp; i += TC_THREADS) {
        int r = i / dp, c = i % dp, qi = q0 + r;
        Qs[r * L.ldh + c] = tc_round<T>(qi < p.nq && c < d ? qb[(size_t)qi * p.q_row + c] : 0.0f);
        Os[r * L.ldo + c] = 0.0f;
    }
    for (int r = tid; r < TC_BQ; r += TC_THREADS) {
        Ms[r] = -INFINITY;
        Ls[r] = 0.0f;
        As[r] = 0.0f;
    }
    const int kend = p.causal ? min(p.nk, q0 + TC_BQ) : p.nk;
    const int wr = warp * 16; /* this warp's first row in the block's tile */
    const T *Qw = Qs + (size_t)wr * L.ldh;
    float *Sw = Ss + (size_t)wr * L.lds, *Ow = Os + (size_t)wr * L.ldo;
    T *Pw = Ps + (size_t)wr * L.ldp;
    __syncthreads();

    for (int k0 = 0; k0 < kend; k0 += TC_BK) {
        /* 1. K and V tiles */
        for (int i = tid; i < TC_BK * dp; i += TC_THREADS) {
            int r = i / dp, c = i % dp, kj = k0 + r;
            bool in = kj < p.nk && c < d;
            Ks[r * L.ldh + c] = tc_round<T>(in ? kb[(size_t)kj * p.k_row + c] : 0.0f);
            Vs[r * L.ldh + c] = tc_round<T>(in ? vb[(size_t)kj * p.v_row + c] : 0.0f);
        }
        __syncthreads();
        /* 2. S_w = Q_w K^T */
        for (int j = 0; j < TC_BK / 16; j++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < dp / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
                wmma::load_matrix_sync(fa, Qw + kk * 16, L.ldh);
                /* B(kk*16 + t, n) = K[j*16 + n][kk*16 + t]: col-major with leading dimension ldh */
                wmma::load_matrix_sync(fb, Ks + (size_t)j * 16 * L.ldh + kk * 16, L.ldh);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Sw + j * 16, acc, L.lds, wmma::mem_row_major);
        }
        __syncwarp();
        /* 3. online softmax over the warp's 16 rows; lanes cover the 64 columns, two each */
        for (int r = 0; r < 16; r++) {
            const int qi = q0 + wr + r;
            float s[TC_BK / 32], mx = -INFINITY;
#pragma unroll
            for (int t = 0; t < TC_BK / 32; t++) {
                int j = lane + 32 * t, kj = k0 + j;
                bool keep = kj < p.nk && !(p.causal && kj > qi);
                s[t] = keep ? Sw[r * L.lds + j] * p.scale : -INFINITY;
                mx = fmaxf(mx, s[t]);
            }
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float mo = Ms[wr + r], mn = fmaxf(mo, mx);
            float sum = 0.0f;
#pragma unroll
            for (int t = 0; t < TC_BK / 32; t++) {
                float e = s[t] == -INFINITY ? 0.0f : expf(s[t] - mn); /* mn is finite whenever s[t] is */
                Pw[r * L.ldp + lane + 32 * t] = tc_round<T>(e);
                sum += e;
            }
            for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            if (lane == 0) {
                float alpha = mo == -INFINITY ? 0.0f : expf(mo - mn);
                As[wr + r] = alpha;
                Ls[wr + r] = Ls[wr + r] * alpha + sum;
                Ms[wr + r] = mn;
            }
        }
        __syncwarp();
        /* 4. O_w = alpha O_w + P_w V */
        for (int i = lane; i < 16 * dp; i += 32) {
            int r = i / dp, c = i % dp;
            Ow[r * L.ldo + c] *= As[wr + r];
        }
        __syncwarp();
        for (int c = 0; c < dp / 16; c++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, Ow + c * 16, L.ldo, wmma::mem_row_major);
            for (int kk = 0; kk < TC_BK / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, Pw + kk * 16, L.ldp);
                wmma::load_matrix_sync(fb, Vs + (size_t)kk * 16 * L.ldh + c * 16, L.ldh);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Ow + c * 16, acc, L.ldo, wmma::mem_row_major);
        }
        /* 5. every warp is done with this K / V tile (and its own O, P, S rows) */
        __syncthreads();
    }
    for (int i = tid; i < TC_BQ * d; i += TC_THREADS) {
        int r = i / d, c = i % d, qi = q0 + r;
        /* every real query sees key 0 (causal is top-left aligned), so Ls[r] > 0 */
        if (qi < p.nq) ob[(size_t)qi * p.o_row + c] = Os[r * L.ldo + c] / Ls[r];
    }
}

#ifndef DCU_EMULATE
extern "C" size_t dcu_attention_tc_smem(int head_dim) {
    return head_dim > 0 ? tc_make_layout(head_dim).total : 0;
}

extern "C" int dcu_attention_tc(dcu_ctx *c, const dcu_attn *p, const float *q, const float *k, const float *v,
                                float *o, int wt) {
    if (p->batch < 1 || p->heads < 1 || p->nq < 1 || p->nk < 1 || p->head_dim < 1 || (wt != 1 && wt != 2)) {
        snprintf(c->msg, sizeof c->msg, "dcu_attention_tc: bad shape B=%d H=%d Nq=%d Nk=%d d=%d or type %d", p->batch,
                 p->heads, p->nq, p->nk, p->head_dim, wt);
        return (int)cudaErrorInvalidValue;
    }
    size_t bytes = dcu_attention_tc_smem(p->head_dim);
    if (bytes > (size_t)c->smem_optin) {
        snprintf(c->msg, sizeof c->msg,
                 "dcu_attention_tc: head_dim %d needs %zu bytes of shared memory, the device allows %d per block",
                 p->head_dim, bytes, c->smem_optin);
        return (int)cudaErrorInvalidValue;
    }
    size_t bh = (size_t)p->batch * p->heads;
    if (bh > 65535) {
        snprintf(c->msg, sizeof c->msg, "dcu_attention_tc: batch*heads=%zu exceeds the grid's y limit", bh);
        return (int)cudaErrorInvalidValue;
    }
    dim3 grid((unsigned)((p->nq + TC_BQ - 1) / TC_BQ), (unsigned)bh);
    /* The opt-in for the dynamic shared memory is raised only when a call needs more than before, so
     * a graph capture of a step that already ran once makes no such call (one GPU per process, see
     * docs/CUDA.md, so one remembered value per kernel is enough). */
    static size_t optin_set[2];
    cudaError_t e;
    if (wt == 1) {
        if (bytes > optin_set[0]) {
            e = cudaFuncSetAttribute(k_attention_tc<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
            if (e != cudaSuccess) return dcu_fail(c, e, "cudaFuncSetAttribute(k_attention_tc<f16>)");
            optin_set[0] = bytes;
        }
        k_attention_tc<__half><<<grid, TC_THREADS, bytes, DCU_STREAM(c)>>>(*p, q, k, v, o);
        return dcu_check_launch(c, "k_attention_tc<f16>");
    }
    if (bytes > optin_set[1]) {
        e = cudaFuncSetAttribute(k_attention_tc<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
        if (e != cudaSuccess) return dcu_fail(c, e, "cudaFuncSetAttribute(k_attention_tc<bf16>)");
        optin_set[1] = bytes;
    }
    k_attention_tc<__nv_bfloat16><<<grid, TC_THREADS, bytes, DCU_STREAM(c)>>>(*p, q, k, v, o);
    return dcu_check_launch(c, "k_attention_tc<bf16>");
}
#endif /* DCU_EMULATE */
