/**
 * Lazily loaded components and views with an error state: a chunk that fails to load (a flaky
 * network, or a tab left open across an upgrade) is retried on its own a few times over about
 * four seconds; if every try fails, an error with a "Try again" button takes its place instead
 * of a blank area.
 */
import { defineComponent, h, markRaw, shallowRef, type Component } from 'vue'
import LazyError from '@/components/lazy-error.vue'

type Loaded = Component | { default: Component }
export type Loader = () => Promise<Loaded>

const CHUNK_URL = /(https?:\/\/\S+?\.js)\b/
/** Pauses before each new try (ms). Chromium fails every request waiting for a connection with
 * ERR_NETWORK_CHANGED whenever the host's interfaces change, which Docker does for every network
 * and container it creates or removes: on a busy host such blips come in bursts, so one retry
 * half a second later is not enough. */
export const RETRY_DELAYS = [300, 700, 1500, 2500]

function unwrap(mod: Loaded): Component {
  return (typeof mod === 'object' && mod !== null && 'default' in mod ? mod.default : mod) as Component
}

/** Load; on failure try again after each pause of RETRY_DELAYS. A browser may remember a failed
 * module fetch, so later tries ask for the chunk named in the error under a fresh query string
 * when they can (its own imports are fetched again by the browser). */
export async function loadWithRetry(loader: Loader, delays: readonly number[] = RETRY_DELAYS): Promise<Component> {
  try {
    return unwrap(await loader())
  } catch (first) {
    let err: unknown = first
    for (const delay of delays) {
      await new Promise((resolve) => setTimeout(resolve, delay))
      try {
        const url = CHUNK_URL.exec(String((err as Error)?.message ?? err))?.[1]
        if (!url) return unwrap(await loader())
        return unwrap(await import(/* @vite-ignore */ `${url}${url.includes('?') ? '&' : '?'}retry=${Date.now()}`) as Loaded)
      } catch (again) {
        err = again
      }
    }
    throw err
  }
}

/** A component standing for a lazily loaded one (props, listeners and slots pass through); it
 * loads on first use, or starts from a failure already met (`failedWith`). */
export function lazy(loader: Loader, failedWith?: unknown): Component {
  let resolved: Component | null = null  // once loaded, every later use renders it at once
  let firstFailure = failedWith
  return defineComponent({
    name: 'LazyComponent',
    inheritAttrs: false,
    setup(_, { attrs, slots }) {
      const loaded = shallowRef<Component | null>(resolved)
      const failed = shallowRef<unknown>(resolved ? null : firstFailure ?? null)
      const busy = shallowRef(false)
      firstFailure = undefined
      async function load() {
        busy.value = true
        try {
          resolved = markRaw(await loadWithRetry(loader))
          loaded.value = resolved
          failed.value = null
        } catch (err) {
          console.error('could not load a part of the console:', err)
          failed.value = err
        } finally {
          busy.value = false
        }
      }
      if (!loaded.value && !failed.value) void load()
      return () => {
        if (loaded.value) return h(loaded.value, attrs, slots)
        if (failed.value) return h(LazyError, { busy: busy.value, onRetry: load })
        return null
      }
    },
  })
}

/** A route's view: the router waits for it as before (the address changes once the page can
 * show); if it cannot be loaded even on the second try, the page shows the error and a retry. */
export function lazyView(loader: Loader): () => Promise<Component> {
  return async () => {
    try {
      return await loadWithRetry(loader)
    } catch (err) {
      console.error('could not load a page of the console:', err)
      return lazy(loader, err)
    }
  }
}
