/* attention.h - scaled dot-product attention, softmax(Q K^T * scale) V, the memory-efficient
 * ("flash") way: the Nq x Nk score matrix is never materialised.
 *
 * Mirrors torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=...) as diffusers'
 * Attention (AttnProcessor2_0) and CLIP's text encoder call it, on the layout the q/k/v linear
 * projections produce, before the head split:
 *   Q [B, Nq, H*d], K [B, Nk, H*d], V [B, Nk, H*d], O [B, Nq, H*d], row-major; head h occupies
 *   columns h*d .. h*d+d-1 of every row.
 * Row and batch strides are explicit (in floats; 0 = packed), so a fused QKV projection
 * [B, N, 3*H*d] is consumed in place by passing q, q + H*d, q + 2*H*d with row stride 3*H*d.
 *
 * Causal masking (CLIP text) masks key j for query i when j > i (top-left aligned; use Nq == Nk).
 *
 * Workspace: size it once with dk_attention_workspace_size(p, nthreads) (nthreads <= 0: the
 * current omp_get_max_threads()) and pass the buffer to every call with those shapes; nothing is
 * allocated inside. The size is O(B*H*Nk*d) (a packed copy of K and V, about the size of K and V
 * themselves) plus O(threads * tile * head_dim): never O(Nq*Nk). If the
 * buffer is smaller than asked for, dk_attention uses as many threads as the buffer allows, and
 * fails only if it cannot hold one thread's tiles.
 */
#ifndef DK_ATTENTION_H
#define DK_ATTENTION_H

#include <stddef.h>

typedef struct dk_attn_params {
    int batch, heads;     /* B, H */
    int nq, nk;           /* query and key/value tokens */
    int head_dim;         /* d: any value >= 1 (SD: 40, 80, 160; VAE mid-block 512; CLIP 64) */
    float scale;          /* usually 1/sqrt(d) */
    int causal;
    /* strides in floats; 0 selects the packed layout: row = heads*head_dim, batch = n*row */
    size_t q_row, k_row, v_row, o_row;
    size_t q_batch, k_batch, v_batch, o_batch;
} dk_attn_params;

typedef enum dk_attn_status {
    DK_ATTN_OK = 0,
    DK_ATTN_BAD_SHAPE,      /* a dimension < 1 */
    DK_ATTN_SMALL_WORKSPACE /* not even one thread's tiles fit */
} dk_attn_status;

/* Packed-layout parameters with scale 1/sqrt(d). */
dk_attn_params dk_attn_params_packed(int batch, int heads, int nq, int nk, int head_dim, int causal);

size_t dk_attention_workspace_size(const dk_attn_params *p, int nthreads);
dk_attn_status dk_attention(const dk_attn_params *p, const float *q, const float *k, const float *v, float *o,
                            void *workspace, size_t workspace_bytes);

/* Plain reference: one query row at a time in double (allocates one Nk row of doubles). */
void dk_attention_ref(const dk_attn_params *p, const float *q, const float *k, const float *v, float *o);

#endif
