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
