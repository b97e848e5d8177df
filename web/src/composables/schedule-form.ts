/** The schedule and retention form shared by an instance's schedule, the default and the system backup's. */
import { computed, ref, shallowRef } from 'vue'
import { useI18n } from 'vue-i18n'
import type { Schemas } from '@/api/client'
import { asApiError, type ApiError } from '@/api/errors'

type ScheduleRead = Schemas['ScheduleRead'] | Schemas['DefaultScheduleRead'] | Schemas['SystemScheduleRead']
export type ScheduleFields = Pick<ScheduleRead, 'at' | 'weekday' | 'keep_last' | 'keep_daily' | 'keep_weekly'
  | 'keep_monthly' | 'enabled'> & { every: string }

/** A new schedule's fields: daily at 03:00, keeping 7 daily, 4 weekly and 6 monthly backups. */
export function scheduleDefaults(): ScheduleFields {
  return { every: 'daily', at: '03:00', weekday: 0, keep_last: 0, keep_daily: 7, keep_weekly: 4, keep_monthly: 6,
    enabled: true }
}

/** The form's fields of a stored schedule (to `Object.assign` onto the form). */
export function scheduleFields(read: ScheduleRead): ScheduleFields {
  return { every: read.every, at: read.at, weekday: read.weekday, keep_last: read.keep_last,
    keep_daily: read.keep_daily, keep_weekly: read.keep_weekly, keep_monthly: read.keep_monthly, enabled: read.enabled }
}

/** The select options in the console's language, and the checks that keep Save disabled. */
export function useScheduleForm(form: ScheduleFields) {
  const { t } = useI18n()
  return {
    everyOptions: computed(() => ['hourly', 'daily', 'weekly'].map((v) => ({ value: v, label: t(`backups.every.${v}`) }))),
    dayOptions: computed(() => [0, 1, 2, 3, 4, 5, 6].map((d) => ({ value: d, label: t(`backups.days.${d}`) }))),
    keepsNothing: computed(() => !(form.keep_last || form.keep_daily || form.keep_weekly || form.keep_monthly)),
    timeOk: computed(() => /^([01][0-9]|2[0-3]):[0-5][0-9]$/.test(form.at)),
  }
}

/**
 * Load, Save and Remove of a schedule card: `fetchOrNone(get)` is null when there is no schedule (404),
 * `act(kind, work)` shows `kind` as busy; any other failure becomes `error`.
 */
export function useScheduleActions() {
  const error = shallowRef<ApiError | null>(null)
  const busy = ref('')
  async function fetchOrNone<T>(get: () => Promise<T>): Promise<T | null> {
    try {
      return await get()
    } catch (err) {
      const failure = asApiError(err)
      if (failure.status !== 404) error.value = failure
      return null
    }
  }
  async function act(kind: string, work: () => Promise<void>) {
    busy.value = kind
    error.value = null
    try {
      await work()
    } catch (err) {
      error.value = asApiError(err)
    } finally {
      busy.value = ''
    }
  }
  return { error, busy, fetchOrNone, act }
}
