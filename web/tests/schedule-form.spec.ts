import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { defineComponent, reactive } from 'vue'
import { i18n } from '@/i18n'
import { scheduleDefaults, useScheduleForm } from '@/composables/schedule-form'

describe('useScheduleForm', () => {
  it('offers the choices in the console language and checks the time and the retention', () => {
    let state: ReturnType<typeof useScheduleForm> | null = null
    const form = reactive(scheduleDefaults())
    mount(defineComponent({ setup() { state = useScheduleForm(form); return () => null } }), { global: { plugins: [i18n] } })
    const s = state!
    expect(s.everyOptions.value.map((o) => o.label)).toEqual(['Hourly', 'Daily', 'Weekly'])
    expect(s.dayOptions.value).toHaveLength(7)
    expect([s.timeOk.value, s.keepsNothing.value]).toEqual([true, false])
    form.at = '24:00'
    Object.assign(form, { keep_daily: 0, keep_weekly: 0, keep_monthly: 0 })
    expect([s.timeOk.value, s.keepsNothing.value]).toEqual([false, true])
    form.keep_last = 3
    expect(s.keepsNothing.value).toBe(false)
  })
})
