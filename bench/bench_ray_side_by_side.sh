#!/bin/bash
# bench_ray.py (this checkout's copy) under main's toolcrib and under this
# checkout's, alternating, in one run (as root: the cluster lives in a
# private network namespace). Main's tree is installed, not editable, into
# bench/out/rayside-REV/venv; Ray comes from this checkout's .venv through a
# .pth line, and a `ray` script of its own points at that venv's python (the
# cluster's nodes run `ray` from beside sys.executable).
#
#   sudo bench/bench_ray_side_by_side.sh [REV] [ROUNDS]     (default 2265aa1, 2)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=${1:-2265aa1}
ROUNDS=${2:-2}
HOME_DIR=$ROOT/bench/out/rayside-$REV
SITE=$("$ROOT/.venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ ! -x "$HOME_DIR/venv/bin/python" ]; then
  mkdir -p "$HOME_DIR/tree"
  git -C "$ROOT" archive "$REV" | tar -x -C "$HOME_DIR/tree"
  "$(readlink -f "$ROOT/.venv/bin/python")" -m venv "$HOME_DIR/venv"
  echo "$SITE" > "$HOME_DIR/venv/lib/python3.11/site-packages/zz-ray-from-checkout.pth"
  "$HOME_DIR/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$HOME_DIR/tree"
  sed "1s|.*|#!$HOME_DIR/venv/bin/python|" "$ROOT/.venv/bin/ray" > "$HOME_DIR/venv/bin/ray"
  chmod +x "$HOME_DIR/venv/bin/ray"
fi
OUT=$ROOT/bench/out/ray-side-by-side
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for side in base new; do
    if [ $side = base ]; then PY=$HOME_DIR/venv/bin/python; else PY=$ROOT/.venv/bin/python; fi
    echo "=== $side ($([ $side = base ] && echo "$REV" || git -C "$ROOT" rev-parse --short HEAD)), round $round, $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
    # From /tmp: each side imports its own installed toolcrib, never the checkout's folders.
    (cd /tmp && "$PY" "$ROOT/bench/bench_ray.py") > "$OUT/$side-$round.txt" 2>&1
    cp "$ROOT/bench/out/bench_ray.json" "$OUT/$side-$round.json"
    grep -v "network_util" "$OUT/$side-$round.txt" | tail -13 | tee -a "$OUT/log.txt"
  done
done
