#!/usr/bin/env bash
# Runs a command with its output kept in a log; when it fails, prints the failed tasks
# once more at the very end. A CI log is often cut to its head and tail, and Molecule's
# own tail (destroy, recap) never says which task failed or why.
# Usage: tools/failure-digest.sh LOG COMMAND [ARG...]
set -uo pipefail
log=$1
shift
mkdir -p "$(dirname "$log")"
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "==== What failed (from $log; lines cut at 5000 characters) ===="
  # The task header, its failure and what Ansible printed after it, for each failure.
  grep -n -B 3 -A 12 -E '^(fatal|failed): \[|^ERROR|Traceback|FAILED!' "$log" \
    | grep -v -E 'FAILED - RETRYING|\.\.\.ignoring' \
    | cut -c 1-5000 \
    | tail -n 150
  echo "==== exit $status ===="
fi
exit "$status"
