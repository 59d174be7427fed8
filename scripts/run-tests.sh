#!/usr/bin/env bash
# Run the whole test suite. pytest's exit code 5 ("no tests collected") is a failure.
#
# The suite runs as two pytest processes side by side (the machine has two cores and
# most tests wait on a daemon, a disk or a socket): group A is the directories named in
# GROUP_A below, group B every other directory under tests/ (so a new directory is never
# left out). A's output streams; B's is kept in a file and printed when both are done.
# Arguments that are options (-x, -k EXPR, --durations=20) go to both groups; arguments
# naming tests (tests/unit, tests/fuse/test_x.py::test_y) run one pytest on just those.
# LOGFS_TEST_JOBS=1 runs the whole suite in one process.
set -uo pipefail
cd "$(dirname "$0")/.."

GROUP_A="tests/reliability tests/fuse tests/cli tests/docs tests/meta tests/install tests/bench"

fail_on_5() {  # $1 = pytest's exit code, $2 = what ran
  if [ "$1" -eq 5 ]; then
    echo "run-tests: pytest collected no tests in $2: failing" >&2
    return 1
  fi
  return "$1"
}

named=0
for a in "$@"; do
  case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && named=1 ;; esac
done
if [ "$named" -eq 1 ] || [ "${LOGFS_TEST_JOBS:-2}" = 1 ]; then
  .venv/bin/python -m pytest "$@"
  fail_on_5 $? "the whole suite"
  exit $?
fi

group_b=()
for d in tests/*/; do
  d=${d%/}
  case " $GROUP_A " in *" $d "*) ;; *) [ "$d" = tests/__pycache__ ] || group_b+=("$d") ;; esac
done

out=$(mktemp -d /tmp/logfs-run-tests.XXXXXX)
pid_b=
# (--one-file-system: a mount a failed test left behind is never emptied through FUSE)
trap '[ -n "$pid_b" ] && kill -- -"$pid_b" 2>/dev/null; rm -rf --one-file-system "$out"' EXIT
trap 'exit 130' INT TERM
echo "run-tests: group A: $GROUP_A"
echo "run-tests: group B: ${group_b[*]} (output at the end; live in $out/b.log)"
start=$(date +%s)
set -m  # B in its own process group, so an interrupt stops all of it
.venv/bin/python -m pytest --basetemp="$out/tmp-b" "$@" "${group_b[@]}" \
  > "$out/b.log" 2>&1 &
pid_b=$!
set +m
.venv/bin/python -m pytest --basetemp="$out/tmp-a" "$@" $GROUP_A
rc_a=$?
end_a=$(date +%s)
wait "$pid_b"
rc_b=$?
end_b=$(date +%s)
echo
echo "================================ group B: ${group_b[*]} ================================"
cat "$out/b.log"
echo
fail_on_5 $rc_a "group A"; rc_a=$?
fail_on_5 $rc_b "group B"; rc_b=$?
echo "run-tests: group A exit $rc_a after $((end_a - start)) s, group B exit $rc_b after" \
     "$((end_b - start)) s"
[ $rc_a -ne 0 ] && exit $rc_a
exit $rc_b
