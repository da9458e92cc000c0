#!/usr/bin/env bash
# Run mqa_repro on a Cloud TPU VM pod slice: every host gets the same code and runs the same command;
# jax.distributed.initialize() (MQA_REPRO_DISTRIBUTED=1) finds the other hosts by itself.
#
#   scripts/tpu_pod.sh create                  # the pod slice (default v3-32: 4 hosts x 8 cores)
#   scripts/tpu_pod.sh install                 # this checkout's HEAD + a venv with jax[tpu] on every host
#   scripts/tpu_pod.sh run mqa-repro train --config configs/wmt_mqa.py --workdir /mnt/runs/wmt_mqa
#   scripts/tpu_pod.sh run mqa-repro reproduce --preset paper --workdirs /mnt/runs
#   scripts/tpu_pod.sh ssh0                    # a shell on host 0 (results, logs)
#   scripts/tpu_pod.sh delete
#
# Settings (environment): TPU_NAME (mqa-repro), ZONE (europe-west4-a), ACCELERATOR (v3-32),
# VERSION (tpu-ubuntu2204-base), PYTHON_VERSION (3.12, the venv's), PROJECT (gcloud's default when unset).
# Checkpoints of a multi-host run must go to a directory every host sees at the same path (a GCS bucket
# mounted with gcsfuse, or NFS): orbax writes each host's shards there.
set -euo pipefail

TPU_NAME=${TPU_NAME:-mqa-repro}
ZONE=${ZONE:-europe-west4-a}
ACCELERATOR=${ACCELERATOR:-v3-32}
VERSION=${VERSION:-tpu-ubuntu2204-base}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE" ${PROJECT:+--project="$PROJECT"})
REPO=$(cd "$(dirname "$0")/.." && pwd)

on_all_hosts() {  # run a shell command on every host of the slice, at once
  "${GCLOUD[@]}" ssh "$TPU_NAME" "${WHERE[@]}" --worker=all --command="$1"
}

case "${1:-}" in
  create)
    "${GCLOUD[@]}" create "$TPU_NAME" "${WHERE[@]}" --accelerator-type="$ACCELERATOR" --version="$VERSION"
    ;;
  install)
    archive=$(mktemp --suffix=.tar.gz)
    git -C "$REPO" archive --format=tar.gz -o "$archive" HEAD
    "${GCLOUD[@]}" scp "$archive" "$TPU_NAME":mqa_repro.tar.gz "${WHERE[@]}" --worker=all
    rm -f "$archive"
    # TPU VM images ship Python 3.10, older than the project needs (jax >= 0.7 needs >= 3.11): uv,
    # installed with the image's own pip, fetches a standalone CPython for the venv.
    on_all_hosts "set -e; rm -rf ~/mqa_repro && mkdir ~/mqa_repro && tar -xzf ~/mqa_repro.tar.gz -C ~/mqa_repro \
      && cd ~/mqa_repro && python3 -m pip install -q --user --upgrade uv \
      && python3 -m uv venv --python $PYTHON_VERSION .venv \
      && python3 -m uv pip install -q --python .venv/bin/python -e '.[tfds,viz]' 'jax[tpu]' \
      && .venv/bin/python -c 'import jax, sys; print(sys.version.split()[0], jax.__version__, jax.process_index(), jax.device_count(), jax.devices()[0].device_kind)'"
    ;;
  run)
    shift
    [ $# -gt 0 ] || { echo "usage: $0 run mqa-repro <command> [flags]" >&2; exit 2; }
    [ "$1" = mqa-repro ] && shift
    on_all_hosts "cd ~/mqa_repro && MQA_REPRO_DISTRIBUTED=1 .venv/bin/mqa-repro $(printf '%q ' "$@")"
    ;;
  ssh0)
    "${GCLOUD[@]}" ssh "$TPU_NAME" "${WHERE[@]}" --worker=0
    ;;
  delete)
    "${GCLOUD[@]}" delete "$TPU_NAME" "${WHERE[@]}" --quiet
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
