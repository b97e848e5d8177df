/** Reactive media queries (phone layout, reduced motion). */
import { onBeforeUnmount, ref, type Ref } from 'vue'

export function useMedia(query: string): Ref<boolean> {
  const supported = typeof matchMedia === 'function'
  const list = supported ? matchMedia(query) : null
  const matches = ref(list?.matches ?? false)
  const update = (e: MediaQueryListEvent) => {
    matches.value = e.matches
  }
  list?.addEventListener?.('change', update)
  onBeforeUnmount(() => list?.removeEventListener?.('change', update))
  return matches
}

/** True below the tablet breakpoint: drawer navigation, stacked forms. */
export function usePhone(): Ref<boolean> {
  return useMedia('(max-width: 899px)')
}
