/** Start, stop, restart and remove an instance, with toasts and list updates. */
import { ref } from 'vue'
import { useI18n } from 'vue-i18n'
import { useMessage } from 'naive-ui'
import { api, call } from '@/api/client'
import { live } from '@/api/ws'
import { useInstances } from '@/stores/instances'
import { errorLine } from '@/utils/errors'

export type Action = 'start' | 'stop' | 'restart'

export function useInstanceActions() {
  const { t } = useI18n()
  const message = useMessage()
  const instances = useInstances()
  const busy = ref<string | null>(null)

  async function act(name: string, action: Action): Promise<void> {
    busy.value = `${name}:${action}`
    try {
      const path = { params: { path: { name } } }
      const result = action === 'start' ? await call(api.POST('/api/instances/{name}/start', path))
        : action === 'stop' ? await call(api.POST('/api/instances/{name}/stop', path))
          : await call(api.POST('/api/instances/{name}/restart', path))
      instances.put(result)
      message.success(t(`instances.done.${action}`, { name }))
    } catch (err) {
      message.error(errorLine(err))
    } finally {
      busy.value = null
    }
  }

  /** Remove; resolves once the removal operation has finished (or failed). */
  async function remove(name: string, purge: boolean): Promise<boolean> {
    busy.value = `${name}:remove`
    let stop: (() => void) | null = null
    let settled = false
    try {
      const finished = new Promise<string>((resolve) => {
        stop = live.subscribe('operation', name, (event) => {
          const data = event.data as Record<string, unknown>
          if (event.kind === 'finished' && data.op_kind === 'remove') resolve(String(data.state))
        })
      })
      const accepted = await call(api.DELETE('/api/instances/{name}', { params: { path: { name }, query: { purge } } }))
      // events first; a slow poll in case the websocket is down
      const polled = (async () => {
        while (!settled) {
          await new Promise((r) => setTimeout(r, 2000))
          if (settled) break
          try {
            const op = await call(api.GET('/api/operations/{op_id}', { params: { path: { op_id: accepted.operation.id } } }))
            if (op.state !== 'running') return op.state
          } catch {
            /* try again */
          }
        }
        return 'succeeded'
      })()
      const state = await Promise.race([finished, polled])
      if (state !== 'succeeded') throw new Error(t('instances.removeFailed', { name }))
      instances.drop(name)
      message.success(t('instances.removed', { name }))
      return true
    } catch (err) {
      message.error(errorLine(err))
      void instances.load()
      return false
    } finally {
      settled = true
      ;(stop as (() => void) | null)?.()
      busy.value = null
    }
  }

  return { busy, act, remove }
}
