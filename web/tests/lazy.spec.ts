import { describe, expect, it } from 'vitest'
import { defineComponent } from 'vue'
import { loadWithRetry, RETRY_DELAYS } from '@/utils/lazy'

const View = defineComponent({ name: 'TheView', render: () => null })

/** A loader failing `failures` times (as a network blip does), then loading. */
function flaky(failures: number): { loader: () => Promise<{ default: typeof View }>, calls: () => number } {
  let calls = 0
  return {
    loader: async () => {
      calls += 1
      if (calls <= failures) throw new TypeError('Failed to fetch dynamically imported module')
      return { default: View }
    },
    calls: () => calls,
  }
}

describe('loadWithRetry', () => {
  it('rides out a burst of failures (several retries, not one)', async () => {
    const { loader, calls } = flaky(3)
    await expect(loadWithRetry(loader, [0, 0, 0, 0])).resolves.toBe(View)
    expect(calls()).toBe(4)
  })

  it('gives up after the last pause and reports the error', async () => {
    const { loader, calls } = flaky(100)
    await expect(loadWithRetry(loader, [0, 0])).rejects.toThrow('Failed to fetch')
    expect(calls()).toBe(3)
  })

  it('waits a few seconds in all by default, growing pauses', () => {
    expect(RETRY_DELAYS.length).toBeGreaterThanOrEqual(3)
    const total = RETRY_DELAYS.reduce((a, b) => a + b, 0)
    expect(total).toBeGreaterThanOrEqual(3000)
    expect(total).toBeLessThanOrEqual(8000)
    expect([...RETRY_DELAYS].sort((a, b) => a - b)).toEqual(RETRY_DELAYS)
  })
})
