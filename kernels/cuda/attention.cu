/* attention.cu - scaled dot-product attention softmax(Q K^T * scale) V on the GPU, mirroring
 * kernels/cpu/attention.h (torch.nn.functional.scaled_dot_product_attention as diffusers'
 * AttnProcessor2_0 and CLIP's causal text encoder call it): Q [B, Nq, H*d], K/V [B, Nk, H*d],
 * O [B, Nq, H*d] with explicit row / batch strides, head h in columns h*d .. h*d+d-1, causal masking
 * of key j for query i when j > i.
 *
 * Version 1: flash-style on FP32 CUDA cores, chosen to be obviously correct before fast. One block
 * per (BQ query rows, batch*head); K and V stream through shared memory in tiles of BK rows with the
 * online softmax (running max m, running sum l, rescale of the O accumulator by exp(m_old - m_new)),
 * so nothing of size Nq x Nk is ever stored. Q, the O accumulators, one K and one V tile and the
 * BQ x BK score tile live in dynamic shared memory, which makes any head dim work (BQ and BK shrink
 * as d grows: d = 512 runs with 16 x 16 tiles) at the price of shared-memory bandwidth. Dot products
 * and the P V product are plain f32 FMAs in a fixed order; exp is the accurate expf. Tensor-core MMA
 * (wgmma / mma.sync on bf16 or tf32) is the next version.
 */
#include "dcu_common.cuh"

#define ATTN_THREADS 256
#define ATTN_SMEM_TARGET (96 * 1024) /* shrink tiles to this so two blocks can share an SM */

static size_t attn_smem_floats(int d, int bq, int bk) {
    return (size_t)2 * bq * d + (size_t)bk * (2 * d + 1) + (size_t)bq * bk + 3 * (size_t)bq;
}

/* grid (ceil(Nq / BQ), B * H), block ATTN_THREADS, dynamic smem attn_smem_floats(d, BQ, BK) floats */
__global__ void __launch_bounds__(ATTN_THREADS) k_attention(dcu_attn p, int BQ, int BK, const float *q, const float *k,
                                                            const float *v, float *o) {
    extern __shared__ float sm[];
    const int d = p.head_dim, ldk = d + 1; /* K rows padded: the score loop reads K columns across lanes */
    float *Qs = sm, *Os = Qs + (size_t)BQ * d, *Ks = Os + (size_t)BQ * d, *Vs = Ks + (size_t)BK * ldk;
    float *Ps = Vs + (size_t)BK * d, *Ms = Ps + (size_t)BQ * BK, *Ls = Ms + BQ, *As = Ls + BQ;
    const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, warp = tid >> 5, nwarps = nt >> 5;
    const int b = blockIdx.y / p.heads, h = blockIdx.y % p.heads, q0 = blockIdx.x * BQ;
    const float *qb = q + (size_t)b * p.q_batch + (size_t)h * d;
    const float *kb = k + (size_t)b * p.k_batch + (size_t)h * d;
    const float *vb = v + (size_t)b * p.v_batch + (size_t)h * d;
    float *ob = o + (size_t)b * p.o_batch + (size_t)h * d;

    for (int i = tid; i < BQ * d; i += nt) {
        int r = i / d, cc = i % d, qi = q0 + r;
        Qs[i] = qi < p.nq ? qb[(size_t)qi * p.q_row + cc] : 0.0f;
        Os[i] = 0.0f;
    }
    for (int r = tid; r < BQ; r += nt) {
        Ms[r] = -INFINITY;
        Ls[r] = 0.0f;
    }
    /* causal: the block's last query q0+BQ-1 sees keys up to itself, so later tiles are all masked */
    int kend = p.causal ? min(p.nk, q0 + BQ) : p.nk;
    __syncthreads();

    for (int k0 = 0; k0 < kend; k0 += BK) {
        for (int i = tid; i < BK * d; i += nt) {
            int r = i / d, cc = i % d, kj = k0 + r;
            bool in = kj < p.nk;
            Ks[r * ldk + cc] = in ? kb[(size_t)kj * p.k_row + cc] : 0.0f;
            Vs[i] = in ? vb[(size_t)kj * p.v_row + cc] : 0.0f;
        }
        __syncthreads();
        /* S = scale * Q K^T for the tile, -inf where masked */
        for (int i = tid; i < BQ * BK; i += nt) {
            int r = i / BK, j = i % BK, kj = k0 + j, qi = q0 + r;
            float s = -INFINITY;
            if (kj < p.nk && !(p.causal && kj > qi)) {
                const float *qr = Qs + (size_t)r * d, *kr = Ks + (size_t)j * ldk;
                float acc = 0.0f;
                for (int t = 0; t < d; t++) acc = fmaf(qr[t], kr[t], acc);
                s = acc * p.scale;
            }
            Ps[i] = s;
        }
        __syncthreads();
        /* online softmax, one warp per query row */
        for (int r = warp; r < BQ; r += nwarps) {
            float mx = -INFINITY;
            for (int j = lane; j < BK; j += 32) mx = fmaxf(mx, Ps[r * BK + j]);
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float mo = Ms[r], mn = fmaxf(mo, mx), sum = 0.0f;
            for (int j = lane; j < BK; j += 32) {
                float s = Ps[r * BK + j];
                float e = s == -INFINITY ? 0.0f : expf(s - mn); /* mn is finite whenever s is */
                Ps[r * BK + j] = e;
                sum += e;
            }
            for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            if (lane == 0) {
                float alpha = mo == -INFINITY ? 0.0f : expf(mo - mn);
                As[r] = alpha;
                Ls[r] = Ls[r] * alpha + sum;
                Ms[r] = mn;
            }
        }
        __syncthreads();
        /* O = O * alpha + P V */
        for (int i = tid; i < BQ * d; i += nt) {
            int r = i / d, cc = i % d;
            const float *pr = Ps + (size_t)r * BK;
            float acc = Os[i] * As[r];
            for (int j = 0; j < BK; j++) acc = fmaf(pr[j], Vs[(size_t)j * d + cc], acc);
            Os[i] = acc;
        }
        __syncthreads();
    }
    for (int i = tid; i < BQ * d; i += nt) {
        int r = i / d, cc = i % d, qi = q0 + r;
        /* every real query sees key 0 (causal is top-left aligned), so Ls[r] > 0 */
        if (qi < p.nq) ob[(size_t)qi * p.o_row + cc] = Os[i] / Ls[r];
    }
}

extern "C" int dcu_attention(dcu_ctx *c, const dcu_attn *p, const float *q, const float *k, const float *v, float *o) {
    if (p->batch < 1 || p->heads < 1 || p->nq < 1 || p->nk < 1 || p->head_dim < 1) {
        snprintf(c->msg, sizeof c->msg, "dcu_attention: bad shape B=%d H=%d Nq=%d Nk=%d d=%d", p->batch, p->heads,
                 p->nq, p->nk, p->head_dim);
        return (int)cudaErrorInvalidValue;
    }
    int bq = 64, bk = 64, d = p->head_dim;
    while (attn_smem_floats(d, bq, bk) * 4 > ATTN_SMEM_TARGET && (bq > 16 || bk > 16)) {
        if (bq >= bk) bq /= 2;
        else bk /= 2;
    }
    size_t bytes = attn_smem_floats(d, bq, bk) * 4;
    if (bytes > (size_t)c->smem_optin) {
        snprintf(c->msg, sizeof c->msg,
                 "dcu_attention: head_dim %d needs %zu bytes of shared memory, the device allows %d per block", d,
                 bytes, c->smem_optin);
        return (int)cudaErrorInvalidValue;
    }
    size_t bh = (size_t)p->batch * p->heads;
    if (bh > 65535) {
        snprintf(c->msg, sizeof c->msg, "dcu_attention: batch*heads=%zu exceeds the grid's y limit", bh);
        return (int)cudaErrorInvalidValue;
    }
    cudaError_t e = cudaFuncSetAttribute(k_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) return dcu_fail(c, e, "cudaFuncSetAttribute(k_attention, MaxDynamicSharedMemorySize)");
    dim3 grid((unsigned)((p->nq + bq - 1) / bq), (unsigned)bh);
    k_attention<<<grid, ATTN_THREADS, bytes, DCU_STREAM(c)>>>(*p, bq, bk, q, k, v, o);
    return dcu_check_launch(c, "k_attention");
}
