// The typed client of the livestream backend.
//
//   const api = createClient({ baseUrl: "http://127.0.0.1:3000", token });
//   const stream = await api.createStream({ title: "Ownership", course_id });
//   const live = new LiveEvents({ url: "ws://127.0.0.1:3001", token, streamId: stream.id,
//                                 onEvent: (e) => console.log(e.type, e.data) });
import { operations } from "./generated/operations.js";
import type { ClientOptions } from "./http.js";

export { ApiError, call } from "./http.js";
export type { ClientOptions, OperationId, PathParams, QueryParams, RequestBody, Schemas, SuccessBody } from "./http.js";
export type { components, paths, operations as Operations } from "./generated/openapi.js";
export type { ClientAction, EventData, ServerMessage, ServerMessageType } from "./generated/live.js";
export { LiveEvents, type LiveEventsOptions, type LiveStatus, type WebSocketLike } from "./live.js";

/** The HTTP API, one function per operation. */
export function createClient(options: ClientOptions) {
  return operations(options);
}

export type Client = ReturnType<typeof createClient>;
