#!/usr/bin/env bash
# run.sh - the CPU benchmark table: measure this host's FMA peak and memory bandwidth first
# (bench_peak), export them so every row can print % of peak, then run every bench_* binary.
# Prints the machine, the date and the command so the table can go into docs/PERFORMANCE.md.
set -eu
dir=${1:?usage: run.sh BUILD/bench}
echo "# diffaug CPU benchmarks, $(date -u +%Y-%m-%d), $(uname -m)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}"
if [ -x "$dir/bench_peak" ]; then
  eval "$("$dir/bench_peak" --export)"
  export DIFFAUG_PEAK_GFLOPS DIFFAUG_PEAK_GBS
  echo "# measured peak: ${DIFFAUG_PEAK_GFLOPS} GFLOP/s f32 FMA, ${DIFFAUG_PEAK_GBS} GB/s memory (bench_peak)"
fi
for b in "$dir"/bench_*; do
  [ -x "$b" ] || continue
  [ "$(basename "$b")" = bench_peak ] && continue
  [ -n "${BENCH_ONLY:-}" ] && case "$(basename "$b")" in *"$BENCH_ONLY"*) ;; *) continue ;; esac
  echo
  echo "## $(basename "$b")"
  "$b" ${BENCH_ARGS:-}
done
