import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { nextTick } from 'vue'
import { i18n } from '@/i18n'
import { api } from '@/api/client'
import { live } from '@/api/ws'
import EngineBanner from '@/components/engine-banner.vue'

type Handler = (event: { topic: string, key: string | null, kind: string, data: Record<string, unknown> }) => void

function health(engine: boolean, error: string | null) {
  return vi.spyOn(api, 'GET').mockResolvedValue({
    data: { status: 'ok', engine, version: '0.1.0', engine_error: error, engine_since: error ? '2026-12-02T20:00:00Z' : null },
    response: new Response(),
  } as never)
}

function capture(): { push: Handler } {
  const box: { push: Handler } = { push: () => undefined }
  vi.spyOn(live, 'subscribe').mockImplementation((_topic, _key, handler) => {
    box.push = handler as unknown as Handler
    return () => undefined
  })
  return box
}

afterEach(() => {
  vi.restoreAllMocks()
  i18n.global.locale.value = 'en'
})

describe('engine banner', () => {
  it('shows while the engine is down and hides when the server pushes that it is back', async () => {
    health(false, 'the Docker engine is not reachable')
    const socket = capture()
    const banner = mount(EngineBanner, { global: { plugins: [i18n] } })
    await flushPromises()
    expect(banner.text()).toContain('The Docker engine is not reachable')
    expect(banner.text()).toContain('App statuses are unknown')
    socket.push({ topic: 'engine', key: null, kind: 'up', data: { engine: true, error: null, since: null } })
    await nextTick()
    expect(banner.find('[data-test="engine-banner"]').exists()).toBe(false)
    socket.push({ topic: 'engine', key: null, kind: 'down', data: { engine: false, error: 'socket gone', since: null } })
    await nextTick()
    expect(banner.text()).toContain('socket gone')
  })

  it('says nothing while the engine answers, and speaks Chinese', async () => {
    health(true, null)
    capture()
    const quiet = mount(EngineBanner, { global: { plugins: [i18n] } })
    await flushPromises()
    expect(quiet.find('[data-test="engine-banner"]').exists()).toBe(false)
    vi.restoreAllMocks()
    i18n.global.setLocaleMessage('zh-CN', (await import('@/i18n/locales/zh-CN.json')).default)
    i18n.global.locale.value = 'zh-CN'
    health(false, 'engine down')
    capture()
    const banner = mount(EngineBanner, { global: { plugins: [i18n] } })
    await flushPromises()
    expect(banner.text()).toContain('无法连接 Docker 引擎')
  })
})
