#!/usr/bin/env bash
# The README's tour with curl, run as written against a fresh local stack on its default
# ports: the first `sh` block of README.md, with the two programs a reader runs in
# another window stood in for (websocat: a WebSocket client kept open in the
# background; ffplay: ffprobe reading the class once it is playable). Every curl must
# answer 2xx, and the class must end with the figures the tour made.
set -euo pipefail
cd "$(dirname "$0")/.."

# The binary the workspace's test build made: after .ci/run's tests this builds nothing.
cargo test --workspace --locked --no-run --quiet
work=$(mktemp -d)
stack_pid=""
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  if [ -n "$stack_pid" ]; then kill "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
env -u LOCAL_CARGO_LAMBDA target/debug/local --in-memory >"$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 1 120); do
  curl -sf http://127.0.0.1:3000/openapi.json >/dev/null && break
  kill -0 "$stack_pid" 2>/dev/null || { cat "$work/stack.log" >&2; exit 1; }
  sleep 0.5
done
# The tokens the banner prints, as a reader pastes them.
eval "$(grep -E '^(TEACHER|STUDENT1|STUDENT2)=' "$work/stack.log")"
export TEACHER STUDENT1 STUDENT2

awk '/^```sh/ { n++; if (n == 1) { f = 1; next } } /^```/ { f = 0 } f' README.md >"$work/tour.sh"
[ -s "$work/tour.sh" ] || { echo "the README has no sh block" >&2; exit 1; }

cat >"$work/stand-ins.sh" <<STANDINS
set -euo pipefail
# Every call of the tour must succeed, as it would for a reader watching its output.
curl() { command curl --fail-with-body "\$@"; }
websocat() {
  local url=\$1 rest=\${1#ws://127.0.0.1:}
  python3 .ci/ws_client.py "\${rest%%/*}" "/\${rest#*/}" "$work/frames" &
  for _ in \$(seq 1 100); do grep -qx open "$work/frames" 2>/dev/null && return; sleep 0.1; done
  echo "the WebSocket did not open: \$url" >&2; return 1
}
ffplay() {
  for _ in \$(seq 1 120); do
    command curl -sf "\$1" | grep -q '\.m4s' && break
    sleep 0.5
  done
  ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 "\$1" | tee -a "$work/probe"
}
STANDINS
echo "== the README's tour"
( cat "$work/stand-ins.sh" "$work/tour.sh" ) | bash -x 2>"$work/trace" >"$work/output" || {
  cat "$work/trace" "$work/output" >&2; echo "the README's tour failed" >&2; exit 1; }

checks=0
check() {
  if eval "$2"; then echo "ok    $1"; checks=$((checks + 1)); else echo "FAIL  $1" >&2; cat "$work/output" >&2; exit 1; fi
}
# The tour's answers, one JSON document after another: the last is the final stats.
check "the class ended with its figures" "python3 - '$work/output' <<'PY'
import json, sys
text, docs, at = open(sys.argv[1]).read(), [], 0
decoder = json.JSONDecoder()
while at < len(text):
    if text[at] in ' \n':
        at += 1
        continue
    try:
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    except ValueError:
        at = text.find('{', at + 1) if text.find('{', at + 1) != -1 else len(text)
s = docs[-1]
assert s['status'] == 'ended' and s['is_final'], s
assert (s['unique_viewers'], s['chat_messages_count'], s['questions_count'], s['upvotes_count']) == (2, 1, 1, 1), s
PY"
check "the student's WebSocket saw the chat message and the end" \
  "grep -q '\"chat.message\"' '$work/frames' && grep -q '\"ended\"' '$work/frames'"
check "the class and then its recording played as 1280x720 H.264 with AAC" \
  "[ \$(grep -c '^h264,1280,720' '$work/probe') -ge 2 ] && [ \$(grep -c '^aac' '$work/probe') -ge 2 ]"
check "the replay held the question and its answer, not the message the teacher hid" \
  "grep -q '\"type\":\"question\"' '$work/output' && grep -q '\"type\":\"answer\"' '$work/output' && ! grep -q '\"type\":\"chat\"' '$work/output'"
check "the attendance came as CSV with both students" \
  "grep -q '^student-1,' '$work/output' && grep -q '^student-2,' '$work/output'"
echo "$checks passed, 0 failed"
