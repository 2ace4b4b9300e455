#!/usr/bin/env bash
# The daemon's benchmark: requests per second and p50/p99 latency of POST /ssim at 1, 8 and 32
# concurrent clients (wrk) for 1920x1080 PNG pairs and JPEG pairs, and in the same run the
# ceiling and the peers on the same files: libvips decode-only throughput on all cores (through
# ssimd_decode), `ffmpeg -lavfi ssim` per pair, scikit-image per pair (decode included for both).
#
# Usage: bench/server/run.sh BUILD_DIR [SECONDS_PER_POINT]
# Needs: wrk and python3. ffmpeg makes the images (or IMAGES_DIR holds ref.png, dist.png, ref.jpg,
# dist.jpg made elsewhere, e.g. on a GPU host without ffmpeg) and is a peer; $PYTHON (default
# python3) with scikit-image is the other peer. A peer that is missing shows as "-".
# Prints a Markdown table on stdout.
set -euo pipefail

build=${1:?usage: run.sh BUILD_DIR [SECONDS]}
seconds=${2:-10}
# The interpreter whose packages hold scikit-image (Debian: python3-skimage).
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

have_ffmpeg=$(command -v ffmpeg >/dev/null && echo 1 || echo 0)
if [ -n "${IMAGES_DIR:-}" ]; then
  cp "$IMAGES_DIR"/ref.png "$IMAGES_DIR"/dist.png "$IMAGES_DIR"/ref.jpg "$IMAGES_DIR"/dist.jpg "$work/"
elif [ "$have_ffmpeg" = 1 ]; then
  # A synthetic 1920x1080 scene and a noisy copy of it, as PNG and as JPEG (quality 90).
  ffmpeg -loglevel error -f lavfi -i testsrc2=size=1920x1080 -frames:v 1 "$work/ref.png"
  ffmpeg -loglevel error -i "$work/ref.png" -vf noise=alls=12:allf=t+u -frames:v 1 "$work/dist.png"
  ffmpeg -loglevel error -i "$work/ref.png" -q:v 3 "$work/ref.jpg"
  ffmpeg -loglevel error -i "$work/dist.png" -q:v 3 "$work/dist.jpg"
else
  echo "run.sh: needs ffmpeg to make the images, or IMAGES_DIR" >&2
  exit 1
fi

boundary=ssimdbenchboundary
for fmt in png jpg; do
  python3 - "$work/dist.$fmt" "$work/ref.$fmt" "$work/body.$fmt" "$boundary" <<'PY'
import sys
img1, img2, out, boundary = sys.argv[1:5]
with open(out, "wb") as body:
    for name, path in (("img1", img1), ("img2", img2)):
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                   f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode())
        body.write(open(path, "rb").read())
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
PY
done

"$build/server/ssimd" --listen 127.0.0.1:0 2>"$work/ssimd.log" &
pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/ssimd.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$work/ssimd.log" >&2; exit 1; }
backend=$(sed -n 's/.*backend \([a-z]*\) on \(.*\); max_batch.*/\1 (\2)/p' "$work/ssimd.log" | head -1)

# Mean seconds of `runs` runs of a command.
time_runs() {
  local runs=$1; shift
  local start end
  start=$(date +%s.%N)
  for _ in $(seq 1 "$runs"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$runs" 'BEGIN { print (e - s) / n }'
}

echo "| format | clients | ssimd req/s | p50 ms | p99 ms | errors | decode-only pairs/s (ceiling) | ssimd / ceiling | ffmpeg pairs/s | scikit-image pairs/s | ssimd / scikit-image |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for fmt in png jpg; do
  ceiling=$("$build/bench/server/bench_decode_ceiling" "$work/dist.$fmt" "$work/ref.$fmt" "$seconds" |
    sed -n 's/RESULT pairs_per_s=\([0-9.]*\).*/\1/p')
  ffmpeg_s=0
  if [ "$have_ffmpeg" = 1 ]; then
    ffmpeg_s=$(time_runs 5 ffmpeg -nostdin -loglevel error -i "$work/dist.$fmt" -i "$work/ref.$fmt" \
      -lavfi ssim -f null -)
  fi
  skimage_s=$("$python" - "$work/dist.$fmt" "$work/ref.$fmt" 2>/dev/null <<'PY' || echo 0
import sys, time
from skimage import io
from skimage.metrics import structural_similarity
runs = 3
start = time.perf_counter()
for _ in range(runs):
    a, b = io.imread(sys.argv[1]), io.imread(sys.argv[2])
    structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                          use_sample_covariance=False, data_range=255)
print((time.perf_counter() - start) / runs)
PY
)
  for clients in 1 8 32; do
    threads=$(( clients < 2 ? 1 : 2 ))
    result=$(BODY="$work/body.$fmt" BOUNDARY=$boundary wrk -t"$threads" -c"$clients" \
      -d"${seconds}s" --timeout 30s -s "$here/post.lua" "http://127.0.0.1:$port" | grep RESULT)
    rps=$(echo "$result" | sed 's/.*rps=\([0-9.]*\).*/\1/')
    p50=$(echo "$result" | sed 's/.*p50_ms=\([0-9.]*\).*/\1/')
    p99=$(echo "$result" | sed 's/.*p99_ms=\([0-9.]*\).*/\1/')
    errors=$(echo "$result" | sed 's/.*errors=\([0-9]*\).*/\1/')
    awk -v fmt="$fmt" -v c="$clients" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
      -v err="$errors" -v ceil="$ceiling" -v ff="$ffmpeg_s" -v sk="$skimage_s" 'BEGIN {
        ffcol = ff > 0 ? sprintf("%.2f", 1 / ff) : "-"
        skcol = sk > 0 ? sprintf("%.2f", 1 / sk) : "-"
        ratio = sk > 0 ? sprintf("%.1fx", rps * sk) : "-"
        printf "| %s | %s | %.1f | %.0f | %.0f | %s | %.1f | %.0f%% | %s | %s | %s |\n",
          fmt, c, rps, p50, p99, err, ceil, 100 * rps / ceil, ffcol, skcol, ratio
      }'
  done
done
echo
echo "ssimd backend: $backend; $(nproc) cores; $seconds s per point."
