import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { HISTORY, useMetrics, type Sample } from '@/stores/metrics'

function sample(at: number, cpu = 10): Sample {
  return { at, cpu: { percent: cpu, count: 2, load: [] }, memory: { total: 100, used: 50, available: 50, percent: 50 },
    disk: { path: '/', total: 100, used: 10, free: 90, percent: 10 },
    net: { rx_rate: 1, tx_rate: 2, rx_total: 3, tx_total: 4 } }
}

describe('metrics store', () => {
  beforeEach(() => setActivePinia(createPinia()))

  it('keeps samples in time order and at most HISTORY of them', () => {
    const store = useMetrics()
    for (let i = 1; i <= HISTORY + 10; i++) store.push(sample(i, i))
    store.push(sample(5)) // late duplicate: ignored
    expect(store.samples).toHaveLength(HISTORY)
    expect(store.latest?.at).toBe(HISTORY + 10)
    expect(store.series.cpu.at(-1)).toBe(HISTORY + 10)
    expect(store.series.tx.every((v) => v === 2)).toBe(true)
  })
})
