/** API errors as one class with a code, a readable message and details. */

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> }
}

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly details: Record<string, unknown>

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== 'object' || value === null || !('error' in value)) return false
  const inner = (value as { error: unknown }).error
  return typeof inner === 'object' && inner !== null && 'code' in inner && 'message' in inner
}

/** Build an ApiError from a failed response and its decoded body (any shape). */
export function toApiError(status: number, body: unknown): ApiError {
  if (isErrorBody(body)) {
    return new ApiError(status, body.error.code, body.error.message, body.error.details ?? {})
  }
  if (typeof body === 'object' && body !== null && 'detail' in body) {
    const detail = (body as { detail: unknown }).detail
    const text = typeof detail === 'string' ? detail : JSON.stringify(detail)
    return new ApiError(status, status === 404 ? 'not_found' : 'error', text)
  }
  if (typeof body === 'string' && body.trim()) {
    return new ApiError(status, 'error', body.trim().slice(0, 500))
  }
  return new ApiError(status, status === 0 ? 'network' : 'error', '')
}

/** Normalise anything thrown into an ApiError. */
export function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  if (err instanceof DOMException && err.name === 'AbortError') {
    return new ApiError(0, 'aborted', '')
  }
  if (err instanceof TypeError) return new ApiError(0, 'network', err.message)
  return new ApiError(0, 'error', err instanceof Error ? err.message : String(err))
}
