#!/usr/bin/env bash
# run.sh - run every Check suite binary in DIR, merge their TAP streams into one (renumbered,
# plan at the end) and print a summary line "N passed, N failed". Exit status is non-zero when a
# test failed or a suite binary crashed. Tag selection passes through CK_INCLUDE_TAGS /
# CK_EXCLUDE_TAGS; CK_RUN_SUITE / CK_RUN_CASE select further.
set -u
dir=${1:?usage: run.sh BUILD/tests}
total=0 passed=0 failed=0 crashed=0
start=$(date +%s)
for t in "$dir"/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  echo "# suite $name"
  out=$("$t" 2>"$dir/$name.stderr"); rc=$?
  n_here=0
  while IFS= read -r line; do
    case "$line" in
      "ok "*)     total=$((total+1)); passed=$((passed+1)); n_here=$((n_here+1))
                  echo "ok $total ${line#ok [0-9]* }" ;;
      "not ok "*) total=$((total+1)); failed=$((failed+1)); n_here=$((n_here+1))
                  echo "not ok $total ${line#not ok [0-9]* }" ;;
      1..*) ;;
      *) echo "# $line" ;;
    esac
  done <<< "$out"
  if [ $rc -ne 0 ] && [ $n_here -eq 0 ] || [ $rc -gt 1 ]; then
    crashed=$((crashed+1)); failed=$((failed+1)); total=$((total+1))
    echo "not ok $total - $name exited with status $rc"
    sed 's/^/#   /' "$dir/$name.stderr" | tail -20
  fi
done
echo "1..$total"
echo "# $(( $(date +%s) - start ))s"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $total -gt 0 ]
