/**
 * Lazily loaded components and views with an error state: a chunk that fails to load (a flaky
 * network, or a tab left open across an upgrade) is retried once on its own; if that fails too,
 * an error with a "Try again" button takes its place instead of a blank area.
 */
import { defineComponent, h, markRaw, shallowRef, type Component } from 'vue'
import LazyError from '@/components/lazy-error.vue'

type Loaded = Component | { default: Component }
export type Loader = () => Promise<Loaded>

const CHUNK_URL = /(https?:\/\/\S+?\.js)\b/
const RETRY_DELAY = 500 // ms

function unwrap(mod: Loaded): Component {
  return (typeof mod === 'object' && mod !== null && 'default' in mod ? mod.default : mod) as Component
}

/** Load; on failure once more. A browser may remember a failed module fetch, so the second try
 * asks for the chunk named in the error under a fresh query string when it can. */
export async function loadWithRetry(loader: Loader): Promise<Component> {
  try {
    return unwrap(await loader())
  } catch (err) {
    // a moment's pause: a brief network blip (the browser reports ERR_NETWORK_CHANGED while the
    // host's interfaces change, e.g. when Docker creates a network) is over by then
    await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY))
    const url = CHUNK_URL.exec(String((err as Error)?.message ?? err))?.[1]
    if (!url) return unwrap(await loader())
    return unwrap(await import(/* @vite-ignore */ `${url}${url.includes('?') ? '&' : '?'}retry=${Date.now()}`) as Loaded)
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
