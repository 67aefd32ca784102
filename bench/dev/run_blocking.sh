#!/usr/bin/env bash
# run_blocking.sh - experiment 01: build dev_gemm_blocking once per blocking variant and run it.
# Usage (repo root): bench/dev/run_blocking.sh [OMP threads, default 1]  -> rows on stdout
set -eu
T=${1:-1}
out=build/dev
mkdir -p $out
variants=${VARIANTS:-"MR14_KC256_MC168_NC512:-DDK_MR=14,-DDK_KC_MAX=256,-DDK_MC_MAX=168,-DDK_NC_MAX=512"}
for v in $variants; do
  name=${v%%:*}
  flags=$(echo "${v#*:}" | tr ',' ' ')
  gcc -std=c11 -D_GNU_SOURCE -O3 -march=native -fopenmp -Iengine -Ikernels/cpu -Ibench $flags -DVARIANT="\"$name\"" \
      -o $out/blk_$name bench/dev/dev_gemm_blocking.c kernels/cpu/gemm.c kernels/cpu/conv.c \
      $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lm
  OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T $out/blk_$name
done
