#!/usr/bin/env bash
# Time the README's two setup commands as a new user meets them: each in its own fresh clone of this
# repository's HEAD, a new venv, no pip cache, an empty corpus cache (the offline corpus is built
# during the run). Writes results/setup_times.json and copies the main command's results into
# results/smoke/ (the README quotes both). Run it on an idle machine.
# usage: scripts/time_setup.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export PIP_NO_CACHE_DIR=1 MQA_REPRO_CACHE=$tmp/cache
export MQA_REPRO_DATA=${MQA_REPRO_DATA:-$(cd "$repo/.." && pwd)/shared/data}
now() { date +%s.%N; }

commit=$(git -C "$repo" rev-parse HEAD)   # what both clones hold, whatever is committed meanwhile
git clone -q "$repo" "$tmp/main" && cd "$tmp/main"
t0=$(now)
python3 -m venv .venv && .venv/bin/pip install -q -e '.[viz]'
t1=$(now)
.venv/bin/mqa-repro reproduce --preset smoke > "$tmp/main.log" 2>&1 || { tail -20 "$tmp/main.log"; exit 1; }
t2=$(now)

git clone -q "$repo" "$tmp/tests" && cd "$tmp/tests" && git checkout -q "$commit"
t3=$(now)
python3 -m venv .venv && .venv/bin/pip install -q -e '.[tfds,test]' && .venv/bin/python -m pytest -q \
  > "$tmp/tests.log" 2>&1 || { tail -20 "$tmp/tests.log"; exit 1; }
t4=$(now)

rm -rf "$repo/results/smoke" && cp -r "$tmp/main/runs/smoke/results" "$repo/results/smoke"
python3 - "$repo/results/setup_times.json" <<PY
import json, os, sys, datetime, platform
json.dump({'commit': '$commit', 'cpus': os.cpu_count(),
           'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
           'python': platform.python_version(),
           'install_seconds': round($t1 - $t0, 1), 'main_seconds': round($t2 - $t0, 1),
           'tests_seconds': round($t4 - $t3, 1),
           'tests_summary': open('$tmp/tests.log').read().strip().splitlines()[-1],
           'main_command': "python3 -m venv .venv && .venv/bin/pip install -e '.[viz]' && .venv/bin/mqa-repro reproduce --preset smoke",
           'tests_command': "python3 -m venv .venv && .venv/bin/pip install -q -e '.[tfds,test]' && .venv/bin/python -m pytest -q"},
          open(sys.argv[1], 'w'), indent=1)
PY
cat "$repo/results/setup_times.json"
