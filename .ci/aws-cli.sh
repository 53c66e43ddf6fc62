#!/usr/bin/env bash
# The local emulations of SQS (the fan-out queue and its dead-letter queue) and of API
# Gateway's @connections, checked with AWS's own CLI (`aws` from PyPI) pointed at a
# stack on free ports, the way an operator would look at them on AWS. One line per
# check; exits non-zero if any failed.
#
# Installs awscli (pinned) into .ci/.venv-awscli unless it is there already. Builds the
# `local` binary (`cargo build -p local`; LOCAL_BIN=path skips that) and runs it in
# memory.
set -euo pipefail
cd "$(dirname "$0")/.."

AWSCLI_VERSION=1.46.2
venv=.ci/.venv-awscli
if [ "$("$venv/bin/aws" --version 2>&1 | cut -d' ' -f1)" != "aws-cli/$AWSCLI_VERSION" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "awscli==$AWSCLI_VERSION"
fi

if [ -z "${LOCAL_BIN:-}" ]; then
  # The binary the workspace's test build made: after .ci/run's tests this builds nothing.
  cargo test --workspace --locked --no-run --quiet
  LOCAL_BIN=target/debug/local
fi

work=$(mktemp -d)
stack_pid=""
socket_pid=""
cleanup() {
  [ -n "$socket_pid" ] && kill "$socket_pid" 2>/dev/null || true
  [ -n "$stack_pid" ] && kill "$stack_pid" 2>/dev/null && wait "$stack_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Six free ports below the ephemeral range (where tests binding port 0 and outgoing
# connections take theirs); another try on other ports if one is taken meanwhile.
free_ports() {
  python3 - <<'EOF'
import random, socket
ports = []
while len(ports) < 6:
    port = random.randint(20000, 32000)
    if port in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        ports.append(port)
    except OSError:
        pass
    finally:
        s.close()
print(*ports)
EOF
}
# Functions in this process, whatever the environment says.
unset LOCAL_CARGO_LAMBDA
# Starts the stack; true once its SQS endpoint answers.
start_stack() {
  read -r http_port ws_port dynamo_port sqs_port rtmp_port ivs_port < <(free_ports)
  "$LOCAL_BIN" --in-memory --http-port "$http_port" --ws-port "$ws_port" \
    --dynamo-port "$dynamo_port" --sqs-port "$sqs_port" --rtmp-port "$rtmp_port" \
    --ivs-port "$ivs_port" >"$work/stack.log" 2>&1 &
  stack_pid=$!
  for _ in $(seq 1 300); do
    if curl -sf -o /dev/null -X POST -H 'X-Amz-Target: AmazonSQS.ListQueues' \
      -H 'Content-Type: application/x-amz-json-1.0' -d '{}' "http://127.0.0.1:$sqs_port/"; then
      return 0
    fi
    if ! kill -0 "$stack_pid" 2>/dev/null; then
      wait "$stack_pid" 2>/dev/null || true
      stack_pid=""
      return 1
    fi
    sleep 0.2
  done
  return 1
}
started=false
for _ in 1 2 3; do
  if start_stack; then
    started=true
    break
  fi
  grep -q "Address already in use" "$work/stack.log" || break
done
if [ "$started" != true ]; then
  echo "the stack did not start:"; cat "$work/stack.log"; exit 1
fi

HTTP="http://127.0.0.1:$http_port"
SQS="http://127.0.0.1:$sqs_port"
CONNECTIONS="http://127.0.0.1:$ws_port"
DYNAMO="http://127.0.0.1:$dynamo_port"
MAIN="$SQS/000000000000/livestream-fan-out"
DLQ="$SQS/000000000000/livestream-fan-out-dlq"
MAIN_ARN="arn:aws:sqs:us-east-1:000000000000:livestream-fan-out"
DLQ_ARN="arn:aws:sqs:us-east-1:000000000000:livestream-fan-out-dlq"

export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true AWS_MAX_ATTEMPTS=1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_OUTPUT
sqs() { "$venv/bin/aws" sqs --endpoint-url "$SQS" --region us-east-1 --output json "$@"; }
conn() { "$venv/bin/aws" apigatewaymanagementapi --endpoint-url "$CONNECTIONS" --region us-east-1 --output json "$@"; }

passed=0
failed=0
# `run CMD ARGS...`: runs it, keeping stdout in $out, stderr in $err, the status in $rc.
run() {
  set +e
  out=$("$@" 2>"$work/err")
  rc=$?
  set -e
  err=$(cat "$work/err")
}
result() { # NAME OK-or-not DETAIL
  if [ "$2" = ok ]; then
    passed=$((passed + 1))
    echo "ok    $1"
  else
    failed=$((failed + 1))
    echo "FAIL  $1"
    printf '      %s\n' "$3" "exit $rc" "stdout: $out" "stderr: $err"
  fi
}
# `expect NAME WANTED`: the last command succeeded and printed exactly WANTED.
expect() {
  if [ "$rc" = 0 ] && [ "$out" = "$2" ]; then result "$1" ok; else result "$1" no "wanted: $2"; fi
}
# `expect_error NAME CODE`: the last command failed with the error CODE.
expect_error() {
  if [ "$rc" != 0 ] && grep -qF "An error occurred ($2)" <<<"$err"; then
    result "$1" ok
  else
    result "$1" no "wanted the error $2"
  fi
}
# `expect_py NAME PYTHON`: the last command succeeded and PYTHON, given its output
# parsed as `r` (JSON), evaluates true.
expect_py() {
  if [ "$rc" = 0 ] && OUT="$out" python3 -c "
import json, os, sys
r = json.loads(os.environ['OUT'] or '{}')
sys.exit(0 if ($2) else 1)" 2>>"$work/err"; then
    result "$1" ok
  else
    err=$(cat "$work/err")
    result "$1" no "wanted: $2"
  fi
}

echo "== SQS at $SQS"
run sqs list-queues
expect_py "list-queues: both queues" "r['QueueUrls'] == ['$MAIN', '$DLQ']"
run sqs list-queues --queue-name-prefix livestream-fan-out-d
expect_py "list-queues --queue-name-prefix: the dead-letter queue" "r['QueueUrls'] == ['$DLQ']"
run sqs list-queues --queue-name-prefix nothing-like-it
expect "list-queues --queue-name-prefix: none" ""
run sqs get-queue-url --queue-name livestream-fan-out --query QueueUrl --output text
expect "get-queue-url: the fan-out queue" "$MAIN"
run sqs get-queue-url --queue-name livestream-fan-out-dlq --query QueueUrl --output text
expect "get-queue-url: the dead-letter queue" "$DLQ"
run sqs get-queue-url --queue-name no-such-queue
expect_error "get-queue-url of an unknown queue: NonExistentQueue" AWS.SimpleQueueService.NonExistentQueue

run sqs send-message --queue-url "$MAIN" --message-body "page one" --delay-seconds 900
expect_py "send-message (delayed) to the fan-out queue" \
  "len(r['MessageId']) == 36 and r['MD5OfMessageBody'] == __import__('hashlib').md5(b'page one').hexdigest()"
run sqs send-message-batch --queue-url "$MAIN" \
  --entries Id=a,MessageBody=two,DelaySeconds=900 Id=b,MessageBody=three,DelaySeconds=900
expect_py "send-message-batch (delayed) to the fan-out queue" \
  "[e['Id'] for e in r['Successful']] == ['a', 'b'] and r.get('Failed', []) == []"
run sqs get-queue-attributes --queue-url "$MAIN" --attribute-names All
expect_py "get-queue-attributes All: counts" "r['Attributes']['ApproximateNumberOfMessagesDelayed'] == '3' \
  and r['Attributes']['ApproximateNumberOfMessages'] == '0' \
  and r['Attributes']['ApproximateNumberOfMessagesNotVisible'] == '0'"
expect_py "get-queue-attributes All: QueueArn, VisibilityTimeout, CreatedTimestamp" \
  "r['Attributes']['QueueArn'] == '$MAIN_ARN' and r['Attributes']['VisibilityTimeout'] == '30' \
  and abs(int(r['Attributes']['CreatedTimestamp']) - __import__('time').time()) < 600"
expect_py "get-queue-attributes All: RedrivePolicy" \
  "json.loads(r['Attributes']['RedrivePolicy']) == {'deadLetterTargetArn': '$DLQ_ARN', 'maxReceiveCount': 3}"
run sqs get-queue-attributes --queue-url "$MAIN" --attribute-names ApproximateNumberOfMessagesDelayed --query Attributes --output json
expect_py "get-queue-attributes of one name: that one only" "r == {'ApproximateNumberOfMessagesDelayed': '3'}"
run sqs get-queue-attributes --queue-url "$MAIN" --attribute-names NoSuchAttribute
expect_error "get-queue-attributes of an unknown name: InvalidAttributeName" InvalidAttributeName
run sqs get-queue-attributes --queue-url "$SQS/000000000000/no-such-queue" --attribute-names All
expect_error "get-queue-attributes of an unknown queue: NonExistentQueue" AWS.SimpleQueueService.NonExistentQueue
run sqs receive-message --queue-url "$MAIN"
expect "receive-message: delayed messages are not handed out" ""

run sqs list-dead-letter-source-queues --queue-url "$DLQ" --query queueUrls --output text
expect "list-dead-letter-source-queues: the fan-out queue" "$MAIN"
for body in one two three; do
  run sqs send-message --queue-url "$DLQ" --message-body "$body"
done
expect_py "send-message to the dead-letter queue" "'MessageId' in r"
run sqs get-queue-attributes --queue-url "$DLQ" --attribute-names All
expect_py "get-queue-attributes of the dead-letter queue" "r['Attributes']['ApproximateNumberOfMessages'] == '3' \
  and r['Attributes']['QueueArn'] == '$DLQ_ARN' and 'RedrivePolicy' not in r['Attributes']"
run sqs receive-message --queue-url "$DLQ" --max-number-of-messages 2 --attribute-names All --wait-time-seconds 1
expect_py "receive-message from the dead-letter queue" "[m['Body'] for m in r['Messages']] == ['one', 'two'] \
  and all(m['Attributes']['ApproximateReceiveCount'] == '1' and m['MD5OfBody'] for m in r['Messages'])"
receipt=$(OUT="$out" python3 -c "import json, os; print(json.loads(os.environ['OUT'])['Messages'][0]['ReceiptHandle'])")
run sqs get-queue-attributes --queue-url "$DLQ" --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible
expect_py "received messages are in flight" \
  "r['Attributes'] == {'ApproximateNumberOfMessages': '1', 'ApproximateNumberOfMessagesNotVisible': '2'}"
run sqs delete-message --queue-url "$DLQ" --receipt-handle "$receipt"
expect "delete-message" ""
run sqs delete-message --queue-url "$DLQ" --receipt-handle not-a-receipt-handle
expect_error "delete-message with a bogus receipt handle: ReceiptHandleIsInvalid" ReceiptHandleIsInvalid
run sqs get-queue-attributes --queue-url "$DLQ" --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible
expect_py "deleted: one visible, one in flight" \
  "r['Attributes'] == {'ApproximateNumberOfMessages': '1', 'ApproximateNumberOfMessagesNotVisible': '1'}"
run sqs purge-queue --queue-url "$DLQ"
expect "purge-queue" ""
run sqs get-queue-attributes --queue-url "$DLQ" --attribute-names All
expect_py "purged: nothing left, in flight or not" "r['Attributes']['ApproximateNumberOfMessages'] == '0' \
  and r['Attributes']['ApproximateNumberOfMessagesNotVisible'] == '0'"
run sqs purge-queue --queue-url "$DLQ"
expect_error "purge-queue again within 60 s: PurgeQueueInProgress" AWS.SimpleQueueService.PurgeQueueInProgress
run sqs create-queue --queue-name another
expect_error "create-queue: UnsupportedOperation" AWS.SimpleQueueService.UnsupportedOperation

echo "== @connections at $CONNECTIONS"
token() { "$LOCAL_BIN" token --user "$1" --role "$2"; }
teacher=$(token teacher-1 teacher)
student=$(token student-1 student)
stream_id=$(TEACHER="$teacher" HTTP="$HTTP" python3 - <<'EOF'
import json, os, urllib.request
def call(path, body):
    request = urllib.request.Request(
        os.environ["HTTP"] + path, json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + os.environ["TEACHER"],
                 "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))
course = call("/api/courses", {"title": "CLI course"})
print(call("/api/livestream/", {"title": "CLI class", "course_id": course["id"]})["id"])
EOF
)
# A WebSocket client of the standard library (.ci/ws_client.py).
python3 .ci/ws_client.py "$ws_port" "/?token=$student&stream_id=$stream_id" "$work/frames" 2>"$work/socket.err" &
socket_pid=$!
for _ in $(seq 1 100); do
  grep -qx open "$work/frames" 2>/dev/null && break
  sleep 0.1
done
if ! grep -qx open "$work/frames" 2>/dev/null; then
  echo "the WebSocket did not open:"; cat "$work/socket.err"; exit 1
fi
connection_id=$("$venv/bin/aws" dynamodb query --endpoint-url "$DYNAMO" --region us-east-1 \
  --table-name livestream --index-name GSI1 --key-condition-expression "GSI1PK = :pk" \
  --expression-attribute-values "{\":pk\": {\"S\": \"STREAM#$stream_id#CONNS\"}}" \
  --query 'Items[0].connection_id.S' --output text)

run conn get-connection --connection-id "$connection_id"
# The CLI prints the model's member names (ConnectedAt for the wire's connectedAt):
# whatever it did not parse is missing.
expect_py "get-connection: ConnectedAt and LastActiveAt, ISO 8601 in UTC" \
  "all(__import__('datetime').datetime.fromisoformat(r[k]).utcoffset().total_seconds() == 0 \
       for k in ('ConnectedAt', 'LastActiveAt'))"
expect_py "get-connection: Identity" "r['Identity'] == {'SourceIp': '127.0.0.1', 'UserAgent': 'aws-cli-check/1.0'}"
run conn post-to-connection --connection-id "$connection_id" --data '{"type":"hello"}'
expect "post-to-connection" ""
for _ in $(seq 1 50); do
  grep -qF '"hello"' "$work/frames" && break
  sleep 0.1
done
if grep -qF '{"type":"hello"}' "$work/frames"; then result "post-to-connection: the client got the frame" ok; else
  out=$(cat "$work/frames"); err=$(cat "$work/socket.err"); result "post-to-connection: the client got the frame" no "no frame"; fi
head -c $((129 * 1024)) /dev/zero | tr '\0' x >"$work/big"
run conn post-to-connection --connection-id "$connection_id" --data "file://$work/big"
expect_error "post-to-connection over 128 KB: PayloadTooLargeException" PayloadTooLargeException
run conn delete-connection --connection-id "$connection_id"
expect "delete-connection" ""
for _ in $(seq 1 50); do
  grep -qx closed "$work/frames" && break
  sleep 0.1
done
if grep -qx closed "$work/frames"; then result "delete-connection: the client was closed" ok; else
  out=$(cat "$work/frames"); err=""; result "delete-connection: the client was closed" no "not closed"; fi
for _ in $(seq 1 50); do
  run conn get-connection --connection-id "$connection_id"
  [ "$rc" != 0 ] && break
  sleep 0.1
done
expect_error "get-connection of the deleted connection: GoneException" GoneException
run conn get-connection --connection-id nobody
expect_error "get-connection of an unknown connection: GoneException" GoneException
run conn post-to-connection --connection-id nobody --data x
expect_error "post-to-connection to an unknown connection: GoneException" GoneException

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
