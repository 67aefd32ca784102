/* device.cu - CUDA device discovery for the engine (dcuda.h): how many GPUs, what they are. */
#include <cuda_runtime.h>
#include <cstdio>
#include <cstring>

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
