/* device.cu - CUDA device discovery and the per-backend context of dcuda.h: device, one stream,
 * one cuBLAS handle whose workspace is allocated once here (so cuBLAS never allocates inside a
 * forward), memory and copies, CUDA-event timers for the benchmarks. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dcu_common.cuh"
#include "dcuda.h"

static int fail(cudaError_t e, const char *call, char *msg, size_t msg_len) {
    if (msg && msg_len) snprintf(msg, msg_len, "%s failed: %s (%s)", call, cudaGetErrorName(e), cudaGetErrorString(e));
    return (int)e;
}

extern "C" int dcu_device_count(int *count, char *msg, size_t msg_len) {
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        *count = 0;
        return fail(e, "cudaGetDeviceCount", msg, msg_len);
    }
    return 0;
}

extern "C" int dcu_device_info_get(int device, dcu_device_info *info, char *msg, size_t msg_len) {
    memset(info, 0, sizeof *info);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) return fail(e, "cudaGetDeviceProperties", msg, msg_len);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->major = p.major;
    info->minor = p.minor;
    info->multiprocessors = p.multiProcessorCount;
    info->total_mem = p.totalGlobalMem;
    info->l2_bytes = p.l2CacheSize;
    info->smem_per_block_optin = (int)p.sharedMemPerBlockOptin;
    cudaDeviceGetAttribute(&info->clock_khz, cudaDevAttrClockRate, device);
    cudaDeviceGetAttribute(&info->mem_clock_khz, cudaDevAttrMemoryClockRate, device);
    cudaDeviceGetAttribute(&info->mem_bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
    cudaDriverGetVersion(&info->driver_version);
    cudaRuntimeGetVersion(&info->runtime_version);
    e = cudaSetDevice(device);
    if (e != cudaSuccess) return fail(e, "cudaSetDevice", msg, msg_len);
    size_t fr = 0, tot = 0;
    e = cudaMemGetInfo(&fr, &tot);
    if (e != cudaSuccess) return fail(e, "cudaMemGetInfo", msg, msg_len);
    info->free_mem = fr;
    return 0;
}

#ifndef DIFFAUG_CUDA_ARCHS
#define DIFFAUG_CUDA_ARCHS "see CUDA_ARCH in the Makefile"
#endif
extern "C" const char *dcu_build_archs(void) { return DIFFAUG_CUDA_ARCHS; }

/* ---- context ----------------------------------------------------------------------------------- */
extern "C" int dcu_ctx_create(dcu_ctx **out, int device, char *msg, size_t msg_len) {
    *out = NULL;
    int n = 0;
    int rc = dcu_device_count(&n, msg, msg_len);
    if (rc) return rc;
    if (device < 0 || device >= n) {
        if (msg && msg_len) snprintf(msg, msg_len, "CUDA device %d requested but %d device(s) present", device, n);
        return (int)cudaErrorInvalidDevice;
    }
    dcu_ctx *c = (dcu_ctx *)calloc(1, sizeof *c);
    if (!c) return fail(cudaErrorMemoryAllocation, "calloc(dcu_ctx)", msg, msg_len);
    c->device = device;
    const char *env = getenv("DIFFAUG_CUDA_SYNC");
    c->sync_each = env && *env && strcmp(env, "0") != 0;
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) { free(c); return fail(e, "cudaSetDevice", msg, msg_len); }
    cudaStream_t s;
    e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess) { free(c); return fail(e, "cudaStreamCreateWithFlags", msg, msg_len); }
    c->stream = s;
    int optin = 0;
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    c->smem_optin = optin;
    cublasHandle_t h;
    cublasStatus_t bs = cublasCreate(&h);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        if (msg && msg_len) snprintf(msg, msg_len, "cublasCreate failed: %s", cublasGetStatusString(bs));
        cudaStreamDestroy(s);
        free(c);
        return (int)bs;
    }
    c->blas = h;
    e = cudaMalloc(&c->blas_ws, DCU_BLAS_WS);
    if (e != cudaSuccess) { rc = fail(e, "cudaMalloc(cuBLAS workspace)", msg, msg_len); dcu_ctx_destroy(c); return rc; }
    const char *step = NULL;
    if ((bs = cublasSetStream(h, s)) != CUBLAS_STATUS_SUCCESS) step = "cublasSetStream";
    else if ((bs = cublasSetWorkspace(h, c->blas_ws, DCU_BLAS_WS)) != CUBLAS_STATUS_SUCCESS) step = "cublasSetWorkspace";
    /* default math: FP32 GEMMs (CUBLAS_COMPUTE_32F) stay FP32, no TF32 (docs/CUDA.md, precision);
     * 16-bit inputs still use tensor cores with f32 accumulation */
    else if ((bs = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) step = "cublasSetMathMode";
    if (step) {
        if (msg && msg_len) snprintf(msg, msg_len, "%s failed: %s", step, cublasGetStatusString(bs));
        dcu_ctx_destroy(c);
        return (int)bs;
    }
    *out = c;
    return 0;
}

extern "C" void dcu_ctx_destroy(dcu_ctx *c) {
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize((cudaStream_t)c->stream);
    if (c->blas) cublasDestroy((cublasHandle_t)c->blas);
    if (c->blaslt) cublasLtDestroy((cublasLtHandle_t)c->blaslt);
    if (c->blas_ws) cudaFree(c->blas_ws);
    if (c->stream) cudaStreamDestroy((cudaStream_t)c->stream);
    free(c);
}

extern "C" int dcu_malloc(dcu_ctx *c, void **p, size_t bytes) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        snprintf(c->msg, sizeof c->msg, "cudaMalloc(%zu bytes): %s (%s)", bytes, cudaGetErrorName(e),
                 cudaGetErrorString(e));
        return (int)e;
    }
    return 0;
}

extern "C" void dcu_free(dcu_ctx *c, void *p) {
    if (!p) return;
    /* the stream may still use p */
    cudaStreamSynchronize(DCU_STREAM(c));
    cudaFree(p);
}

extern "C" int dcu_upload(dcu_ctx *c, void *dst, const void *host, size_t bytes) {
    if (!bytes) return 0;
    /* pageable host memory: the call returns once the source has been staged, so the caller may
     * reuse its buffer at once */
    cudaError_t e = cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, DCU_STREAM(c));
    return e == cudaSuccess ? 0 : dcu_fail(c, e, "cudaMemcpyAsync(host to device)");
}

extern "C" int dcu_download(dcu_ctx *c, void *host, const void *src, size_t bytes) {
    cudaError_t e = cudaStreamSynchronize(DCU_STREAM(c));
    if (e != cudaSuccess) return dcu_fail(c, e, "cudaStreamSynchronize (an earlier kernel failed)");
    if (!bytes) return 0;
    e = cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, DCU_STREAM(c));
    if (e != cudaSuccess) return dcu_fail(c, e, "cudaMemcpyAsync(device to host)");
    e = cudaStreamSynchronize(DCU_STREAM(c));
    return e == cudaSuccess ? 0 : dcu_fail(c, e, "cudaStreamSynchronize after device to host copy");
}

extern "C" int dcu_copy(dcu_ctx *c, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return 0;
    const char *s = (const char *)src;
    char *d = (char *)dst;
    if (d < s + bytes && s < d + bytes) {
        /* overlapping ranges: cudaMemcpy's result is undefined there; go through the cuBLAS workspace
         * in pieces that are safe in the copy direction */
        size_t step = DCU_BLAS_WS;
        for (size_t done = 0; done < bytes; done += step) {
            size_t nb = bytes - done < step ? bytes - done : step;
            size_t off = d > s ? bytes - done - nb : done; /* copy from the far end when moving up */
            cudaError_t e = cudaMemcpyAsync(c->blas_ws, s + off, nb, cudaMemcpyDeviceToDevice, DCU_STREAM(c));
            if (e == cudaSuccess) e = cudaMemcpyAsync(d + off, c->blas_ws, nb, cudaMemcpyDeviceToDevice, DCU_STREAM(c));
            if (e != cudaSuccess) return dcu_fail(c, e, "cudaMemcpyAsync(device to device, overlapping)");
        }
        return 0;
    }
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, DCU_STREAM(c));
    return e == cudaSuccess ? 0 : dcu_fail(c, e, "cudaMemcpyAsync(device to device)");
}

extern "C" int dcu_sync(dcu_ctx *c) {
    cudaError_t e = cudaStreamSynchronize(DCU_STREAM(c));
    return e == cudaSuccess ? 0 : dcu_fail(c, e, "cudaStreamSynchronize");
}

extern "C" int dcu_timer_start(dcu_ctx *c, void **ev_pair) {
    cudaEvent_t *ev = (cudaEvent_t *)calloc(2, sizeof(cudaEvent_t));
    *ev_pair = NULL;
    if (!ev) return dcu_fail(c, cudaErrorMemoryAllocation, "calloc(events)");
    cudaError_t e = cudaEventCreate(&ev[0]);
    if (e == cudaSuccess) e = cudaEventCreate(&ev[1]);
    if (e == cudaSuccess) e = cudaEventRecord(ev[0], DCU_STREAM(c));
    if (e != cudaSuccess) { free(ev); return dcu_fail(c, e, "cudaEventCreate/Record"); }
    *ev_pair = ev;
    return 0;
}

extern "C" int dcu_timer_stop(dcu_ctx *c, void *ev_pair, float *ms) {
    cudaEvent_t *ev = (cudaEvent_t *)ev_pair;
    cudaError_t e = cudaEventRecord(ev[1], DCU_STREAM(c));
    if (e == cudaSuccess) e = cudaEventSynchronize(ev[1]);
    if (e == cudaSuccess) e = cudaEventElapsedTime(ms, ev[0], ev[1]);
    cudaEventDestroy(ev[0]);
    cudaEventDestroy(ev[1]);
    free(ev);
    return e == cudaSuccess ? 0 : dcu_fail(c, e, "cudaEventRecord/Synchronize/ElapsedTime");
}
