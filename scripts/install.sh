#!/usr/bin/env bash
# A system-wide install of logfs, and its removal (make install / make uninstall).
#
#   scripts/install.sh generate OUTDIR   man page + bash/zsh completions from the parser
#   scripts/install.sh install           everything below
#   scripts/install.sh uninstall         remove exactly what install put there
#
# Where things go (environment variables; the Makefile passes its own of the same names):
#   VENV=/opt/logfs          a virtualenv holding logfs and its dependencies
#   PREFIX=/usr/local        $PREFIX/bin/logfs (a symlink into VENV), the man page in
#                            $PREFIX/share/man/man1, completions in $PREFIX/share/...
#   SBINDIR=/sbin            mount.fuse.logfs, the helper mount(8) runs for fuse.logfs
#                            (mount(8) looks for helpers in /sbin only)
#   SYSTEMDDIR=/etc/systemd/system   logfs@.service
#
# install records every file and directory it creates outside VENV in
# VENV/install-manifest; uninstall removes those (directories only if empty) and VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

VENV=${VENV:-/opt/logfs}
PREFIX=${PREFIX:-/usr/local}
SBINDIR=${SBINDIR:-/sbin}
SYSTEMDDIR=${SYSTEMDDIR:-/etc/systemd/system}
PYTHON=${PYTHON:-python3}
GEN_PYTHON=${GEN_PYTHON:-$REPO/.venv/bin/python}   # has the [docs] extra (bootstrap)

say() { echo "install: $*" >&2; }

generate() {  # OUTDIR: man/logfs.1, completions/logfs.bash, completions/_logfs
  local out=$1 bindir
  bindir=$(dirname "$GEN_PYTHON")
  mkdir -p "$out/man" "$out/completions"
  "$GEN_PYTHON" "$REPO/scripts/gen-man-extra.py" > "$out/man/extra.include"
  "$bindir/argparse-manpage" --module logfs.cli --function build_parser \
    --project-name logfs --prog logfs --version "$("$GEN_PYTHON" -c 'import logfs; print(logfs.__version__)')" \
    --description "Kafka's log, as files: a FUSE filesystem of append-only logs" \
    --manual-title "logfs manual" --include "$out/man/extra.include" \
    --output "$out/man/logfs.1"
  "$bindir/shtab" --shell=bash --prog logfs logfs.cli.build_parser > "$out/completions/logfs.bash"
  "$bindir/shtab" --shell=zsh --prog logfs logfs.cli.build_parser > "$out/completions/_logfs"
}

manifest() { echo "$VENV/install-manifest"; }

# put_file SRC DEST MODE: install one file, recording it and each directory created for it
put_file() {
  local src=$1 dest=$2 mode=$3 dir missing=()
  dir=$(dirname "$dest")
  while [ ! -d "$dir" ]; do missing=("$dir" "${missing[@]}"); dir=$(dirname "$dir"); done
  for d in "${missing[@]}"; do mkdir "$d"; echo "dir $d" >> "$(manifest)"; done
  install -m "$mode" "$src" "$dest"
  echo "file $dest" >> "$(manifest)"
}

put_link() {
  local target=$1 dest=$2 dir missing=()
  dir=$(dirname "$dest")
  while [ ! -d "$dir" ]; do missing=("$dir" "${missing[@]}"); dir=$(dirname "$dir"); done
  for d in "${missing[@]}"; do mkdir "$d"; echo "dir $d" >> "$(manifest)"; done
  ln -sfn "$target" "$dest"
  echo "file $dest" >> "$(manifest)"
}

install_all() {
  if [ -f "$(manifest)" ]; then
    say "an install is already recorded in $(manifest): replacing it"
    uninstall_all
  fi
  say "virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
  : > "$(manifest)"
  # pyfuse3 with logfs's patches (patches/README.md), the wheel bootstrap built
  local wheel
  wheel=$(PYTHON="$PYTHON" "$REPO/scripts/build-pyfuse3.sh")
  say "pyfuse3 $(basename "$wheel")"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$REPO" "$wheel" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/logfs" --version >/dev/null   # fails the install if pip did not install it
  "$VENV/bin/python" -c 'import pyfuse3; assert hasattr(pyfuse3.Operations, "enable_auto_inval_data")' \
    || { say "pyfuse3 in $VENV is not the patched build"; exit 1; }

  local build
  build=$(mktemp -d)
  trap 'rm -rf "$build"' RETURN
  generate "$build"
  sed "s|@LOGFS@|$PREFIX/bin/logfs|g" "$REPO/examples/mount.fuse.logfs" > "$build/mount.fuse.logfs"
  sed "s|@LOGFS@|$PREFIX/bin/logfs|g" "$REPO/examples/systemd/logfs@.service" > "$build/logfs@.service"

  say "$PREFIX/bin/logfs -> $VENV/bin/logfs"
  put_link "$VENV/bin/logfs" "$PREFIX/bin/logfs"
  say "$SBINDIR/mount.fuse.logfs (fstab: type fuse.logfs)"
  put_file "$build/mount.fuse.logfs" "$SBINDIR/mount.fuse.logfs" 755
  say "$SYSTEMDDIR/logfs@.service"
  put_file "$build/logfs@.service" "$SYSTEMDDIR/logfs@.service" 644
  say "man page and completions under $PREFIX/share"
  put_file "$build/man/logfs.1" "$PREFIX/share/man/man1/logfs.1" 644
  put_file "$build/completions/logfs.bash" "$PREFIX/share/bash-completion/completions/logfs" 644
  put_file "$build/completions/_logfs" "$PREFIX/share/zsh/site-functions/_logfs" 644
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload || true
  fi
  say "done: $(grep -c '^file ' "$(manifest)") files; remove with: make uninstall VENV=$VENV"
}

uninstall_all() {
  if [ ! -f "$(manifest)" ]; then
    say "no install recorded in $(manifest) (VENV=$VENV); nothing to remove"
    return 1
  fi
  # files first, then the directories install created, deepest first, if empty
  grep '^file ' "$(manifest)" | cut -d' ' -f2- | while IFS= read -r f; do
    if [ -L "$f" ] && [ "$(readlink "$f")" != "$VENV/bin/logfs" ]; then
      say "leaving $f: it points elsewhere now"; continue
    fi
    rm -f -- "$f"
  done
  grep '^dir ' "$(manifest)" | cut -d' ' -f2- | sort -r | while IFS= read -r d; do
    rmdir -- "$d" 2>/dev/null || true
  done
  rm -rf -- "$VENV"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload || true
  fi
  say "removed logfs (VENV=$VENV)"
}

case "${1:-}" in
  generate) generate "${2:?usage: $0 generate OUTDIR}" ;;
  install) install_all ;;
  uninstall) uninstall_all ;;
  *) echo "usage: $0 generate OUTDIR | install | uninstall" >&2; exit 2 ;;
esac
