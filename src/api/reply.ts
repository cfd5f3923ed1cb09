/** An API answer, transport-free: status, body and its content type, headers, cookies (http.ts writes it). */
import type { CloudStackError } from '../errors/catalogue.js';
import type { ResponseObject } from './command.js';
import { errorBody, serialize } from './envelope.js';
import type { ResponseFormat } from './envelope.js';

export interface ApiRequest {
  /** First value of each parameter, query string and form body merged (query first). */
  params: Map<string, string>;
  cookies: Record<string, string>;
  /** The client's address (the login throttle counts per address); absent when the transport does not know. */
  remoteAddress?: string;
  /**
   * Its place in this process's arrivals (`requestArrivals`), given by the HTTP listener once the whole request
   * was in: a read of the database made after that saw every change its client could have known of when it sent
   * it. Absent when the transport does not say (inject(), Fastify's routes).
   */
  arrived?: number;
}

/** Requests received by this process so far, whole (ApiRequest.arrived). */
export const requestArrivals = { count: 0 };

export interface ApiResponse {
  status: number;
  contentType: string;
  body: string;
  headers: Record<string, string>;
  setCookies: string[];
}

export function reply(
  status: number,
  name: string,
  body: ResponseObject,
  format: ResponseFormat,
  extra: Partial<Pick<ApiResponse, 'headers' | 'setCookies'>> = {},
): ApiResponse {
  const s = serialize(name, body, format);
  return {
    status,
    contentType: s.contentType,
    body: s.body,
    headers: extra.headers ?? {},
    setCookies: extra.setCookies ?? [],
  };
}

export function errorReply(err: CloudStackError, name: string, format: ResponseFormat): ApiResponse {
  // X-Description repeats the text (CloudStack sets it on every error); header values must be one ASCII line.
  const header = err.message.replace(/[^\x20-\x7e]/g, ' ').slice(0, 1000);
  return reply(err.httpCode, name, errorBody(err), format, { headers: { 'X-Description': header } });
}
