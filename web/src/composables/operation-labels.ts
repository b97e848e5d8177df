/** Operation texts in the console's language, and a clock for "3 minutes ago" and running timers. */
import { computed, onBeforeUnmount, ref, watch, type Ref } from 'vue'
import { useI18n } from 'vue-i18n'

/** Kind, state and step names translated; names the console does not know yet shown as they are. */
export function useOperationLabels() {
  const { t, te } = useI18n()
  const known = (key: string, raw: string) => (te(key) ? t(key) : raw)
  return {
    kindLabel: (kind: string) => known(`operations.${kind}`, kind),
    stateLabel: (state: string) => known(`activity.states.${state}`, state),
    stepLabel: (step: string) => known(`activity.stepNames.${step}`, step),
  }
}

/** The current time in ms, ticking every second while `fast` is true (something runs), else every 30 s. */
export function useNow(fast: Ref<boolean>): Ref<number> {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | null = null
  const every = computed(() => (fast.value ? 1000 : 30_000))
  watch(every, (ms) => {
    if (timer) clearInterval(timer)
    now.value = Date.now()
    timer = setInterval(() => { now.value = Date.now() }, ms)
  }, { immediate: true })
  onBeforeUnmount(() => {
    if (timer) clearInterval(timer)
  })
  return now
}
