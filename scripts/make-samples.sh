#!/usr/bin/env bash
# Regenerate samples/: a synthetic scene (ffmpeg's testsrc2 pattern, first frame) as a lossless
# PNG reference, and a JPEG-degraded copy of it as the image under test. Both are committed;
# this script documents how they were made and needs ffmpeg only when run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "make-samples: needs ffmpeg" >&2; exit 1; }
ffmpeg -v error -y -f lavfi -i "testsrc2=size=320x240:rate=1" -frames:v 1 \
  -bitexact -pix_fmt rgb24 samples/reference.png
# Quality 12 of ffmpeg's 2..31 scale: visibly blocky, an SSIM well below 1.
ffmpeg -v error -y -i samples/reference.png -frames:v 1 -bitexact -q:v 12 \
  -pix_fmt yuvj420p samples/degraded.jpg
ls -l samples/reference.png samples/degraded.jpg
