/**
 * The one websocket (/api/ws): subscriptions by topic and key, re-established after a drop.
 *
 * Protocol (server: src/stackhub/api/ws.py): after `auth_ok`, requests carry an integer `id`
 * and a `type`; events of a subscription come back as {id, type: "event", event}.
 */
import { ref, type Ref } from 'vue'

export type Topic = 'operation' | 'instance' | 'metrics' | 'engine' | 'notification'

export interface WsEvent<T = Record<string, unknown>> {
  topic: Topic
  key: string
  kind: string
  data: T
}

type Handler = (event: WsEvent) => void
interface Sub {
  topic: Topic
  key?: string
  handler: Handler
}

export type SocketState = 'idle' | 'connecting' | 'open' | 'closed' | 'denied'

const IDLE_CLOSE_MS = 10_000
const MAX_BACKOFF_MS = 15_000

export interface SocketLike {
  readyState: number
  send(data: string): void
  close(code?: number): void
  onopen: ((ev: Event) => unknown) | null
  onclose: ((ev: CloseEvent) => unknown) | null
  onmessage: ((ev: MessageEvent) => unknown) | null
  onerror: ((ev: Event) => unknown) | null
}

export type SocketFactory = (url: string) => SocketLike

function defaultUrl(): string {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  return `${scheme}://${location.host}/api/ws`
}

export class LiveSocket {
  readonly state: Ref<SocketState> = ref('idle')
  private socket: SocketLike | null = null
  private subs = new Map<number, Sub>()
  private nextId = 1
  private ready = false
  private backoff = 500
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private idleTimer: ReturnType<typeof setTimeout> | null = null

  constructor(
    private readonly factory: SocketFactory = (url) => new WebSocket(url),
    private readonly url: () => string = defaultUrl,
    private readonly onDenied: () => void = () => {},
  ) {}

  /** Subscribe to events of a topic (optionally one key); returns the unsubscribe function. */
  subscribe(topic: Topic, key: string | undefined, handler: Handler): () => void {
    const id = this.nextId++
    this.subs.set(id, { topic, key, handler })
    if (this.idleTimer) {
      clearTimeout(this.idleTimer)
      this.idleTimer = null
    }
    if (this.ready) this.sendSubscribe(id)
    else this.connect()
    return () => this.unsubscribe(id)
  }

  /** How many subscriptions are active (for tests and the idle close). */
  get size(): number {
    return this.subs.size
  }

  private unsubscribe(id: number): void {
    if (!this.subs.delete(id)) return
    if (this.ready) this.send({ id: this.nextId++, type: 'unsubscribe', subscription: id })
    if (this.subs.size === 0 && !this.idleTimer) {
      // keep the connection a moment: page changes often resubscribe right away
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null
        if (this.subs.size === 0) this.close()
      }, IDLE_CLOSE_MS)
    }
  }

  /** Close the connection and stop reconnecting (sign-out). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = null
    const socket = this.socket
    this.socket = null
    this.ready = false
    if (socket) {
      socket.onclose = null
      socket.close(1000)
    }
    if (this.state.value !== 'denied') this.state.value = 'idle'
  }

  /** Forget every subscription and close (sign-out). */
  reset(): void {
    this.subs.clear()
    this.close()
    this.state.value = 'idle'
  }

  private connect(): void {
    if (this.socket || this.retryTimer || this.state.value === 'denied') return
    this.state.value = 'connecting'
    let socket: SocketLike
    try {
      socket = this.factory(this.url())
    } catch {
      this.scheduleRetry()
      return
    }
    this.socket = socket
    // the session cookie authenticates the upgrade; the server answers auth_ok
    socket.onopen = () => {}
    socket.onmessage = (ev) => this.receive(String(ev.data))
    socket.onerror = () => {}
    socket.onclose = (ev) => {
      this.socket = null
      this.ready = false
      if (ev.code === 4401 || ev.code === 4403) {
        this.state.value = 'denied'
        this.onDenied()
        return
      }
      this.state.value = 'closed'
      if (this.subs.size > 0) this.scheduleRetry()
    }
  }

  private scheduleRetry(): void {
    const delay = this.backoff
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.connect()
    }, delay)
  }

  private receive(text: string): void {
    let message: Record<string, unknown>
    try {
      message = JSON.parse(text) as Record<string, unknown>
    } catch {
      return
    }
    switch (message.type) {
      case 'auth_ok':
        this.ready = true
        this.backoff = 500
        this.state.value = 'open'
        for (const id of this.subs.keys()) this.sendSubscribe(id)
        break
      case 'auth_invalid':
        this.state.value = 'denied'
        break
      case 'event': {
        const sub = this.subs.get(Number(message.id))
        if (sub) sub.handler(message.event as WsEvent)
        break
      }
      default:
        break
    }
  }

  private sendSubscribe(id: number): void {
    const sub = this.subs.get(id)
    if (!sub) return
    const request: Record<string, unknown> = { id, type: 'subscribe', topic: sub.topic }
    if (sub.key) request.key = sub.key
    this.send(request)
  }

  private send(message: Record<string, unknown>): void {
    if (this.socket && this.socket.readyState === 1) this.socket.send(JSON.stringify(message))
  }
}

/** The console's one connection. */
export const live = new LiveSocket()
