#!/usr/bin/env bash
# Install everything logfs needs on a fresh Debian/Ubuntu machine, idempotently:
# system packages (FUSE 3, a C compiler and headers for building pyfuse3, tools the
# tests drive: strace, curl, rsync, man-db, strip, bindfs, nginx, kcat), pyfuse3 built with logfs's patches
# (scripts/build-pyfuse3.sh, patches/README.md; built once, kept in build/wheels/), and
# a virtualenv in .venv with that pyfuse3 and logfs installed in editable mode, with the
# test and docs (man page, completions) extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# bindfs and nginx-light: the references the benchmarks and their smoke tests compare
# logfs with (tests/bench); nginx's own service is never started (policy-rc.d below)
# kafkacat: kcat 1.7 with librdkafka 2.0, one of the Kafka clients tests/kafka drives
for pkg in fuse3 libfuse3-dev pkg-config gcc binutils strace curl rsync man-db bindfs nginx-light \
           kafkacat; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "bootstrap: installing system packages: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then  # packages must not start services (nginx) on this machine
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy"
    added_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >&2 || rc=$?
  [ -n "$added_policy" ] && $SUDO rm -f "$policy"
  [ "${rc:-0}" -eq 0 ] || exit "$rc"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
fi
wheel=$(PYTHON=.venv/bin/python ./scripts/build-pyfuse3.sh)
stamp=.venv/.logfs-installed
# (again when the packaging or a C extension's source changed: setup.py builds it)
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] || \
   [ logfs/kafka/_records.c -nt "$stamp" ] || [ logfs/exporter/_fastpath.c -nt "$stamp" ] || \
   [ "$(cat "$stamp")" != "$wheel" ]; then
  echo "bootstrap: installing logfs, pyfuse3 ($(basename "$wheel")) and their Python" \
       "dependencies into .venv" >&2
  .venv/bin/pip install -q --upgrade pip >&2
  # the patched wheel replaces whatever pyfuse3 was there (a stock one, an older build:
  # its version, 3.5.0+logfs.<key>, differs from theirs)
  .venv/bin/pip install -q -e '.[test,docs]' "$wheel" >&2
  echo "$wheel" > "$stamp"
fi
