import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { nextTick } from 'vue'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import { i18n } from '@/i18n'
import OperationList from '@/components/operation-list.vue'
import OperationSteps from '@/components/operation-steps.vue'
import { elapsed, firstLine, stateTag, stepColor, timeline, type Operation } from '@/utils/operations'

const T0 = Date.parse('2026-01-01T12:00:00Z')
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString()

function op(over: Partial<Operation>): Operation {
  return { id: 'op1', instance: 'blog', kind: 'install', state: 'succeeded', step: 'verify', progress: 100,
    error: null, started_at: at(0), finished_at: at(10), target: null, duration: 10, steps: [], ...over }
}

const installed = op({ id: 'ok', steps: [
  { name: 'pull', started_at: at(0), finished_at: at(6), duration: 6 },
  { name: 'start', started_at: at(6), finished_at: at(8), duration: 2 },
  { name: 'wait', started_at: at(8), finished_at: at(9.5), duration: 1.5 },
  { name: 'verify', started_at: at(9.5), finished_at: at(10), duration: 0.5 },
] })
const failed = op({ id: 'bad', instance: 'shop', state: 'failed', step: 'pull', progress: 5, duration: 2, finished_at: at(2),
  error: 'could not pull image 127.0.0.1:5000/nope:9\nmanifest unknown',
  steps: [{ name: 'pull', started_at: at(0), finished_at: at(2), duration: 2 }] })
const running = op({ id: 'run', kind: 'restart', state: 'running', step: 'restart', progress: 10, finished_at: null,
  duration: null, steps: [{ name: 'restart', started_at: at(1), finished_at: null, duration: null }] })
const future = op({ id: 'new', kind: 'defragment', steps: [{ name: 'snapshot', started_at: at(0), finished_at: at(10), duration: 10 }] })

async function chinese() {
  i18n.global.setLocaleMessage('zh-CN', (await import('@/i18n/locales/zh-CN.json')).default)
  i18n.global.locale.value = 'zh-CN'
  await nextTick()
}

afterEach(() => {
  i18n.global.locale.value = 'en'
})

describe('operation timings', () => {
  it('places each step on the operation\'s timeline', () => {
    const line = timeline(installed)
    expect(line.total).toBe(10)
    expect(line.steps.map((s) => [s.name, s.left, s.width])).toEqual([
      ['pull', 0, 0.6], ['start', 0.6, 0.2], ['wait', 0.8, 0.15], ['verify', 0.95, 0.05]])
    expect(line.steps.every((s) => !s.running && s.ended === null)).toBe(true)
  })
  it('grows a running step with the clock', () => {
    const line = timeline(running, T0 + 5000)
    expect(line.total).toBe(5)
    expect(line.steps[0]).toMatchObject({ name: 'restart', offset: 1, duration: 4, running: true, left: 0.2, width: 0.8 })
    expect(elapsed(running, T0 + 5000)).toBe(5)
    expect(elapsed(installed)).toBe(10)
  })
  it('marks the step an operation failed in', () => {
    expect(timeline(failed).steps[0]!.ended).toBe('failed')
    expect(stepColor(0, 'failed')).toBe('#d03050')
    expect(stepColor(0)).not.toBe(stepColor(1))
  })
  it('copes with no steps at all', () => {
    expect(timeline(op({ steps: undefined }))).toEqual({ total: 10, steps: [] })
  })
  it('colours states and cuts errors to their first line', () => {
    expect(['running', 'succeeded', 'failed', 'interrupted', 'odd'].map(stateTag))
      .toEqual(['info', 'success', 'error', 'warning', 'default'])
    expect(firstLine(failed.error)).toBe('could not pull image 127.0.0.1:5000/nope:9')
    expect(firstLine(null)).toBe('')
  })
})

describe('operation-steps', () => {
  const global = { plugins: [i18n] }

  it('lists every step with its duration and the whole error', () => {
    const view = mount(OperationSteps, { props: { op: installed, now: T0 }, global })
    const steps = view.findAll('[data-test="operation-step"]')
    expect(steps.map((s) => s.attributes('data-step'))).toEqual(['pull', 'start', 'wait', 'verify'])
    expect(steps[0]!.text()).toContain('Download images')
    expect(view.findAll('[data-test="step-duration"]').map((d) => d.text())).toEqual(['6s', '2s', '1.5s', '500ms'])
    expect(steps[1]!.find('.fill').attributes('style')).toContain('left: 60%; width: 20%')
    expect(view.find('[data-test="operation-error"]').exists()).toBe(false)

    const bad = mount(OperationSteps, { props: { op: failed, now: T0 }, global })
    expect(bad.find('[data-test="operation-error"] pre').text()).toBe(failed.error)
    expect(bad.find('[data-test="operation-step"]').text()).toContain('failed here')
  })
  it('shows steps it does not know by their name, in Chinese too', async () => {
    const view = mount(OperationSteps, { props: { op: future, now: T0 }, global })
    expect(view.find('[data-test="operation-step"]').text()).toContain('snapshot')
    await chinese()
    const zh = mount(OperationSteps, { props: { op: installed, now: T0 }, global })
    expect(zh.find('[data-test="operation-step"]').text()).toContain('下载镜像')
    expect(zh.text()).toContain('操作 ID')
  })
})

describe('operation-list', () => {
  let router: ReturnType<typeof createRouter>
  beforeEach(async () => {
    router = createRouter({ history: createMemoryHistory(), routes: [
      { path: '/', component: { template: '<div />' } },
      { path: '/apps/:name', name: 'instance', component: { template: '<div />' } },
    ] })
    await router.push('/')
  })
  type ListProps = { items: Operation[]; loading?: boolean; hideInstance?: boolean; exists?: (name: string) => boolean }
  const mountList = (props: ListProps) =>
    mount(OperationList, { props, global: { plugins: [i18n, router] }, attachTo: document.body })

  it('shows kind, state, steps, duration and error per row; a row opens its steps', async () => {
    const list = mountList({ items: [running, installed, failed, future], exists: (name: string) => name !== 'shop' })
    await flushPromises()
    const rows = list.findAll('tr[data-test="operation"]')
    expect(rows.map((r) => r.attributes('data-state'))).toEqual(['running', 'succeeded', 'failed', 'succeeded'])
    expect(rows[1]!.text()).toContain('Install')
    expect(rows[1]!.text()).toContain('Succeeded')
    expect(rows[1]!.find('[data-test="operation-duration"]').text()).toBe('10s')
    expect(rows[0]!.text()).toContain('In progress')
    expect(rows[0]!.find('[data-test="operation-duration"]').text()).toMatch(/so far$/)
    expect(rows[3]!.text()).toContain('defragment') // a kind from a newer server: its raw name
    expect(rows[2]!.text()).toContain('could not pull image')
    expect(rows[2]!.text()).not.toContain('manifest unknown') // the first line only
    // an instance that still exists links to its page; a removed one does not
    expect(rows[1]!.find('a').attributes('href')).toBe('/apps/blog')
    expect(rows[2]!.find('a').exists()).toBe(false)
    expect(rows[1]!.findAll('[data-test="operation-bar"] .segment')).toHaveLength(4)

    await rows[2]!.find('td:nth-child(3)').trigger('click')
    await flushPromises()
    const details = list.find('[data-test="operation-steps"]')
    expect(details.attributes('data-operation')).toBe('bad')
    expect(details.find('[data-test="operation-error"]').text()).toContain('manifest unknown')
    list.unmount()
  })

  it('shows StackHub\'s own jobs by their subject, with no app link and not as removed', async () => {
    const system = op({ id: 'sys', instance: '@system', kind: 'system-backup', step: 'check', steps: [
      { name: 'database', started_at: at(0), finished_at: at(1), duration: 1 },
      { name: 'snapshot', started_at: at(1), finished_at: at(9), duration: 8 },
      { name: 'check', started_at: at(9), finished_at: at(10), duration: 1 },
    ] })
    const list = mountList({ items: [system], exists: () => false })
    await flushPromises()
    const row = list.find('tr[data-test="operation"]')
    expect(row.text()).toContain('System backup')
    expect(row.find('a').exists()).toBe(false)
    expect(row.find('.subject').text()).toBe('@system')
    expect(row.find('.gone').exists()).toBe(false)
    await row.find('td:nth-child(3)').trigger('click')
    await flushPromises()
    expect(list.find('[data-test="operation-steps"]').text()).toContain("Copying StackHub's database")
    list.unmount()
  })

  it('speaks Chinese', async () => {
    await chinese()
    const list = mountList({ items: [installed] })
    await flushPromises()
    const row = list.find('tr[data-test="operation"]')
    expect(row.text()).toContain('安装')
    expect(row.text()).toContain('成功')
    expect(list.find('thead').text()).toContain('耗时')
    list.unmount()
  })

  it('turns into cards on a phone', async () => {
    const real = window.matchMedia
    window.matchMedia = ((query: string) => ({ ...real.call(window, query), matches: query.includes('max-width: 640px'),
      addEventListener: () => {}, removeEventListener: () => {} })) as typeof window.matchMedia
    try {
      const all = mountList({ items: [installed, failed] })
      await flushPromises()
      expect(all.find('table').exists()).toBe(false)
      const first = all.find('[data-test="operation"]')
      expect(first.find('a').attributes('href')).toBe('/apps/blog')
      expect(first.find('[data-test="operation-state"]').text()).toBe('Succeeded')
      expect(first.find('[data-test="operation-duration"]').text()).toBe('10s')
      expect(first.text()).toMatch(/Install.*ago/s)
      all.unmount()

      const list = mountList({ items: [installed, failed], hideInstance: true })
      await flushPromises()
      const cards = list.findAll('[data-test="operation"]')
      expect(cards).toHaveLength(2)
      expect(cards[0]!.find('a').exists()).toBe(false) // its own page: no instance link
      expect(list.find('[data-test="operation-steps"]').exists()).toBe(false)
      await cards[1]!.find('[data-test="operation-toggle"]').trigger('click')
      expect(list.find('[data-test="operation-steps"]').attributes('data-operation')).toBe('bad')
      expect(cards[1]!.find('[data-test="operation-toggle"]').text()).toBe('Hide steps')
      list.unmount()
    } finally {
      window.matchMedia = real
    }
  })

  it('shows the empty slot when there is nothing, and no empty text while loading', async () => {
    const list = mountList({ items: [], loading: false })
    await flushPromises()
    expect(list.find('[data-test="empty"]').text()).toContain('No operations yet')
    await list.setProps({ loading: true })
    expect(list.find('[data-test="empty"]').exists()).toBe(false)
    list.unmount()
  })
})

describe('activity view', () => {
  const subscribers: ((e: { kind: string }) => void)[] = []
  const calls: Record<string, unknown>[] = []
  let page: { items: Operation[]; total: number; limit: number; offset: number }

  beforeEach(() => {
    vi.resetModules()
    calls.length = 0
    subscribers.length = 0
    page = { items: [installed, failed], total: 2, limit: 20, offset: 0 }
    vi.doMock('@/api/client', async (original) => ({
      ...(await original<typeof import('@/api/client')>()),
      api: {
        GET: vi.fn(async (path: string, init?: { params?: { query?: Record<string, unknown> } }) => {
          if (path === '/api/instances') return { data: [{ name: 'blog' }], response: new Response('[]') }
          calls.push(init?.params?.query ?? {})
          return { data: page, response: new Response('{}') }
        }),
      },
    }))
    vi.doMock('@/api/ws', () => ({
      live: { subscribe: (_topic: string, _key: unknown, handler: (e: { kind: string }) => void) => {
        subscribers.push(handler)
        return () => {}
      } },
    }))
    setActivePinia(createPinia())
  })
  afterEach(() => {
    vi.doUnmock('@/api/client')
    vi.doUnmock('@/api/ws')
    vi.useRealTimers()
  })

  async function open(url: string) {
    const { default: ActivityView } = await import('@/views/activity/activity-view.vue')
    const { i18n: fresh } = await import('@/i18n')
    const router = createRouter({ history: createMemoryHistory(), routes: [
      { path: '/activity', name: 'activity', component: ActivityView },
      { path: '/apps/:name', name: 'instance', component: { template: '<div />' } },
    ] })
    await router.push(url)
    const view = mount(ActivityView, { global: { plugins: [fresh, router, createPinia()] }, attachTo: document.body })
    await flushPromises()
    return { view, router }
  }

  it('asks for the filters and the page in the address, and shows the total', async () => {
    const { view, router } = await open('/activity?instance=blog&kind=install&state=failed&page=2&size=50')
    expect(calls[0]).toEqual({ instance: 'blog', kind: 'install', state: 'failed', limit: 50, offset: 50 })
    expect(view.find('[data-test="activity-total"]').text()).toBe('2 in all')
    expect(view.findAll('tr[data-test="operation"]')).toHaveLength(2)
    await router.replace('/activity?state=nonsense&kind=Bad!')
    await flushPromises()
    expect(calls.at(-1)).toEqual({ instance: null, kind: null, state: null, limit: 20, offset: 0 })
    view.unmount()
  })

  it('reloads when an operation starts a step or finishes, not on pull progress', async () => {
    vi.useFakeTimers()
    const { view } = await open('/activity')
    const before = calls.length
    subscribers.forEach((fn) => fn({ kind: 'pull' }))
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls.length).toBe(before)
    page = { ...page, items: [running, installed, failed], total: 3 }
    subscribers.forEach((fn) => { fn({ kind: 'step' }); fn({ kind: 'finished' }) })
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls.length).toBe(before + 1) // throttled: one request for both
    expect(view.find('[data-test="activity-total"]').text()).toBe('3 in all')
    view.unmount()
  })

  it('says when nothing matches, with a way out', async () => {
    page = { items: [], total: 0, limit: 20, offset: 0 }
    const { view, router } = await open('/activity?state=interrupted')
    expect(view.find('[data-test="empty"]').text()).toContain('No operations match these filters')
    await view.find('[data-test="clear-filters"]').trigger('click')
    await flushPromises()
    expect(router.currentRoute.value.query).toEqual({})
    expect(view.find('[data-test="empty"]').text()).toContain('No operations yet')
    view.unmount()
  })
})
