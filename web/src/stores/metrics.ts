/** Live host metrics: one websocket subscription while any widget shows them. */
import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import { api, call, type Schemas } from '@/api/client'
import { live, type WsEvent } from '@/api/ws'
import { asApiError, type ApiError } from '@/api/errors'

export type Sample = Schemas['MetricsSample']
export const HISTORY = 60

export const useMetrics = defineStore('metrics', () => {
  const samples = shallowRef<Sample[]>([])
  const error = shallowRef<ApiError | null>(null)
  const watchers = ref(0)
  let stop: (() => void) | null = null

  const latest = computed(() => samples.value[samples.value.length - 1] ?? null)
  const series = computed(() => ({
    cpu: samples.value.map((s) => s.cpu.percent),
    memory: samples.value.map((s) => s.memory.percent),
    disk: samples.value.map((s) => s.disk.percent),
    rx: samples.value.map((s) => s.net.rx_rate),
    tx: samples.value.map((s) => s.net.tx_rate),
  }))

  /** Add a sample, keeping time order and the last HISTORY ones. */
  function push(sample: Sample): void {
    const last = samples.value[samples.value.length - 1]
    if (last && sample.at <= last.at) return
    samples.value = [...samples.value, sample].slice(-HISTORY)
  }

  async function prime(): Promise<void> {
    try {
      const read = await call(api.GET('/api/system/metrics'))
      const merged = [...(read.history ?? []), read.sample].sort((a, b) => a.at - b.at)
      for (const sample of merged) push(sample)
      error.value = null
    } catch (err) {
      error.value = asApiError(err)
    }
  }

  /** Start showing metrics; pair every call with `release`. */
  function acquire(): void {
    watchers.value++
    if (watchers.value > 1) return
    void prime()
    stop = live.subscribe('metrics', undefined, (event: WsEvent) => {
      if (event.kind === 'sample') push(event.data as unknown as Sample)
    })
  }

  function release(): void {
    watchers.value = Math.max(0, watchers.value - 1)
    if (watchers.value === 0 && stop) {
      stop()
      stop = null
    }
  }

  return { samples, latest, series, error, watchers, push, acquire, release }
})
