#!/bin/sh
# Counts the places in Tests/ that wait on time (sleeps and polling helpers), for issue 23's
# rule: at most 15, each where a real outside process must be awaited, each with a comment.
# Python `time.sleep` inside task code is the task's own work, not a test's wait.
cd "$(dirname "$0")/.." || exit 1
grep -rnE 'Task\.sleep|Thread\.sleep|usleep\(|eventually( |\()|waitUntil\(' Tests --include=*.swift \
  | grep -v 'time\.sleep' | grep -vE '^Tests/TestSupport/.*(func |///)' \
  | grep -vE '^\S+:[0-9]+:\s*///'
