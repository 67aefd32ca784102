/* conv.h - 2-D convolution, NCHW in and out, with bias: torch.nn.Conv2d (groups = 1) including the
 * asymmetric padding SD's VAE encoder uses before its stride-2 downsample (F.pad (0,1,0,1), then a
 * pad-0 conv: here one call with pad_t = pad_l = 0, pad_b = pad_r = 1). Weights [OC, C, KH, KW] in
 * f32, f16 or bf16, converted to f32 while packing.
 *
 * conv2d is an implicit GEMM: Y[OC, OH*OW] = W[OC, C*KH*KW] * im2col(X)[C*KH*KW, OH*OW] + bias,
 * with the im2col tile gathered straight into the GEMM's packed B panels (never materialised);
 * 1x1 stride-1 unpadded convs read X as B directly. Workspace and determinism rules as gemm.h.
 */
#ifndef DK_CONV_H
#define DK_CONV_H

#include <stddef.h>

#include "gemm.h"
#include "kcommon.h"

typedef struct dk_conv2d {
    int N, C, H, W;                     /* input  [N, C, H, W] */
    int OC, KH, KW;                     /* weight [OC, C, KH, KW] */
    int stride_h, stride_w;             /* >= 1 */
    int pad_t, pad_b, pad_l, pad_r;     /* zero padding, >= 0 */
    int dil_h, dil_w;                   /* >= 1 */
} dk_conv2d;

/* Square kernel k, stride s, symmetric padding p, dilation 1. */
dk_conv2d dk_conv2d_make(int N, int C, int H, int W, int OC, int k, int s, int p);
/* Output spatial size (0 when the shape is invalid). */
int dk_conv2d_oh(const dk_conv2d *s);
int dk_conv2d_ow(const dk_conv2d *s);

/* y[N, OC, OH, OW] = conv(x[N, C, H, W], w[OC, C, KH, KW]) + bias[OC] (bias may be NULL). */
size_t conv2d_workspace_size(const dk_conv2d *s);
dk_gemm_status conv2d(const dk_conv2d *s, const float *x, const void *w, dk_wtype wt, const float *bias, float *y,
                      void *ws, size_t ws_bytes);
void conv2d_ref(const dk_conv2d *s, const float *x, const void *w, dk_wtype wt, const float *bias, float *y);

#endif /* DK_CONV_H */
