#!/usr/bin/env bash
# Copy a finished study's small text outputs (never weights, features or images) into
# results/<name>/: tables, the summary, config, registration, versions, data stats and the
# command.
# Usage: results/collect.sh RUN_DIR NAME "COMMAND THAT MADE IT"
set -euo pipefail
run=$1 name=$2 cmd=$3
out="$(dirname "$0")/$name"
rm -rf "$out" && mkdir -p "$out/tables"
cp "$run"/tables/*.csv "$out/tables/"
[ -f "$run/report/tests.csv" ] && cp "$run/report/tests.csv" "$out/tests.csv"
# the confirmatory test as registered before the first training
[ -f "$run/registration.json" ] && cp "$run/registration.json" "$out/registration.json"
cp "$run/report/summary.md" "$run/config.yaml" "$run/environment.json" "$run/failures.json" "$out/"
cp "$run/data/stats.json" "$out/data_stats.json"
printf '%s\n' "$cmd" > "$out/COMMAND"
