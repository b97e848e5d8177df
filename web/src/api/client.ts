/** The typed API client: generated route types, cookie session + CSRF, readable errors. */
import createClient, { type Middleware } from 'openapi-fetch'
import type { components, paths } from './schema'
import { ApiError, asApiError, toApiError } from './errors'

/** Every route of the API, generated from the server's OpenAPI schema (scripts/gen-api.sh). */
export type Paths = paths
export type Schemas = components['schemas']

export const CSRF_COOKIE = 'stackhub_csrf'
export const CSRF_HEADER = 'X-CSRF-Token'
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Read a cookie by name from document.cookie. */
export function readCookie(name: string, source: string = document.cookie): string | null {
  for (const part of source.split(';')) {
    const [key, ...rest] = part.trim().split('=')
    if (key === name) return decodeURIComponent(rest.join('='))
  }
  return null
}

type Listener = (err: ApiError, path: string) => void
const unauthorizedListeners = new Set<Listener>()

/** Be told when a request comes back 401 (the session ended). */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener)
  return () => unauthorizedListeners.delete(listener)
}

/** Headers every request needs: the CSRF token (from its cookie) on unsafe methods. */
export function authHeaders(method: string): Record<string, string> {
  const headers: Record<string, string> = {}
  if (!SAFE.has(method.toUpperCase())) {
    const csrf = readCookie(CSRF_COOKIE)
    if (csrf) headers[CSRF_HEADER] = csrf
  }
  return headers
}

const auth: Middleware = {
  onRequest({ request }) {
    for (const [key, value] of Object.entries(authHeaders(request.method))) {
      request.headers.set(key, value)
    }
    return request
  },
}

/** Pauses (ms) before asking again when a safe request never reached the server. */
export const NETWORK_RETRY_DELAYS = [250, 750, 1500]

/** Fetch, asked again after a pause when a GET or HEAD fails in the network (no answer at all:
 * Chromium drops requests still waiting for a connection with ERR_NETWORK_CHANGED whenever the
 * host's interfaces change, as Docker makes them do); an answer, even an error, is returned as
 * is, and other methods are never repeated. */
export async function retrySafe(method: string, signal: AbortSignal | null | undefined,
  send: () => Promise<Response>, delays: readonly number[] = NETWORK_RETRY_DELAYS): Promise<Response> {
  const safe = SAFE.has(method.toUpperCase())
  for (let attempt = 0; ; attempt++) {
    try {
      return await send()
    } catch (err) {
      const network = err instanceof TypeError && !signal?.aborted
      if (!safe || !network || attempt >= delays.length) throw err
      await new Promise((resolve) => setTimeout(resolve, delays[attempt]))
    }
  }
}

export const api = createClient<Paths>({ baseUrl: '', credentials: 'same-origin',
  fetch: (input: Request) => retrySafe(input.method, input.signal, () => globalThis.fetch(input.clone())) })
api.use(auth)

interface Result<T> {
  data?: T
  error?: unknown
  response: Response
}

/** Await an openapi-fetch call: return its data or throw an ApiError with a readable message. */
export async function call<T>(request: Promise<Result<T>>): Promise<T> {
  let result: Result<T>
  try {
    result = await request
  } catch (err) {
    throw asApiError(err)
  }
  const { response } = result
  if (!response.ok) {
    const err = toApiError(response.status, result.error)
    if (response.status === 401) {
      const path = new URL(response.url || '/', location.origin).pathname
      unauthorizedListeners.forEach((fn) => fn(err, path))
    }
    throw err
  }
  return result.data as T
}

/** A raw fetch for streams and downloads, with the same auth headers and error handling. */
export async function rawFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const method = init.method ?? 'GET'
  const headers = new Headers(init.headers)
  for (const [key, value] of Object.entries(authHeaders(method))) headers.set(key, value)
  let response: Response
  try {
    response = await retrySafe(method, init.signal, () =>
      fetch(path, { ...init, method, headers, credentials: 'same-origin' }))
  } catch (err) {
    throw asApiError(err)
  }
  if (!response.ok) {
    const text = await response.text().catch(() => '')
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      /* not JSON */
    }
    throw toApiError(response.status, body)
  }
  return response
}

export { ApiError }
