#!/usr/bin/env python3
"""Writes events/http/<function>.json: one API Gateway HTTP API (payload 2.0) event per
HTTP function, for `cargo lambda invoke <function> --data-file events/http/<function>.json`.

Tokens are HS256, signed with the local stack's development secret, valid until 2036.
Run from the repository root after adding a route; a test checks the files stay in step
with the routes table.
"""
import base64, hashlib, hmac, json, re, pathlib

SECRET = b"local-development-secret-not-for-production-use"
# The ids `cargo run -p local -- seed` creates (local/src/seed.rs); a test invokes every
# sample against a seeded table and expects 2xx, in this directory's order.
STREAM = "01JD5Z8Q6T3V0K2M4N6P8R0S2T"
COURSE = "01JD5Z7A1B2C3D4E5F6G7H8J9K"
QUESTION = "01JD5ZB9C8D7E6F5G4H3J2K1M0"
PARAMS = {"id": STREAM, "user_id": "student-1", "seq": "1", "question_id": QUESTION}
# Samples that change a stream's or question's state act on their own seeded one, so
# running every sample once, in any order, answers 2xx.
OWN_PARAMS = {
    "start-stream": {"id": "01JD5Z8Q6T3V0K2M4N6P8R0S3A"},
    "update-stream": {"id": "01JD5Z8Q6T3V0K2M4N6P8R0S3A"},
    "update-stream-settings": {"id": "01JD5Z8Q6T3V0K2M4N6P8R0S3A"},
    "cancel-stream": {"id": "01JD5Z8Q6T3V0K2M4N6P8R0S4B"},
    "stop-stream": {"id": "01JD5Z8Q6T3V0K2M4N6P8R0S5C"},
    "enroll-student": {"id": COURSE},
    "hide-chat-message": {"seq": "2"},
    "approve-question": {"question_id": "01JD5ZB9C8D7E6F5G4H3J2K1M1"},
    "reopen-question": {"question_id": "01JD5ZB9C8D7E6F5G4H3J2K1M2"},
    "dismiss-question": {"question_id": "01JD5ZB9C8D7E6F5G4H3J2K1M3"},
    "hide-question": {"question_id": "01JD5ZB9C8D7E6F5G4H3J2K1M4"},
}
BODIES = {
    "create-stream": {"title": "Ownership and borrowing", "description": "Live coding", "course_id": COURSE,
                      "quality_settings": {"resolution": "1080p", "frame_rate": 30, "bitrate_kbps": 4500},
                      "is_public": True, "is_recording": True},
    "update-stream": {"title": "Ownership, borrowing and lifetimes"},
    "create-course": {"title": "Rust 101", "description": "From zero to ownership"},
    "enroll-student": {"user_id": "student-3"},
    "update-stream-settings": {"chat_slow_mode_seconds": 5, "blocked_words": ["spam"], "questions_require_approval": False},
    "update-participant": {"is_moderator": True},
    "send-chat-message": {"message": "Is ownership checked at compile time?", "message_type": "text"},
    "ask-question": {"text": "How do lifetimes relate to scopes?", "anonymous": False},
    "answer-question": {"answer": "A lifetime is the region of code where a reference is valid."},
}
QUERIES = {"list-live-streams": "limit=20", "list-my-streams": "limit=20", "list-chat-messages": "since=0&limit=50",
           "list-questions": "sort=top&filter=unanswered", "get-replay": "from_ms=0&to_ms=600000&limit=100"}
TEACHER_FUNCTIONS = {"get-ingest", "rotate-stream-key", "create-stream", "list-my-streams", "update-stream", "start-stream", "stop-stream", "cancel-stream",
                     "create-course", "enroll-student", "update-stream-settings", "update-participant", "list-participants",
                     "hide-chat-message", "pin-chat-message", "unpin-chat-message", "get-stream-stats", "get-attendance", "answer-question",
                     "hide-question", "approve-question", "dismiss-question", "reopen-question", "highlight-question",
                     "clear-highlight"}
# The recording's playlist is authenticated by a token that get-recording signs with the
# deployment's playback key, so no committed sample can hold a valid one: its sample
# carries a placeholder and is refused (403), which local/tests/samples.rs expects.
QUERIES["get-recording-playlist"] = "token=placeholder-of-get-recording"
TEACHER_FUNCTIONS.add("delete-recording")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub, role):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64(json.dumps({"sub": sub, "role": role, "name": sub, "iat": 1795478400, "exp": 2110838400},
                             separators=(",", ":")).encode())
    signature = b64(hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def routes():
    text = pathlib.Path("shared/src/routes.rs").read_text()
    seen = {}
    for method, path, function in re.findall(r'route\(\s*"(\w+)",\s*"([^"]+)",\s*"([^"]+)",?\s*\)', text):
        seen.setdefault(function, (method, path))
    return seen


def event(function, method, route_path):
    path = route_path
    params = {}
    for name in re.findall(r"{(\w+)}", route_path):
        params[name] = OWN_PARAMS.get(function, {}).get(name, PARAMS[name])
        path = path.replace("{" + name + "}", params[name])
    who = ("teacher-1", "teacher") if function in TEACHER_FUNCTIONS else ("student-1", "student")
    query = QUERIES.get(function, "")
    body = BODIES.get(function)
    headers = {"accept": "application/json", "authorization": f"Bearer {token(*who)}",
               "content-type": "application/json", "host": "api.example.com", "user-agent": "Mozilla/5.0"}
    e = {
        "version": "2.0", "routeKey": f"{method} {route_path}", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                           "domainPrefix": "api", "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                                           "sourceIp": "203.0.113.10", "userAgent": "Mozilla/5.0"},
                           "requestId": "ExampleRequestId", "routeKey": f"{method} {route_path}", "stage": "$default",
                           "time": "24/Nov/2026:09:00:00 +0000", "timeEpoch": 1795510800000},
        "isBase64Encoded": False,
    }
    if query:
        e["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if params:
        e["pathParameters"] = params
    if body is not None:
        e["body"] = json.dumps(body)
    return e


def main():
    out = pathlib.Path("events/http")
    out.mkdir(parents=True, exist_ok=True)
    for function, (method, route_path) in routes().items():
        (out / f"{function}.json").write_text(json.dumps(event(function, method, route_path), indent=2) + "\n")


if __name__ == "__main__":
    main()
