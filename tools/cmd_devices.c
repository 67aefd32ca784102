/* cmd_devices.c - `diffaug devices`: the backends this build has and, in a CUDA build, each GPU
 * with its compute capability, memory and multiprocessors. Exit 0 always when the build has no
 * CUDA (the CPU backend is always there); --require-gpu makes "no GPU" an error (exit 1). */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#ifdef DIFFAUG_HAVE_CUDA
#include "dcuda.h"
#endif

int cmd_devices(int argc, char **argv) {
    int require_gpu = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--require-gpu")) require_gpu = 1;
        else if (!strcmp(argv[i], "--help")) {
            printf("usage: diffaug devices [--require-gpu]\n");
            return CLI_OK;
        } else {
            fprintf(stderr, "diffaug devices: unknown option '%s'\n", argv[i]);
            return CLI_USAGE;
        }
    }
    printf("cpu: %d OpenMP threads\n", omp_get_max_threads());
#ifdef DIFFAUG_HAVE_CUDA
    char msg[512] = "";
    int n = 0;
    if (dcu_device_count(&n, msg, sizeof msg) != 0 || n == 0) {
        printf("cuda: built for %s; no usable GPU%s%s\n", dcu_build_archs(), *msg ? ": " : "", msg);
        return require_gpu ? CLI_FAIL : CLI_OK;
    }
    for (int d = 0; d < n; d++) {
        dcu_device_info info;
        if (dcu_device_info_get(d, &info, msg, sizeof msg) != 0) {
            fprintf(stderr, "diffaug devices: GPU %d: %s\n", d, msg);
            return CLI_FAIL;
        }
        printf("cuda:%d %s, compute %d.%d, %d SMs, %.1f GiB (%.1f free), L2 %d KiB, driver %d, runtime %d\n", d,
               info.name, info.major, info.minor, info.multiprocessors, info.total_mem / 1073741824.0,
               info.free_mem / 1073741824.0, info.l2_bytes / 1024, info.driver_version, info.runtime_version);
    }
    return CLI_OK;
#else
    printf("cuda: not built (no nvcc at build time, or NO_CUDA=1)\n");
    return require_gpu ? CLI_FAIL : CLI_OK;
#endif
}
