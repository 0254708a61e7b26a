# common.sh - sourced by the pipeline scripts: strict mode, messages, jobs.
# shellcheck shell=bash
set -euo pipefail
prog=$(basename "$0" .sh)
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }
# Cores to use: NPROC when set, else all of them.
cores() { echo "${NPROC:-$(nproc)}"; }
# publish TMP FILE: a result appears complete under its name or not at all.
publish() { mv -f "$1" "$2"; }
