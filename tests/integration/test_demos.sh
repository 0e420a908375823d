#!/usr/bin/env bash
# The two demos the README shows run to their end on this build.
. "$(dirname "$0")/lib.sh"

BUILD_DIR=$(dirname "$LQS_HOOKD")
out=$(timeout 120 "$LQS_SRC/scripts/demo.sh" "$BUILD_DIR" 2>&1); rc=$?
check "make demo: exit 0" "$rc" 0
check_contains "make demo: the digestion is completed" "$out" $'digestion state in LogQS\e[0m\ncompleted'
out=$(timeout 120 "$LQS_SRC/scripts/demo-objects.sh" "$BUILD_DIR" 2>&1); rc=$?
check "make demo-objects: exit 0" "$rc" 0
check_contains "make demo-objects: three ingestions" "$out" '"created": 3'
check_contains "make demo-objects: the workflow call" "$out" '"programParameters":"--var datapath=s3://my-bucket/datasets/2026-12-02/"'

finish
