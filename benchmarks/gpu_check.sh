#!/usr/bin/env bash
# The one prepared GPU check (issue #13, part 4): the GPU tests, MoCo v2 ResNet-50 at 224 px
# in four AMP/layout variants, and a short study on real CIFAR-10 images, with its timings.
# Fits one 10-minute device command (timeouts total 540 s); what it writes lands in $OUT.
#
#   OUT=gpu-check DATA=../shared/data/cifar10_subset.npz bash benchmarks/gpu_check.sh
#
# On a machine without our dependencies and without a network (the lent GPU machines have
# Python 3.12 and lack pydantic and openTSNE), prepare wheels and the data here first, in the
# repository root, and have them travel with the working tree (both folders are git-ignored).
# The versions are those our CI venv resolved; pydantic needs its exact pydantic-core:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
#     typing-inspection==0.4.5 typing-extensions==4.16.0 openTSNE==1.0.4
#   mkdir -p .gpu-data && cp ../shared/data/cifar10_subset.npz .gpu-data/
# The script installs .whl/ into /tmp/site when it is there, and finds .gpu-data/ by itself.
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
  want=$(ls .whl | grep -o 'cp3[0-9]*' | sort -u | head -1)
  have=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  if [ -n "$want" ] && [ "$want" != "$have" ]; then
    echo "error: .whl/ holds $want wheels, this python3 is $have: download them for $have" >&2
    exit 2
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 2
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
data=${DATA:-../shared/data/cifar10_subset.npz}
[ -f "$data" ] || data=.gpu-data/cifar10_subset.npz
status=0

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "cpu cores: $(nproc)"
} > "$out/device.txt" 2>&1
cat "$out/device.txt"

echo "== 1. GPU tests"
timeout -k 10 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py \
  2>&1 | tee "$out/tests.txt" || status=1

echo "== 2. MoCo v2, ResNet-50, 224 px, batch 128: fp32 / AMP x contiguous / channels_last"
timeout -k 10 180 python3 benchmarks/gpu_step.py --method mocov2 --arch resnet50 --size 224 \
  --batch 128 --steps 100 2>&1 | tee "$out/step.txt" || status=1

echo "== 3. A short study on $data (one seed, the CPU config's protocol)"
study=/tmp/gpu-study
rm -rf "$study"
start=$(date +%s)
timeout -k 10 240 python3 -m ssl_robustness.cli run configs/cifar10_subset_cpu.yaml \
  --set "data.root=$data" --set "output_dir=$study" --set 'seeds=[0]' \
  > "$out/study_log.txt" 2>&1
rc=$?
case $rc in
  0) note="" ;;
  124 | 137) note=" (timed out: not a study time)"; status=1 ;;
  *) note=" (failed, exit $rc)"; status=1 ;;
esac
echo "study wall time: $(( $(date +%s) - start )) s$note" | tee -a "$out/study_log.txt"
tail -25 "$out/study_log.txt"
for f in report/summary.md tables/results.csv; do
  [ -f "$study/$f" ] && cp "$study/$f" "$out/study_$(basename "$f")"
done
exit $status
