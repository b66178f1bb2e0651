import { publishClose, publishError } from './diagnostics.js'
import type { ProtocolError } from './protocol/errors.js'
import { noPresenceError } from './errors.js'
import type { PresenceTable } from './pubsub/presence.js'
import type { TopicTable } from './pubsub/topics.js'
import type { SendOptions, WebSocketData } from './socket/payload.js'
import type { Subscribed, SubscribeOptions } from './socket/position.js'
import type { PresenceMember, Tracked } from './socket/presence.js'
import type { SocketOwner, WebSocket, WebSocketStats } from './socket/websocket.js'
import { ExpiryQueue } from './socket/expiry.js'

/**
 * `app.websocket.stats()`: gauges and counters of one app's WebSockets, on
 * this instance. Counters are totals over every connection since the plugin
 * was registered, the closed ones included.
 */
export interface WebSocketAppStats extends WebSocketStats {
  /** Open WebSockets. */
  open: number
  /** Open WebSockets per route URL pattern (such as `/chat/:room`); a route with none is left out. */
  routes: Record<string, number>
}

/**
 * The open WebSockets of one app and its topic table: sockets join when
 * their 101 is written and leave when their transport closes. Keeps the
 * per-route gauges and the counters of closed sockets, so that
 * `stats()` costs nothing per message, and publishes the sockets' close and
 * error diagnostics. Logs each connection's end through its request's
 * logger at info level: the peer's close `code` and `reason`, the
 * `initiator` of the closing handshake and the `duration` in ms. Holds
 * the sockets' `closeAt()` deadlines on one timer.
 */
export class SocketRegistry implements SocketOwner {
  readonly sockets = new Set<WebSocket>()
  readonly topics: TopicTable
  /** Presence (the `presence` option); null without it. */
  private readonly presence: PresenceTable | null
  private readonly perRoute = new Map<string, number>()
  private readonly closedTotals: WebSocketStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  /** @internal The deadlines of `closeAt()`; a socket leaves when it closes. */
  readonly expiries = new ExpiryQueue<WebSocket>(expire)

  /** Whether to log each connection's end (not when the app sets Fastify's `disableRequestLogging: true`). */
  private readonly logClose: boolean

  constructor (topics: TopicTable, presence: PresenceTable | null, logClose: boolean) {
    this.topics = topics
    this.presence = presence
    this.logClose = logClose
  }

  opened (socket: WebSocket): void {
    this.sockets.add(socket)
    this.perRoute.set(socket.route, (this.perRoute.get(socket.route) ?? 0) + 1)
  }

  closed (socket: WebSocket, code: number, reason: string, initiator: 'server' | 'client' | null): void {
    this.expiries.delete(socket)
    if (this.sockets.delete(socket)) {
      const left = (this.perRoute.get(socket.route) ?? 1) - 1
      if (left === 0) this.perRoute.delete(socket.route)
      else this.perRoute.set(socket.route, left)
      addStats(this.closedTotals, socket.stats)
      this.presence?.closed(socket)
    }
    // What Fastify's "request completed" line is to a request, at its level: a WebSocket's hooks stop at preHandler.
    if (this.logClose) socket.log.info({ code, reason, initiator, duration: Date.now() - socket.openedAt }, 'WebSocket closed')
    publishClose(socket, code, reason, initiator)
  }

  failed (socket: WebSocket, error: ProtocolError): void {
    publishError(socket, error)
  }

  subscribe (socket: WebSocket, topic: string): boolean {
    return this.topics.subscribe(socket, topic)
  }

  unsubscribe (socket: WebSocket, topic: string): boolean {
    return this.topics.unsubscribe(socket, topic)
  }

  resume (socket: WebSocket, topic: string, subscribed: boolean, options: SubscribeOptions): Promise<Subscribed> {
    if (options.presence !== true) return this.topics.resume(socket, topic, subscribed, options)
    return this.resumeWithPresence(socket, topic, subscribed, options)
  }

  /** A resume that also subscribes to the topic's presence: the replay and the events wait for both reads (SubscribeOptions.presence). */
  private async resumeWithPresence (socket: WebSocket, topic: string, subscribed: boolean, options: SubscribeOptions): Promise<Subscribed> {
    let presence: PresenceTable
    try {
      presence = this.withPresence()
    } catch (err) {
      if (subscribed) socket.unsubscribe(topic)
      throw err
    }
    if (!subscribed) return { ...await this.topics.resume(socket, topic, subscribed, options), members: [] }
    let open = (): void => {}
    const gate = new Promise<void>((resolve) => { open = resolve })
    try {
      const [resumed, members] = await Promise.all([this.topics.resume(socket, topic, subscribed, options, gate), presence.subscribe(socket, topic, gate)])
      return { ...resumed, members }
    } finally {
      open()
    }
  }

  publish (topic: string, data: WebSocketData, options: SendOptions | undefined, from: WebSocket | undefined): number {
    return this.topics.publish(topic, data, options, from)
  }

  track (socket: WebSocket, topic: string, id: string, info: unknown): Promise<Tracked> {
    return this.withPresence().track(socket, topic, id, info)
  }

  untrack (socket: WebSocket, topic: string): boolean {
    return this.withPresence().untrack(socket, topic)
  }

  subscribePresence (socket: WebSocket, topic: string): Promise<PresenceMember[]> {
    return this.withPresence().subscribe(socket, topic)
  }

  /** The presence table; throws FST_WS_NO_PRESENCE without the `presence` option. */
  private withPresence (): PresenceTable {
    if (this.presence === null) throw noPresenceError()
    return this.presence
  }

  closeAt (socket: WebSocket, at: number | null): void {
    if (at === null) this.expiries.delete(socket)
    else this.expiries.set(socket, at)
  }

  /** The app's gauges and counters now; walks the open sockets once. */
  stats (): WebSocketAppStats {
    const totals = { ...this.closedTotals }
    for (const socket of this.sockets) addStats(totals, socket.stats)
    return { open: this.sockets.size, routes: Object.fromEntries(this.perRoute), ...totals }
  }
}

function expire (socket: WebSocket): void {
  socket.expire()
}

function addStats (to: WebSocketStats, from: WebSocketStats): void {
  to.messagesIn += from.messagesIn
  to.messagesOut += from.messagesOut
  to.bytesIn += from.bytesIn
  to.bytesOut += from.bytesOut
}
