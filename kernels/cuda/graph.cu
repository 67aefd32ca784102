/* graph.cu - CUDA graphs over the context's one stream: capture the ops of a step once, replay
 * them with one launch. What may be captured (docs/CUDA.md): kernels, cuBLAS / cuBLASLt calls (the
 * handle's workspace is fixed at context creation, as capture requires), device-to-device copies.
 * What may not: anything that synchronises (dcu_download, dcu_free, dcu_sync, DIFFAUG_CUDA_SYNC=1),
 * copies from pageable host memory (dcu_upload, gather_rows' ids), allocation. Replays reuse the
 * captured pointers and scalars: buffers must stay where they were, and a value that changes per
 * step (a timestep, a guidance scale) must live in device memory that the caller updates between
 * replays with a captured-outside device copy, not in a kernel argument. */
#include "dcu_common.cuh"

extern "C" int dcu_graph_begin(dcu_ctx *c) {
    if (c->sync_each) {
        snprintf(c->msg, sizeof c->msg,
                 "graph capture is impossible with DIFFAUG_CUDA_SYNC=1 (it synchronises after every launch)");
        return (int)cudaErrorNotPermitted;
    }
    cudaError_t e = cudaStreamBeginCapture(DCU_STREAM(c), cudaStreamCaptureModeThreadLocal);
    return e == cudaSuccess ? 0 : dcu_fail(c, e, "cudaStreamBeginCapture");
}

extern "C" int dcu_graph_end(dcu_ctx *c, void **exec) {
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(DCU_STREAM(c), &g);
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        return dcu_fail(c, e, "cudaStreamEndCapture (an op issued while recording was not capturable)");
    }
    cudaGraphExec_t x = NULL;
    e = cudaGraphInstantiate(&x, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) return dcu_fail(c, e, "cudaGraphInstantiate");
    if (*exec) cudaGraphExecDestroy((cudaGraphExec_t)*exec);
    *exec = x;
    return 0;
}

extern "C" int dcu_graph_replay(dcu_ctx *c, void *exec) {
    if (!exec) {
        snprintf(c->msg, sizeof c->msg, "graph replay before any graph was recorded");
        return (int)cudaErrorInvalidValue;
    }
    cudaError_t e = cudaGraphLaunch((cudaGraphExec_t)exec, DCU_STREAM(c));
    if (e != cudaSuccess) return dcu_fail(c, e, "cudaGraphLaunch");
    return dcu_check_launch(c, "cudaGraphLaunch");
}

extern "C" void dcu_graph_free(void *exec) {
    if (exec) cudaGraphExecDestroy((cudaGraphExec_t)exec);
}
