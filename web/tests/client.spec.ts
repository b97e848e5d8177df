import { afterEach, describe, expect, it } from 'vitest'
import { authHeaders, readCookie } from '@/api/client'
import { asApiError, toApiError } from '@/api/errors'

afterEach(() => {
  document.cookie = 'stackhub_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT'
})

describe('cookies and CSRF', () => {
  it('reads a cookie by name', () => {
    expect(readCookie('b', 'a=1; b=two%20words; c=3')).toBe('two words')
    expect(readCookie('x', 'a=1')).toBeNull()
  })
  it('sends the CSRF token on unsafe methods only', () => {
    document.cookie = 'stackhub_csrf=tok123'
    expect(authHeaders('POST')).toEqual({ 'X-CSRF-Token': 'tok123' })
    expect(authHeaders('delete')).toEqual({ 'X-CSRF-Token': 'tok123' })
    expect(authHeaders('GET')).toEqual({})
  })
})

describe('errors', () => {
  it('reads StackHub error bodies', () => {
    const err = toApiError(428, { error: { code: 'risk_not_accepted', message: 'risky', details: { digest: 'sha256:x' } } })
    expect([err.status, err.code, err.message, err.details.digest]).toEqual([428, 'risk_not_accepted', 'risky', 'sha256:x'])
  })
  it('reads FastAPI and plain bodies', () => {
    expect(toApiError(404, { detail: 'Not Found' }).code).toBe('not_found')
    expect(toApiError(502, 'Bad gateway').message).toBe('Bad gateway')
    expect(toApiError(500, undefined).message).toBe('')
  })
  it('turns fetch failures into network errors', () => {
    expect(asApiError(new TypeError('Failed to fetch')).code).toBe('network')
    expect(asApiError(new DOMException('x', 'AbortError')).code).toBe('aborted')
  })
})
