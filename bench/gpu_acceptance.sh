#!/usr/bin/env bash
# The acceptance run (bench/gpu_acceptance.py) on a bare GPU machine, in three commands of at most
# ten minutes each, run back to back on the same machine (its /tmp keeps the work between them):
#
#   bench/gpu_acceptance.sh 1   # carried wheels installed; random full-size weights in the published
#                               # layouts; configs/paper.yaml merged; piq models check; ingest .. shard
#   bench/gpu_acceptance.sh 2   # latents, train, distill
#   bench/gpu_acceptance.sh 3   # sample, evaluate, the JSON and table; then `pytest -m gpu` in the time left
#
# Environment (defaults): WHEELS (.whl or ../.whl: diffusers, facenet-pytorch, mediapipe 0.10.21,
# protobuf 4.25, invisible-watermark, PyWavelets, webdataset, braceexpand, lpips; installed with
# --no-deps into /tmp/site), WORK (/tmp/piq-acc), WEIGHTS (/tmp/piq-weights), SCALE (lean),
# LIMIT (570 s per command), OUT (where results.json, table.txt and the logs are copied; $WORK/out).
set -uo pipefail
phase=${1:?usage: bench/gpu_acceptance.sh 1|2|3}
t0=$(date +%s)
LIMIT=${LIMIT:-570}
WORK=${WORK:-/tmp/piq-acc}
WEIGHTS=${WEIGHTS:-/tmp/piq-weights}
SCALE=${SCALE:-lean}
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# inductor's cache outside the work copy: later commands (and pytest) compile the same graphs warm
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/piq-inductor}

if [ ! -d /tmp/site ]; then
  WHEELS=${WHEELS:-$( [ -d .whl ] && echo .whl || echo ../.whl )}
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "wheel install failed"; exit 1; }
fi
# mediapipe 0.10.21 needs protobuf < 5 (MessageFactory.GetPrototype; the image's protobuf 7 lacks it), while the
# image's onnx was generated for protobuf >= 5.26 and imports google.protobuf.runtime_version at load: with the carried
# protobuf 4.25 a no-op runtime_version lets both load (onnx's generated code runs on 4.25; seen on an H100, 2026-12-07)
rv=/tmp/site/google/protobuf/runtime_version.py
[ -d /tmp/site/google/protobuf ] && [ ! -f $rv ] && printf 'class Domain:\n    GOOGLE_INTERNAL = 1\n    PUBLIC = 2\n\n\ndef ValidateProtobufRuntimeVersion(*args, **kwargs):\n    pass\n' > $rv
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
[ -d samples/videos ] || cp -r ../samples/videos samples/   # a device copy may leave the clips to the checkout beside it (64 MiB carry)

left() { echo $(( LIMIT - ($(date +%s) - t0) )); }
if [ "$phase" = 1 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; df -h /tmp | tail -1; nproc
  python3 -c "import onnx, mediapipe as mp, diffusers, facenet_pytorch, webdataset, imwatermark, lpips, numpy as np; \
mp.solutions.face_mesh.FaceMesh(static_image_mode=True).process(np.zeros((64, 64, 3), np.uint8)); \
print('imports ok: mediapipe', mp.__version__, 'diffusers', diffusers.__version__, 'numpy', np.__version__, 'onnx', onnx.__version__)" \
    || exit 1
fi
python3 -m bench.gpu_acceptance --work "$WORK" --phase "$phase" --full --scale "$SCALE" --weights "$WEIGHTS" \
  --phase-seconds $(( $(left) - 25 )) --out "$OUT" 2>&1 | tee "$OUT/phase$phase.log"
rc=${PIPESTATUS[0]}
if [ "$phase" = 1 ] && [ "$rc" = 0 ]; then
  # the data stages are done: their weights (LLaVA 14 GB, NeuralGaffer 8.5 GB) make room for two exported pipelines
  rm -rf "$WEIGHTS/llava-1.5-7b-hf" "$WEIGHTS/zero123-xl" "$WEIGHTS/neural_gaffer_res256" "$WEIGHTS/face-parsing"
fi
df -h /tmp | tail -1
if [ "$phase" = 3 ] && [ "$(left)" -gt 60 ]; then
  rm -rf "$WORK/models" "$WORK/.dvc/cache" "$WEIGHTS"   # pytest's GPU tests write their own full-size folders
  timeout $(( $(left) - 10 )) python3 -m pytest -m gpu -q -p no:cacheprovider -rs tests 2>&1 | tee "$OUT/pytest_gpu.log"
fi
exit "$rc"
