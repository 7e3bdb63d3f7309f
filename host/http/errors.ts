// The one error body of the API: {"error":{"code","message","path"?,...}}.
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export interface ApiError {
  code: string;
  message: string;
  /** JSON path of the offending value (`$`, `$[3].destination.port`), when the body is at fault. */
  path?: string;
  [extra: string]: unknown;
}

export function errorResponse(c: Context, status: ContentfulStatusCode, error: ApiError): Response {
  return c.json({ error }, status);
}

/** A refused body (body.ts): its status, code, message, JSON path and, when known, the byte offset. */
export function bodyErrorResponse(c: Context, e: { status: 400 | 413 | 415; code: string; message: string; path: string; offset?: number }): Response {
  const error: ApiError = { code: e.code, message: e.message, path: e.path };
  if (e.offset !== undefined) error.offset = e.offset;
  return errorResponse(c, e.status, error);
}
