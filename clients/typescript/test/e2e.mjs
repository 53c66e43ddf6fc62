// End-to-end use of the typed client against a running local stack: a teacher schedules
// and starts a class, a student watches it live through LiveEvents, chats over HTTP,
// loses the connection, and gets exactly the missed message back through catch_up.
//
// usage: LS_API=http://127.0.0.1:3000 LS_WS=ws://127.0.0.1:3001 LS_TEACHER=<jwt> LS_STUDENT=<jwt> \
//        LS_STUDENT_ID=student-1 node test/e2e.mjs   (after `npm run build`)
import assert from "node:assert/strict";
import WebSocket from "ws";
import { ApiError, LiveEvents, createClient } from "../dist/index.js";

const env = (name) => process.env[name] ?? assert.fail(`${name} is not set`);
const teacher = createClient({ baseUrl: env("LS_API"), token: env("LS_TEACHER") });
const student = createClient({ baseUrl: env("LS_API"), token: () => env("LS_STUDENT") });
let passed = 0;
const step = async (name, body) => {
  await body();
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
};

/** Resolves with the first event matching `predicate`; fails after a generous bound. */
function waitFor(events, predicate, what) {
  return new Promise((resolve, reject) => {
    const found = events.list.find(predicate);
    if (found) return resolve(found);
    const timer = setTimeout(() => reject(new Error(`no ${what} within 20 s`)), 20_000);
    events.waiters.push((event) => {
      if (!predicate(event)) return false;
      clearTimeout(timer);
      resolve(event);
      return true;
    });
  });
}

let course, stream, live;
const events = { list: [], waiters: [] };

await step("teacher creates a course, enrolls the student and starts a private class", async () => {
  course = await teacher.createCourse({ title: "Typed client 101" });
  const enrollment = await teacher.enrollStudent({ id: course.id }, { user_id: env("LS_STUDENT_ID") });
  assert.equal(enrollment.course_id, course.id);
  stream = await teacher.createStream({
    title: "Ownership",
    course_id: course.id,
    is_public: false,
    quality_settings: { resolution: "1080p", frame_rate: 30, bitrate: 4000 },
  });
  assert.equal(stream.status, "scheduled");
  assert.equal(stream.quality_settings.bitrate_kbps, 4000, "the frontend's `bitrate` is accepted");
  assert.ok(stream.stream_key, "the instructor sees the stream key");
  const started = await teacher.startStream({ id: stream.id });
  assert.equal(started.status, "live");
});

await step("errors come back as ApiError with the stable code and field details", async () => {
  await assert.rejects(
    teacher.createStream({ title: " ", course_id: course.id }),
    (err) => err instanceof ApiError && err.status === 422 && err.code === "validation_failed"
      && err.body.error.details.some((d) => d.field === "title"),
  );
  await assert.rejects(student.startStream({ id: stream.id }), (err) => err instanceof ApiError && err.status === 403);
});

await step("the student watches live and receives a chat message with its seq", async () => {
  live = new LiveEvents({
    url: env("LS_WS"),
    token: env("LS_STUDENT"),
    streamId: stream.id,
    WebSocket,
    reconnectDelayMs: 200,
    onEvent: (event) => {
      events.list.push(event);
      events.waiters = events.waiters.filter((waiter) => !waiter(event));
    },
  });
  await waitFor(events, (e) => e.type === "chat.history", "initial catch_up");
  const sent = await student.sendChatMessage({ id: stream.id }, { message: "Hello from the typed client" });
  assert.equal(sent.seq, 1);
  const received = await waitFor(events, (e) => e.type === "chat.message" && e.data.seq === 1, "chat.message 1");
  assert.equal(received.data.message, "Hello from the typed client");
  assert.match(received.sequence, /^[0-9]+$/, "live events carry the change-stream sequence");
  const viewers = await waitFor(events, (e) => e.type === "viewers.updated", "viewers.updated");
  assert.equal(typeof viewers.data.viewer_count, "number");
});

await step("a dropped connection catches up exactly the missed message, once", async () => {
  live.reconnect();
  await teacher.sendChatMessage({ id: stream.id }, { message: "While you were away", message_type: "announcement" });
  const missed = await waitFor(events, (e) => e.type === "chat.message" && e.data.seq === 2, "chat.message 2");
  assert.equal(missed.data.message_type, "announcement");
  assert.equal(live.lastSeq, 2);
  const page = await student.listChatMessages({ id: stream.id }, { since: 0, limit: 10 });
  assert.deepEqual(page.items.map((m) => m.seq), [1, 2]);
  assert.equal(page.last_seq, 2);
  const seqs = events.list.filter((e) => e.type === "chat.message").map((e) => e.data.seq);
  assert.deepEqual(seqs, [1, 2], "no message delivered twice");
});

await step("questions, stop and stats through the typed functions", async () => {
  const question = await student.askQuestion({ id: stream.id }, { text: "What is a borrow?", anonymous: true });
  assert.equal(question.is_mine, true);
  await waitFor(events, (e) => e.type === "question.created" && e.data.id === question.id, "question.created");
  const questions = await teacher.listQuestions({ id: stream.id }, { sort: "recent" });
  assert.equal(questions.items[0].id, question.id);
  const stopped = await teacher.stopStream({ id: stream.id });
  assert.equal(stopped.status, "ended");
  const status = await waitFor(events, (e) => e.type === "stream.status" && e.data.status === "ended", "stream.status ended");
  assert.equal(status.data.duration, stopped.duration);
  const stats = await teacher.getStreamStats({ id: stream.id });
  assert.equal(stats.unique_viewers, 1);
  assert.equal(stats.max_viewers, 1);
  assert.equal(stats.chat_messages_count, 2);
});

live.close();
console.log(`typescript client e2e: ${passed} passed, 0 failed`);
