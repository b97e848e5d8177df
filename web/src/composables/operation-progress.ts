/** The live progress of one operation (a backup, a restore): step, bytes, time left, outcome. */
import { ref, type Ref } from 'vue'
import type { WsEvent } from '@/api/ws'

export interface OperationProgress {
  operation: string
  step: string
  percent: number
  done?: number
  total?: number
  eta?: number | null
  state: 'running' | 'succeeded' | 'failed'
  error?: string
}

/**
 * `progress` is the operation being followed (set it when one is accepted); `onOperation` applies
 * its `operation` events (subscribe it with `live`), and calls `finished` when it ends.
 */
export function useOperationProgress<P extends OperationProgress>(finished: (current: P) => void) {
  const progress = ref(null) as Ref<P | null>
  function onOperation(event: WsEvent) {
    const data = event.data as Record<string, unknown>
    const current = progress.value
    if (!current || data.operation !== current.operation) return
    if (event.kind === 'step') {
      current.step = String(data.step ?? current.step)
      current.percent = Number(data.progress ?? current.percent)
    } else if (event.kind === 'progress') {
      current.percent = Number(data.progress ?? current.percent)
      if (typeof data.bytes_done === 'number') current.done = data.bytes_done
      if (typeof data.bytes_total === 'number') current.total = data.bytes_total
      current.eta = typeof data.seconds_remaining === 'number' ? data.seconds_remaining : null
    } else if (event.kind === 'finished') {
      current.state = data.state === 'succeeded' ? 'succeeded' : 'failed'
      current.percent = 100
      current.error = typeof data.error === 'string' ? data.error : undefined
      finished(current)
    }
  }
  return { progress, onOperation }
}
