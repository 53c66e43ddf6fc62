// The thin fetch wrapper the generated operations call, and the types that pick an
// operation's parameters, body and success response out of the generated OpenAPI types.
import type { components, operations as Operations } from "./generated/openapi.js";

export type Schemas = components["schemas"];
export type OperationId = keyof Operations;

type JsonOf<R> = R extends { content: { "application/json": infer B } } ? B : never;

/** The JSON body an operation takes. */
export type RequestBody<K extends OperationId> = Operations[K] extends {
  requestBody: { content: { "application/json": infer B } };
}
  ? B
  : never;
/** The path parameters of an operation (`{ id, seq, ... }`). */
export type PathParams<K extends OperationId> = Operations[K]["parameters"] extends { path: infer P }
  ? P
  : never;
/** The query parameters of an operation. */
export type QueryParams<K extends OperationId> = NonNullable<Operations[K]["parameters"]["query"]>;
/** The body of an operation's 200 or 201 response. */
export type SuccessBody<K extends OperationId> = {
  [S in keyof Operations[K]["responses"]]: S extends 200 | 201 ? JsonOf<Operations[K]["responses"][S]> : never;
}[keyof Operations[K]["responses"]];

/** A 4xx or 5xx answer, with the API's error body (`code`, `message`, `details`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Schemas["ErrorBody"] | undefined,
    /** Seconds from `Retry-After` (429 slow mode, 503 a busy table). */
    readonly retryAfter: number | undefined,
  ) {
    super(body?.error.message ?? `HTTP ${status}`);
    this.name = "ApiError";
  }

  /** The stable machine code (`stream_not_live`, `validation_failed`, ...). */
  get code(): string | undefined {
    return this.body?.error.code;
  }
}

export interface ClientOptions {
  /** The HTTP API's base URL: `http://127.0.0.1:3000` locally, a deployment's `HttpApiUrl`. */
  baseUrl: string;
  /** The user's JWT, or a function returning the current one. */
  token: string | (() => string | Promise<string>);
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

interface CallParts {
  path?: Record<string, string | number>;
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: unknown;
}

/** Sends one request; resolves to the parsed body, throws [`ApiError`] for 4xx and 5xx. */
export async function call<T>(
  options: ClientOptions,
  method: string,
  template: string,
  parts: CallParts,
): Promise<T> {
  const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = parts.path?.[name];
    if (value === undefined) throw new Error(`missing path parameter ${name}`);
    return encodeURIComponent(String(value));
  });
  const url = new URL(options.baseUrl.replace(/\/$/, "") + path);
  for (const [name, value] of Object.entries(parts.query ?? {})) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  const token = typeof options.token === "function" ? await options.token() : options.token;
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  const init: RequestInit = { method, headers };
  if (parts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(parts.body);
  }
  const response = await (options.fetch ?? fetch)(url, init);
  const text = await response.text();
  const data: unknown = text ? JSON.parse(text) : undefined;
  if (!response.ok) {
    const retryAfter = Number(response.headers.get("retry-after")) || undefined;
    throw new ApiError(response.status, data as Schemas["ErrorBody"] | undefined, retryAfter);
  }
  return data as T;
}
