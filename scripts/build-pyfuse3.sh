#!/usr/bin/env bash
# Build pyfuse3 from its sdist with logfs's patches applied (patches/README.md), once,
# into build/wheels/; print the wheel's path on stdout (progress goes to stderr).
#
#   scripts/build-pyfuse3.sh     what bootstrap.sh and `make install` run
#
# PYTHON (default python3) is the interpreter the wheel is for. The wheel is kept in
# build/wheels/pyfuse3-<version>/ where <version> is 3.5.0+logfs.<key>, and <key> hashes
# everything the build depends on: the sdist's hash, the patches, this script, the
# Python ABI and the libfuse version. So a second run (or `make install` after
# bootstrap) reuses it, and changing a patch builds a new one with a new version.
#
# A build (about a minute on 2 cores) needs PyPI: the sdist, pinned by its sha256, and
# the build tools at pinned versions, installed into a throwaway virtualenv. The patches
# change .pyx/.pxi files; pyfuse3's own build backend compiles the .pyx with Cython, and
# the C file the sdist ships is deleted first, so it cannot be compiled instead.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PYFUSE3_VERSION=3.5.0
PYFUSE3_SHA256=88399a9494b88603230bba300f4ba9ad63fece5ed514ca3633d555a0c6a42b24
CYTHON_VERSION=3.2.4        # the Cython that generated the sdist's own __init__.c
SETUPTOOLS_VERSION=80.9.0
SETUPTOOLS_SCM_VERSION=9.2.2
PY=${PYTHON:-python3}

say() { echo "build-pyfuse3: $*" >&2; }

abi=$("$PY" -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')
fuse=$(pkg-config --modversion fuse3)
key=$( { echo "$PYFUSE3_VERSION $PYFUSE3_SHA256 $CYTHON_VERSION $SETUPTOOLS_VERSION" \
              "$SETUPTOOLS_SCM_VERSION $abi fuse3-$fuse";
         cat "$REPO/scripts/build-pyfuse3.sh" patches/*.patch; } | sha256sum | cut -c1-10)
version="$PYFUSE3_VERSION+logfs.$key"
out=build/wheels/pyfuse3-$version
mkdir -p build/wheels

exec 9>build/wheels/.lock          # one build at a time
flock 9
wheel=$(ls "$out"/pyfuse3-*.whl 2>/dev/null | head -n1 || true)
if [ -n "$wheel" ]; then
  echo "$REPO/$wheel"
  exit 0
fi

say "building pyfuse3 $version (the sdist with patches/, regenerated with Cython $CYTHON_VERSION)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
pip=("$tmp/venv/bin/pip" -q --disable-pip-version-check)
quiet_pip() {  # pip, without the warning about a configured index that is not there
  local rc=0
  "${pip[@]}" "$@" > "$tmp/pip.log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither a file nor a directory" "$tmp/pip.log" >&2 || true
  return $rc
}
quiet_pip install "setuptools==$SETUPTOOLS_VERSION" "setuptools-scm==$SETUPTOOLS_SCM_VERSION" \
  "cython==$CYTHON_VERSION"
echo "pyfuse3==$PYFUSE3_VERSION --hash=sha256:$PYFUSE3_SHA256" > "$tmp/sdist.txt"
quiet_pip download --no-deps --no-binary :all: --no-build-isolation -r "$tmp/sdist.txt" \
  -d "$tmp/sdist"
src=$tmp/pyfuse3-$PYFUSE3_VERSION
mkdir "$src"
tar -xzf "$tmp/sdist/pyfuse3-$PYFUSE3_VERSION.tar.gz" --no-same-owner -C "$src" --strip-components=1
for p in patches/*.patch; do
  say "applying $p"
  # outside any git repository, `git apply` applies a patch to plain files
  (cd "$src" && git apply "$REPO/$p")
done
# the build compiles the patched .pyx with Cython; remove the sdist's generated C, so
# that nothing stale can be compiled instead
rm -f "$src/src/pyfuse3/__init__.c"
# the local version label says which build this is (pip list, pyfuse3.__version__)
(cd "$src" && SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PYFUSE3="$version" \
   quiet_pip wheel --no-deps --no-build-isolation -w "$tmp/dist" .)
mkdir -p "$out"
mv "$tmp"/dist/pyfuse3-*.whl "$out/"
wheel=$(ls "$out"/pyfuse3-*.whl | head -n1)
say "built $wheel"
echo "$REPO/$wheel"
