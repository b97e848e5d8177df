import { describe, expect, it, vi } from 'vitest'
import type { WsEvent } from '@/api/ws'
import { useOperationProgress, type OperationProgress } from '@/composables/operation-progress'

const event = (kind: string, data: Record<string, unknown>) =>
  ({ topic: 'operation', kind, key: 'blog', data }) satisfies WsEvent

describe('useOperationProgress', () => {
  it('follows only its operation: step, bytes, time left, then the outcome', () => {
    const finished = vi.fn()
    const { progress, onOperation } = useOperationProgress<OperationProgress & { kind: string }>(finished)
    onOperation(event('step', { operation: 'op1', step: 'snapshot', progress: 10 }))
    expect(progress.value).toBeNull()
    progress.value = { kind: 'backup', operation: 'op1', step: 'prepare', percent: 2, state: 'running' }
    onOperation(event('step', { operation: 'other', step: 'snapshot', progress: 50 }))
    expect(progress.value?.step).toBe('prepare')
    onOperation(event('step', { operation: 'op1', step: 'snapshot', progress: 10 }))
    onOperation(event('progress', { operation: 'op1', progress: 40, bytes_done: 4, bytes_total: 10, seconds_remaining: 6 }))
    expect(progress.value).toMatchObject({ step: 'snapshot', percent: 40, done: 4, total: 10, eta: 6 })
    onOperation(event('progress', { operation: 'op1', progress: 45 }))
    expect(progress.value?.eta).toBeNull()
    expect(finished).not.toHaveBeenCalled()
    onOperation(event('finished', { operation: 'op1', state: 'failed', error: 'repository locked' }))
    expect(progress.value).toMatchObject({ state: 'failed', percent: 100, error: 'repository locked' })
    expect(finished).toHaveBeenCalledWith(progress.value)
  })
})
