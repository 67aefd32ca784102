/* dcuda.h - the one seam between the C engine and the CUDA code: extern "C" launchers and
 * queries implemented in the .cu files beside it. Included by C files only in a CUDA build
 * (DIFFAUG_HAVE_CUDA); never includes CUDA headers itself. Every function returns 0 on success or
 * a CUDA/cuBLAS error code, and fills msg (when non-NULL) with the failing call's name and text. */
#ifndef DCUDA_H
#define DCUDA_H

#include <stddef.h>

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

#ifdef __cplusplus
}
#endif
#endif
