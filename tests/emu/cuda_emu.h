/* cuda_emu.h - just enough of CUDA to run the tensor-core kernels (kernels/cuda/attention_tc.cu,
 * conv_tc.cu) on the host, so their index math, masks, tiling, online softmax and WMMA usage rules
 * are tested by `make test` on machines without a GPU (tests/test_cuda_emu.c).
 *
 * Model: one block at a time; its threads are real host threads (std::thread), so __syncthreads and
 * __syncwarp are barriers (pthread) and a missing one shows up as a race. __shfl_xor_sync exchanges
 * through a per-warp array between two warp barriers. __shared__ becomes `static` (one block runs
 * at a time, so a function-local static is that block's shared memory); dynamic shared memory is a
 * fresh allocation per block with a guard zone checked after the block.
 *
 * WMMA (nvcuda::wmma, m16n16k16) follows the documented semantics, not the hardware's register
 * layout: every lane holds the whole 16 x 16 tile (loads are collective and all lanes see the same
 * memory; mma is computed by each lane for itself; stores write identical values). Loads and stores
 * are warp-synchronous as the _sync names say: a warp barrier before and after, so no lane stores a
 * tile while another lane of the warp still loads it (on the hardware each element is loaded and
 * stored by the one lane that owns it, which gives the same guarantee). The documented
 * requirements are checked and abort with a message: fragment pointers 256-bit (32-byte) aligned,
 * leading dimensions multiples of 16 bytes, and (for dynamic shared memory) every tile inside the
 * allocation. Products accumulate in float in k order: the real tensor cores add in an unspecified
 * order with f32 accumulation, which the tests' tolerances already cover.
 *
 * Not modelled: warp divergence, timing, the hardware's fragment layout, bank conflicts.
 */
#ifndef CUDA_EMU_H
#define CUDA_EMU_H

#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "dcuda.h"
#include "kcommon.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

using std::max;
using std::min;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx;
inline dim3 blockIdx, blockDim, gridDim;

/* ---- 16-bit types: storage bits, rounded RNE by kcommon.h (as cuda_fp16's _rn conversions) ------ */
struct __half {
    uint16_t b;
};
struct __nv_bfloat16 {
    uint16_t b;
};
inline __half __float2half_rn(float x) { return __half{dk_f32_to_f16(x)}; }
inline __nv_bfloat16 __float2bfloat16_rn(float x) { return __nv_bfloat16{dk_f32_to_bf16(x)}; }
inline float emu_float(__half h) { return dk_f16_to_f32(h.b); }
inline float emu_float(__nv_bfloat16 h) { return dk_bf16_to_f32(h.b); }
inline float emu_float(float f) { return f; }

/* ---- the running block ----------------------------------------------------------------------- */
struct emu_block {
    pthread_barrier_t block;
    pthread_barrier_t warp[32];
    float shfl[32][32];
    unsigned char *dyn = nullptr;
    size_t dyn_bytes = 0;
};
inline emu_block *g_emu;

inline void emu_die(const char *what) {
    fprintf(stderr, "cuda_emu: %s (block %u,%u,%u thread %u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
            threadIdx.x);
    abort();
}

inline void __syncthreads() { pthread_barrier_wait(&g_emu->block); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) emu_die("__syncwarp with a partial mask is not emulated");
    pthread_barrier_wait(&g_emu->warp[threadIdx.x / 32]);
}
inline float __shfl_xor_sync(unsigned mask, float v, int off) {
    if (mask != 0xffffffffu) emu_die("__shfl_xor_sync with a partial mask is not emulated");
    unsigned w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_emu->shfl[w][l] = v;
    __syncwarp();
    float r = g_emu->shfl[w][l ^ (unsigned)off];
    __syncwarp();
    return r;
}
inline unsigned char *emu_dynamic_smem() { return g_emu->dyn; }

#define EMU_GUARD 4096
/* Run body() as a grid of blocks of `threads` threads with `dyn` bytes of dynamic shared memory. */
template <typename F> void emu_launch(dim3 grid, unsigned threads, size_t dyn, F body) {
    if (threads % 32 || threads > 1024) emu_die("block size must be a multiple of 32, at most 1024");
    gridDim = grid;
    blockDim = dim3{threads, 1, 1};
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = dim3{x, y, z};
                emu_block b;
                pthread_barrier_init(&b.block, nullptr, threads);
                for (unsigned w = 0; w < threads / 32; w++) pthread_barrier_init(&b.warp[w], nullptr, 32);
                std::vector<unsigned char> mem(dyn + EMU_GUARD + 128);
                /* 128-byte aligned start, like CUDA's dynamic shared memory */
                uintptr_t base = ((uintptr_t)mem.data() + 127) & ~(uintptr_t)127;
                b.dyn = (unsigned char *)base;
                b.dyn_bytes = dyn;
                memset(b.dyn, 0xA5, dyn + EMU_GUARD); /* garbage in, as on a GPU */
                g_emu = &b;
                std::vector<std::thread> ts;
                for (unsigned t = 0; t < threads; t++)
                    ts.emplace_back([t, &body] {
                        threadIdx = dim3{t, 0, 0};
                        body();
                    });
                for (auto &t : ts) t.join();
                for (size_t i = 0; i < EMU_GUARD; i++)
                    if (b.dyn[dyn + i] != 0xA5) emu_die("write past the end of dynamic shared memory");
                pthread_barrier_destroy(&b.block);
                for (unsigned w = 0; w < threads / 32; w++) pthread_barrier_destroy(&b.warp[w]);
                g_emu = nullptr;
            }
}

/* ---- nvcuda::wmma, m16n16k16 ------------------------------------------------------------------ */
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    float x[16][16];
};

template <typename L> constexpr bool is_col() { return false; }
template <> constexpr bool is_col<col_major>() { return true; }

inline void emu_check(const void *p, unsigned ld, size_t esz, const char *what) {
    if ((uintptr_t)p % 32) emu_die(what), (void)0;
    if (ld < 16 || (ld * esz) % 16) emu_die("wmma: leading dimension not a multiple of 16 bytes (or < 16)");
    if (g_emu && g_emu->dyn) {
        const unsigned char *c = (const unsigned char *)p, *lo = g_emu->dyn, *hi = g_emu->dyn + g_emu->dyn_bytes;
        const unsigned char *last = c + (15 * (size_t)ld + 15) * esz;
        if (c >= lo && c < hi + EMU_GUARD && last + esz > hi) emu_die("wmma: tile outside dynamic shared memory");
    }
}

template <typename Use, typename T, typename L, typename P>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, L> &f, const P *p, unsigned ld) {
    emu_check(p, ld, sizeof(P), "wmma load: pointer not 32-byte aligned");
    __syncwarp();
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) f.x[i][j] = emu_float(is_col<L>() ? p[(size_t)j * ld + i] : p[(size_t)i * ld + j]);
    __syncwarp();
}
template <typename T>
void load_matrix_sync(fragment<accumulator, 16, 16, 16, T> &f, const float *p, unsigned ld, layout_t l) {
    emu_check(p, ld, 4, "wmma load (accumulator): pointer not 32-byte aligned");
    __syncwarp();
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) f.x[i][j] = l == mem_col_major ? p[(size_t)j * ld + i] : p[(size_t)i * ld + j];
    __syncwarp();
}
template <typename T> void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, T> &f, unsigned ld, layout_t l) {
    emu_check(p, ld, 4, "wmma store: pointer not 32-byte aligned");
    __syncwarp();
    if (threadIdx.x % 32 == 0) /* one writer: the values are the same in every lane */
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 16; j++) (l == mem_col_major ? p[(size_t)j * ld + i] : p[(size_t)i * ld + j]) = f.x[i][j];
    __syncwarp();
}
template <typename T> void fill_fragment(fragment<accumulator, 16, 16, 16, T> &f, float v) {
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) f.x[i][j] = v;
}
template <typename T, typename LA, typename LB, typename C>
void mma_sync(fragment<accumulator, 16, 16, 16, C> &d, const fragment<matrix_a, 16, 16, 16, T, LA> &a,
              const fragment<matrix_b, 16, 16, 16, T, LB> &b, const fragment<accumulator, 16, 16, 16, C> &c) {
    float r[16][16];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            float s = c.x[i][j];
            for (int k = 0; k < 16; k++) s += a.x[i][k] * b.x[k][j];
            r[i][j] = s;
        }
    memcpy(d.x, r, sizeof r);
}
} // namespace wmma
} // namespace nvcuda

#endif
