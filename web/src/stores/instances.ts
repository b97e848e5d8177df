/** Installed apps (instances), kept fresh from instance and operation events. */
import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import { api, call, type Schemas } from '@/api/client'
import { live } from '@/api/ws'
import { asApiError, type ApiError } from '@/api/errors'

export type Instance = Schemas['InstanceRead']
const RELOAD_DELAY = 300

export const useInstances = defineStore('instances', () => {
  const items = shallowRef<Instance[]>([])
  const loaded = ref(false)
  const loading = ref(false)
  const error = shallowRef<ApiError | null>(null)
  let watchers = 0
  let stops: (() => void)[] = []
  let timer: ReturnType<typeof setTimeout> | null = null

  const byName = computed(() => new Map(items.value.map((i) => [i.name, i])))

  async function load(): Promise<void> {
    loading.value = true
    try {
      items.value = await call(api.GET('/api/instances'))
      error.value = null
      loaded.value = true
    } catch (err) {
      error.value = asApiError(err)
    } finally {
      loading.value = false
    }
  }

  function soon(): void {
    if (timer) return
    timer = setTimeout(() => {
      timer = null
      void load()
    }, RELOAD_DELAY)
  }

  /** Keep the list live while a view shows it; pair with `release`. */
  function acquire(): void {
    watchers++
    if (watchers > 1) return
    void load()
    stops = [
      live.subscribe('instance', undefined, soon),
      live.subscribe('operation', undefined, (event) => {
        if (event.kind === 'finished' || event.kind === 'step') soon()
      }),
    ]
  }

  function release(): void {
    watchers = Math.max(0, watchers - 1)
    if (watchers === 0) {
      stops.forEach((fn) => fn())
      stops = []
    }
  }

  /** Replace one instance after an action returned its new state. */
  function put(instance: Instance): void {
    const rest = items.value.filter((i) => i.name !== instance.name)
    items.value = [...rest, instance].sort((a, b) => a.name.localeCompare(b.name))
  }

  function drop(name: string): void {
    items.value = items.value.filter((i) => i.name !== name)
  }

  return { items, loaded, loading, error, byName, load, acquire, release, put, drop }
})
