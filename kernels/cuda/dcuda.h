/* dcuda.h - the one seam between the C engine and the CUDA code: extern "C" launchers and
 * queries implemented in the .cu files beside it. Included by C files only in a CUDA build
 * (DIFFAUG_HAVE_CUDA); never includes CUDA headers itself (streams and handles travel as void *).
 * Every function returns 0 on success or a CUDA/cuBLAS error code, and fills a message naming the
 * failing call and its cudaGetErrorString / cublasGetStatusString text (msg argument, or ctx->msg
 * for the launchers).
 *
 * Semantics of every launcher mirror the CPU kernels in kernels/cpu (ops.h, norm.h, attention.h,
 * conv.h, gemm.h, convert.h); all pointers except host ids/outputs named "host" are device memory.
 * Launchers only enqueue on ctx's stream: a kernel that faults is reported by the next call that
 * synchronises (dcu_sync, dcu_download), unless ctx->sync_each is set (debug / sanitizer runs),
 * which synchronises after every launch so the failing launcher names itself.
 */
#ifndef DCUDA_H
#define DCUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcu_device_info {
    char name[256];
    int major, minor;          /* compute capability */
    int multiprocessors;
    size_t total_mem, free_mem; /* bytes */
    int l2_bytes;
    int smem_per_block_optin;  /* bytes */
    int clock_khz, mem_clock_khz, mem_bus_bits;
    int driver_version, runtime_version;
} dcu_device_info;

/* Number of usable CUDA devices; 0 (and msg set) when there is no driver or no GPU. */
int dcu_device_count(int *count, char *msg, size_t msg_len);
int dcu_device_info_get(int device, dcu_device_info *info, char *msg, size_t msg_len);
/* The architectures this binary carries code for, e.g. "sm_90 compute_90". */
const char *dcu_build_archs(void);

/* ---- context: device, one stream, one cuBLAS handle with a fixed workspace ---------------------- */
typedef struct dcu_ctx {
    int device;
    void *stream;     /* cudaStream_t */
    void *blas;       /* cublasHandle_t */
    void *blas_ws;    /* cuBLAS workspace (DCU_BLAS_WS bytes), set once so cuBLAS never allocates later */
    int smem_optin;   /* largest dynamic shared memory a block may opt into (bytes) */
    int sync_each;    /* synchronise after every launch (env DIFFAUG_CUDA_SYNC=1) */
    char msg[512];    /* the last error */
    void *blaslt;     /* cublasLtHandle_t, created on first use by dcu_linear_lt (appended) */
} dcu_ctx;

#define DCU_BLAS_WS ((size_t)32 << 20)

int dcu_ctx_create(dcu_ctx **out, int device, char *msg, size_t msg_len);
void dcu_ctx_destroy(dcu_ctx *c);
int dcu_malloc(dcu_ctx *c, void **p, size_t bytes);
void dcu_free(dcu_ctx *c, void *p);
int dcu_upload(dcu_ctx *c, void *dst, const void *host, size_t bytes);   /* async H2D on the stream */
int dcu_download(dcu_ctx *c, void *host, const void *src, size_t bytes); /* D2H, synchronises */
int dcu_copy(dcu_ctx *c, void *dst, const void *src, size_t bytes);      /* D2D (memmove semantics) */
int dcu_sync(dcu_ctx *c);

/* CUDA events for benchmarks: elapsed milliseconds between two records on the stream. */
int dcu_timer_start(dcu_ctx *c, void **ev_pair);
int dcu_timer_stop(dcu_ctx *c, void *ev_pair, float *ms); /* synchronises, frees the events */

/* ---- conversions (convert.cu; bit-identical to kcommon.h: RNE, Inf kept, NaN quieted) ------------ */
/* wtype codes are dk_wtype's: 0 f32, 1 f16, 2 bf16 */
int dcu_f32_to_f16(dcu_ctx *c, uint16_t *dst, const float *src, size_t n);
int dcu_f32_to_bf16(dcu_ctx *c, uint16_t *dst, const float *src, size_t n);
int dcu_f16_to_f32(dcu_ctx *c, float *dst, const uint16_t *src, size_t n);
int dcu_bf16_to_f32(dcu_ctx *c, float *dst, const uint16_t *src, size_t n);

/* ---- elementwise and data movement (ops.cu; ops.h) ---------------------------------------------- */
enum { DCU_ACT_SILU = 0, DCU_ACT_GELU = 1, DCU_ACT_GELU_TANH = 2, DCU_ACT_QUICK_GELU = 3 };
int dcu_act(dcu_ctx *c, int kind, float *y, const float *x, size_t n);
int dcu_geglu(dcu_ctx *c, float *y, const float *x, size_t M, size_t F);
int dcu_add(dcu_ctx *c, float *y, const float *a, const float *b, size_t n);
int dcu_mul(dcu_ctx *c, float *y, const float *a, const float *b, size_t n);
int dcu_scale(dcu_ctx *c, float *y, const float *x, float s, float t, size_t n);
int dcu_add_channel_bias(dcu_ctx *c, float *y, const float *x, const void *bias, int bt, size_t N, size_t C,
                         size_t HW);
int dcu_add_row(dcu_ctx *c, float *y, const float *x, const void *row, int rt, size_t M, size_t N);
int dcu_upsample2x(dcu_ctx *c, float *y, const float *x, size_t N, size_t C, size_t H, size_t W);
int dcu_concat_channels(dcu_ctx *c, float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N,
                        size_t HW);
int dcu_transpose(dcu_ctx *c, float *y, const float *x, size_t B, size_t M, size_t N);
/* ids in device memory; table [rows, D] of type tt */
int dcu_gather_rows(dcu_ctx *c, float *y, const void *table, int tt, const int32_t *ids, size_t n, size_t D);
typedef struct dcu_temb {
    int dim, flip_sin_to_cos;
    float downscale_freq_shift, scale, max_period;
} dcu_temb;
int dcu_timestep_embedding(dcu_ctx *c, float *y, const float *t, size_t B, const dcu_temb *p);

/* ---- normalisation (norm.cu; norm.h) ------------------------------------------------------------ */
int dcu_groupnorm(dcu_ctx *c, float *y, const float *x, size_t N, size_t C, size_t HW, int groups, float eps,
                  const void *gamma, const void *beta, int wt, int silu);
int dcu_layernorm(dcu_ctx *c, float *y, const float *x, size_t M, size_t D, float eps, const void *gamma,
                  const void *beta, int wt);
int dcu_softmax(dcu_ctx *c, float *y, const float *x, size_t M, size_t D);

/* ---- GEMM through cuBLAS (gemm.cu; gemm.h linear / conv.h) -------------------------------------- */
/* y[M,N] = x[M,K] W[N,K]^T + bias[N]. W of type wt (0/1/2). f32 W: FP32 SGEMM-class (CUBLAS_COMPUTE_32F,
 * no TF32). 16-bit W: x is rounded to W's type into ws, then tensor cores with f32 accumulation.
 * ws: at least dcu_linear_ws(M, K) bytes. bias f32 or NULL. */
size_t dcu_linear_ws(int M, int K);
int dcu_linear(dcu_ctx *c, int M, int N, int K, const float *x, const void *W, int wt, const float *bias,
               float *y, void *ws, size_t ws_bytes);

typedef struct dcu_conv {
    int N, C, H, W, OC, KH, KW, stride_h, stride_w, pad_t, pad_b, pad_l, pad_r, dil_h, dil_w;
} dcu_conv;
/* y[N,OC,OH,OW] = conv(x[N,C,H,W], w[OC,C,KH,KW]) + bias: im2col of a chunk of output pixels into ws
 * (in W's type), then one cuBLAS GEMM per chunk. ws: at least dcu_conv2d_ws(s) bytes. */
size_t dcu_conv2d_ws(const dcu_conv *s);
int dcu_conv2d(dcu_ctx *c, const dcu_conv *s, const float *x, const void *w, int wt, const float *bias, float *y,
               void *ws, size_t ws_bytes);

/* ---- attention (attention.cu; attention.h) ------------------------------------------------------ */
typedef struct dcu_attn {
    int batch, heads, nq, nk, head_dim, causal;
    float scale;
    size_t q_row, k_row, v_row, o_row, q_batch, k_batch, v_batch, o_batch; /* resolved (never 0) */
} dcu_attn;
int dcu_attention(dcu_ctx *c, const dcu_attn *p, const float *q, const float *k, const float *v, float *o);

/* ==== appended: tensor-core kernels, sampling ops, graphs (docs/CUDA.md "v2") ===================== */

/* Flash attention on tensor cores (attention_tc.cu): Q, K, V, P rounded to wt (1 f16, 2 bf16), f32
 * accumulation, same semantics and strides as dcu_attention. Needs dcu_attention_tc_smem(d) bytes
 * of shared memory per block (<= ctx->smem_optin, else an error: use dcu_attention). */
size_t dcu_attention_tc_smem(int head_dim);
int dcu_attention_tc(dcu_ctx *c, const dcu_attn *p, const float *q, const float *k, const float *v, float *o, int wt);

/* Sampling arithmetic (sampling.cu; kernels/cpu/sampling.h, the same per-element code as the CPU). */
int dcu_lincomb(dcu_ctx *c, float *y, int k, const float *a, const float *const *x, size_t n);
int dcu_cfg_combine(dcu_ctx *c, float *y, const float *u, const float *cond, const float *img, float g, float g_img,
                    size_t n);
int dcu_philox_normal(dcu_ctx *c, float *y, uint64_t seed, uint64_t stream, uint64_t first, size_t n, float mean,
                      float std);
/* One sampler update (st: struct dk_step of sampling.h, scalars from da_sampler_step_params). */
struct dk_step;
int dcu_sampler_step(dcu_ctx *c, const struct dk_step *st, float *x, const float *m, const float *noise,
                     float *cur_x0, const float *prev_x0, size_t n);
/* The model input of a step (p: struct dk_model_input, from da_sampler_model_input_params). */
struct dk_model_input;
int dcu_model_input(dcu_ctx *c, const struct dk_model_input *p, float *y, const float *x, size_t n);

/* CUDA graphs on ctx's stream (device.cu): begin capturing (thread-local mode), end it and
 * instantiate (*exec replaced, the old one destroyed), replay, free. While capturing nothing runs,
 * and no call may synchronise (downloads, DIFFAUG_CUDA_SYNC=1) or copy from pageable host memory. */
int dcu_graph_begin(dcu_ctx *c);
int dcu_graph_end(dcu_ctx *c, void **exec);
int dcu_graph_replay(dcu_ctx *c, void *exec);
void dcu_graph_free(void *exec);

/* Conv2d as an implicit GEMM on tensor cores (conv_tc.cu) for 16-bit weights (wt 1 f16, 2 bf16):
 * any kernel / stride / padding / dilation, groups 1, NCHW, x rounded to wt as dcu_conv2d does, f32
 * accumulation, bias (f32 or NULL) in the epilogue. No scratch. */
int dcu_conv2d_tc(dcu_ctx *c, const dcu_conv *s, const float *x, const void *w, int wt, const float *bias, float *y);

/* linear through cuBLASLt with the bias added in the GEMM's epilogue (gemm_lt.cu): same contract
 * and precision as dcu_linear (x rounded to W's type into ws for 16-bit W). */
int dcu_linear_lt(dcu_ctx *c, int M, int N, int K, const float *x, const void *W, int wt, const float *bias, float *y,
                  void *ws, size_t ws_bytes);

#ifdef __cplusplus
}
#endif
#endif
