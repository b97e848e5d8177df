import { describe, expect, it } from 'vitest'
import { retrySafe } from '@/api/client'

/** A send that fails in the network `failures` times (no answer), then answers 200. */
function flaky(failures: number): { send: () => Promise<Response>, calls: () => number } {
  let calls = 0
  return {
    send: async () => {
      calls += 1
      if (calls <= failures) throw new TypeError('Failed to fetch')
      return new Response('{}', { status: 200 })
    },
    calls: () => calls,
  }
}

describe('retrySafe', () => {
  it('asks again when a GET never reached the server', async () => {
    const { send, calls } = flaky(2)
    const response = await retrySafe('GET', undefined, send, [0, 0, 0])
    expect(response.status).toBe(200)
    expect(calls()).toBe(3)
  })

  it('never repeats a POST, which may have reached the server', async () => {
    const { send, calls } = flaky(1)
    await expect(retrySafe('POST', undefined, send, [0, 0, 0])).rejects.toThrow('Failed to fetch')
    expect(calls()).toBe(1)
  })

  it('returns answers as they are, errors included', async () => {
    let calls = 0
    const send = async () => { calls += 1; return new Response('{}', { status: 503 }) }
    expect((await retrySafe('GET', undefined, send, [0, 0])).status).toBe(503)
    expect(calls).toBe(1)
  })

  it('stops after the last pause, and at once when the caller aborted', async () => {
    const { send, calls } = flaky(100)
    await expect(retrySafe('GET', undefined, send, [0, 0])).rejects.toThrow('Failed to fetch')
    expect(calls()).toBe(3)
    const aborted = new AbortController()
    aborted.abort()
    const second = flaky(100)
    await expect(retrySafe('GET', aborted.signal, second.send, [0, 0])).rejects.toThrow()
    expect(second.calls()).toBe(1)
  })
})
