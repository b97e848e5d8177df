import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { nextTick } from 'vue'
import { i18n } from '@/i18n'
import StatusDot from '@/components/status-dot.vue'
import ParamField from '@/components/param-field.vue'
import InstallProgress from '@/components/install-progress.vue'
import RemoveDialog from '@/components/remove-dialog.vue'
import Sparkline from '@/components/sparkline.vue'
import type { Parameter } from '@/utils/params'

const global = { plugins: [i18n] }

describe('status-dot', () => {
  it('shows the translated status', async () => {
    const dot = mount(StatusDot, { props: { status: 'running', label: true }, global })
    expect(dot.text()).toBe('Running')
    expect(dot.attributes('data-status')).toBe('running')
    i18n.global.setLocaleMessage('zh-CN', (await import('@/i18n/locales/zh-CN.json')).default)
    i18n.global.locale.value = 'zh-CN'
    await nextTick()
    expect(dot.text()).toBe('运行中')
    i18n.global.locale.value = 'en'
  })
  it('shows unknown engine states as they are', () => {
    expect(mount(StatusDot, { props: { status: 'weird', label: true }, global }).text()).toBe('weird')
  })
})

describe('param-field', () => {
  const greeting = { name: 'GREETING', type: 'string', required: true, regex: '^[a-z]+$',
    regex_error: { en: 'Lowercase letters only' }, label: { en: 'Greeting' }, help: { en: 'Said on the page' },
    encoding: 'alnum', length: 32, protocol: 'tcp', init_only: false } as Parameter

  it('shows the help text, then the validation message', async () => {
    const field = mount(ParamField, { props: { param: greeting, value: 'hello', showErrors: false }, global })
    expect(field.text()).toContain('Greeting')
    expect(field.text()).toContain('Said on the page')
    await field.setProps({ value: 'Hello!' })
    expect(field.text()).toContain('Lowercase letters only')
  })

  it('masks secrets and says they are generated', () => {
    const secret = { ...greeting, name: 'KEY', type: 'secret', regex: null, required: false } as Parameter
    const field = mount(ParamField, { props: { param: secret, value: '', showErrors: true }, global })
    const input = field.find('input')
    expect(input.attributes('type')).toBe('password')
    expect(input.attributes('placeholder')).toBe('Generated automatically')
  })

  it('emits text for the typed inputs', async () => {
    const flag = { ...greeting, name: 'FLAG', type: 'boolean', regex: null } as Parameter
    const field = mount(ParamField, { props: { param: flag, value: 'false', showErrors: false }, global })
    await field.find('.n-switch').trigger('click')
    expect(field.emitted('update:value')?.[0]).toEqual(['true'])
  })
})

describe('install-progress', () => {
  it('shows images present locally as done once the pull step is over', () => {
    const view = mount(InstallProgress, { props: { step: 'start', progress: 60, state: 'running',
      images: [{ image: 'stackhub-test/web:1', percent: 0, status: '' }] }, global })
    expect(view.find('.pct').text()).toBe('100%')
    expect(view.findAll('.steps li.done')).toHaveLength(1)
    expect(view.find('.steps li.active').text()).toContain('Start containers')
  })
  it('shows live pull percentages while pulling', () => {
    const view = mount(InstallProgress, { props: { step: 'pull', progress: 20, state: 'running',
      images: [{ image: 'a:1', percent: 42.4, status: 'Downloading' }] }, global })
    expect(view.find('.pct').text()).toBe('42%')
  })
  it('says whom it waits for while waiting, in the user\'s language', async () => {
    const waiting = [{ service: 'db', reason: 'health' }, { service: 'web', reason: 'restarting' }]
    const view = mount(InstallProgress, { props: { step: 'wait', progress: 80, state: 'running',
      images: [], waiting }, global })
    expect(view.find('.steps li.active').text()).toContain('Wait until ready')
    expect(view.find('[data-test="install-waiting"]').text())
      .toBe('Waiting for: db to become healthy · web (restarting)')
    i18n.global.setLocaleMessage('zh-CN', (await import('@/i18n/locales/zh-CN.json')).default)
    i18n.global.locale.value = 'zh-CN'
    await nextTick()
    expect(view.find('[data-test="install-waiting"]').text()).toBe('正在等待：db 通过健康检查 · web（restarting）')
    i18n.global.locale.value = 'en'
    await view.setProps({ step: 'verify' })
    expect(view.find('[data-test="install-waiting"]').exists()).toBe(false)
  })
})

describe('remove-dialog', () => {
  it('keeps data by default and asks for the name before purging', async () => {
    const dialog = mount(RemoveDialog, { props: { show: false, name: 'blog' }, global, attachTo: document.body })
    await dialog.setProps({ show: true })
    await nextTick()
    const body = document.body
    const confirm = () => body.querySelector<HTMLButtonElement>('[data-test="remove-confirm"]')!
    expect(body.querySelector<HTMLInputElement>('[data-test="remove-keep"] input')!.checked).toBe(true)
    expect(confirm().disabled).toBe(false)
    confirm().click()
    expect(dialog.emitted('confirm')?.[0]).toEqual([false])
    body.querySelector<HTMLInputElement>('[data-test="remove-purge"] input')!.click()
    await nextTick()
    expect(confirm().disabled).toBe(true)
    const name = body.querySelector<HTMLInputElement>('[data-test="remove-confirm-name"]')!
    name.value = 'blog'
    name.dispatchEvent(new Event('input'))
    await nextTick()
    expect(confirm().disabled).toBe(false)
    confirm().click()
    expect(dialog.emitted('confirm')?.[1]).toEqual([true])
    dialog.unmount()
  })
})

describe('sparkline', () => {
  it('draws one polyline per series, a single sample as a flat line', () => {
    const chart = mount(Sparkline, { props: { series: [[5], [1, 2, 3]], label: 'cpu', width: 100, height: 10 } })
    const lines = chart.findAll('polyline')
    expect(lines).toHaveLength(2)
    expect(lines[0]!.attributes('points')!.split(' ')).toHaveLength(2)
    expect(chart.attributes('aria-label')).toBe('cpu')
  })
})
