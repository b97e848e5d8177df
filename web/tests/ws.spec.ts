import { describe, expect, it, vi } from 'vitest'
import { LiveSocket, type SocketLike } from '@/api/ws'

class FakeSocket implements SocketLike {
  readyState = 0
  sent: Record<string, unknown>[] = []
  onopen: ((ev: Event) => unknown) | null = null
  onclose: ((ev: CloseEvent) => unknown) | null = null
  onmessage: ((ev: MessageEvent) => unknown) | null = null
  onerror: ((ev: Event) => unknown) | null = null
  send(data: string) { this.sent.push(JSON.parse(data)) }
  close() { this.readyState = 3 }
  open() {
    this.readyState = 1
    this.onopen?.(new Event('open'))
    this.receive({ type: 'auth_ok' })
  }
  receive(message: unknown) { this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent) }
  drop(code = 1006) {
    this.readyState = 3
    this.onclose?.({ code } as CloseEvent)
  }
}

function setup() {
  const sockets: FakeSocket[] = []
  const denied = vi.fn()
  const live = new LiveSocket(() => {
    const s = new FakeSocket()
    sockets.push(s)
    return s
  }, () => 'ws://test/api/ws', denied)
  return { live, sockets, denied }
}

describe('LiveSocket', () => {
  it('connects on the first subscription and subscribes after auth_ok', () => {
    const { live, sockets } = setup()
    const got: unknown[] = []
    live.subscribe('operation', 'blog', (e) => got.push(e.data))
    expect(sockets).toHaveLength(1)
    sockets[0]!.open()
    expect(live.state.value).toBe('open')
    expect(sockets[0]!.sent).toEqual([{ id: 1, type: 'subscribe', topic: 'operation', key: 'blog' }])
    sockets[0]!.receive({ id: 1, type: 'event', event: { topic: 'operation', key: 'blog', kind: 'step', data: { step: 'pull' } } })
    sockets[0]!.receive({ id: 99, type: 'event', event: { topic: 'operation', key: 'x', kind: 'step', data: {} } })
    expect(got).toEqual([{ step: 'pull' }])
  })

  it('unsubscribes by id and shares one connection', () => {
    const { live, sockets } = setup()
    const stopA = live.subscribe('metrics', undefined, () => {})
    live.subscribe('instance', undefined, () => {})
    sockets[0]!.open()
    stopA()
    expect(sockets).toHaveLength(1)
    expect(sockets[0]!.sent.at(-1)).toEqual({ id: 3, type: 'unsubscribe', subscription: 1 })
    expect(live.size).toBe(1)
  })

  it('reconnects after a drop and subscribes again', () => {
    vi.useFakeTimers()
    const { live, sockets } = setup()
    live.subscribe('metrics', undefined, () => {})
    sockets[0]!.open()
    sockets[0]!.drop()
    expect(live.state.value).toBe('closed')
    vi.advanceTimersByTime(600)
    expect(sockets).toHaveLength(2)
    sockets[1]!.open()
    expect(sockets[1]!.sent).toEqual([{ id: 1, type: 'subscribe', topic: 'metrics' }])
    vi.useRealTimers()
  })

  it('stops on an authentication close and reports it', () => {
    vi.useFakeTimers()
    const { live, sockets, denied } = setup()
    live.subscribe('metrics', undefined, () => {})
    sockets[0]!.drop(4401)
    vi.advanceTimersByTime(20_000)
    expect(sockets).toHaveLength(1)
    expect(live.state.value).toBe('denied')
    expect(denied).toHaveBeenCalled()
    live.reset()
    expect(live.state.value).toBe('idle')
    vi.useRealTimers()
  })
})
