#!/usr/bin/env python3
"""Seeds a fresh local stack for the contract checks and prints shell assignments:
a course with student-1 enrolled, a live stream (joined by student-1, with one chat
message and one question), a second live stream to stop and a scheduled one to cancel.

usage: seed.py API_BASE TEACHER_TOKEN STUDENT_TOKEN
"""
import datetime
import json
import sys
import urllib.request

api, teacher, student = sys.argv[1:4]


def call(method, path, token, body=None, expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.status not in expect:
            raise SystemExit(f"{method} {path}: {resp.status}")
        return json.load(resp)


course = call("POST", "/api/courses", teacher, {"title": "Contract checks"})["id"]
call("POST", f"/api/courses/{course}/enrollments", teacher, {"user_id": "student-1"})


def stream(title, start):
    sid = call("POST", "/api/livestream/", teacher, {"title": title, "course_id": course})["id"]
    if start:
        call("POST", f"/api/livestream/{sid}/start", teacher)
    return sid


live = stream("Fuzzed class", True)
call("POST", f"/api/livestream/{live}/join", student)
call("POST", f"/api/livestream/{live}/chat", student, {"message": "first"})
question = call("POST", f"/api/livestream/{live}/questions", student, {"text": "Why?"})["id"]
to_stop = stream("Class to stop", True)
to_cancel = stream("Class to cancel", False)
schedule = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
for name, value in [("LS_SCHEDULE", schedule), ("LS_COURSE", course), ("LS_STREAM", live), ("LS_QUESTION", question),
                    ("LS_STREAM_TO_STOP", to_stop), ("LS_STREAM_TO_CANCEL", to_cancel)]:
    print(f"export {name}={value}")
