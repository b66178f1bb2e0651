import { Buffer } from 'node:buffer'
import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { type Connection, PauseReason } from '../transport/connection.js'
import { closeCodeError, closeReasonError, closeTimeError, controlPayloadError, sendDataError, topicLimitError } from '../errors.js'
import { MessageIterator, type MessagesOptions } from './iterator.js'
import {
  checkSend, iteratorActiveError, type MessagePipeline, type MessageValidationError, type Outcome, type Validate, type WebSocketMessage
} from './messages.js'
import { MAX_CLOSE_REASON, isValidWireCode } from '../protocol/close.js'
import { CloseCode, MAX_CONTROL_PAYLOAD, Opcode } from '../protocol/constants.js'
import { ProtocolError } from '../protocol/errors.js'
import type { PreparedMessage } from '../protocol/permessage-deflate.js'
import { ReadyState } from '../protocol/session.js'
import { toPayload, type SendOptions, type WebSocketData } from './payload.js'
import type { Subscribed, SubscribeOptions } from './position.js'
import { type PresenceMember, presenceTopic, type Tracked } from './presence.js'

/**
 * Events of a WebSocket, with their arguments. `Message`: what `message`
 * carries, a Buffer unless the route parses JSON (`messages: 'json'`).
 */
export interface WebSocketEvents<Message = Buffer> {
  /**
   * A whole message: `data` holds its payload, UTF-8 text when `isBinary` is
   * false; on a `messages: 'json'` route, the parsed and validated value.
   */
  message: [data: Message, isBinary: boolean]
  /**
   * With `invalidMessages: 'emit'`: a message refused by a JSON route (not
   * JSON, failing `schema.message`, or binary), dropped; the connection stays open.
   */
  invalid: [error: MessageValidationError]
  /** A ping from the peer; the pong has already been sent (RFC 6455 §5.5.2). */
  ping: [data: Buffer]
  /** A pong from the peer, in answer to `ping()` or unsolicited (RFC 6455 §5.5.3); `data` its payload, at most 125 bytes. */
  pong: [data: Buffer]
  /** The backlog that made `send()` return false has been written. */
  drain: []
  /**
   * The TCP connection is closed. `code` and `reason` are the peer's close
   * frame's; 1005 when it had no code, 1006 when no close frame came (RFC 6455 §7.1.5).
   */
  close: [code: number, reason: string]
  /** The connection failed; `error.code` says why and `error.closeCode` what was sent. Never thrown when nothing listens. */
  error: [error: ProtocolError]
}

/**
 * `socket.stats`: what went through one connection so far. Messages are
 * whole messages (a fragmented one counts once; a publish counts once per
 * socket); bytes are frames with their headers as on the wire (compressed
 * when permessage-deflate compressed them), close and control frames included.
 */
export interface WebSocketStats {
  /** Messages received from the peer. */
  messagesIn: number
  /** Messages queued for the peer by `send()`, `publish()` and `broadcast()`. */
  messagesOut: number
  /** Bytes read from the transport. */
  bytesIn: number
  /** Bytes queued for the transport. */
  bytesOut: number
}

/**
 * A per-message hook (`onMessage`, plugin or route option): runs after
 * parsing and validation, before the `message` listeners or the iterator.
 * It may change `message.data`, return (or resolve to) `false` to drop the
 * message, or close the socket. A throw or a rejection fails the connection
 * with 1011 and is logged once, as a listener's. While an async hook runs,
 * later messages wait (in order) and reading from the peer pauses.
 */
export type MessageHook = (message: WebSocketMessage<unknown>, socket: WebSocket<unknown>, request: FastifyRequest) =>
  void | boolean | Promise<void | boolean>

/**
 * What a socket needs of the app that holds it: the set of open sockets, the
 * topic table, the diagnostics channels and the deadlines of `closeAt()`
 * (lib/registry.ts implements it).
 * Not part of the public API: the plugin creates sockets, applications don't.
 */
export interface SocketOwner {
  /** The 101 is written: `socket` joins the open set. */
  opened (socket: WebSocket): void
  /** The transport closed; `initiator`: who sent the first close frame, null when none was. */
  closed (socket: WebSocket, code: number, reason: string, initiator: 'server' | 'client' | null): void
  /** The connection failed (RFC 6455 §7.1.7). */
  failed (socket: WebSocket, error: ProtocolError): void
  /** Adds `socket` to `topic`'s subscribers; false when it already was one. Throws FST_WS_INVALID_TOPIC. */
  subscribe (socket: WebSocket, topic: string): boolean
  /** Removes `socket` from `topic`'s subscribers; false when it was not one. */
  unsubscribe (socket: WebSocket, topic: string): boolean
  /** After `subscribe()` (`subscribed`: what it returned): the replay from `options.since` on a history topic. */
  resume (socket: WebSocket, topic: string, subscribed: boolean, options: SubscribeOptions): Promise<Subscribed>
  /** Publishes to `topic` on every instance, `from` excluded; how many sockets of this instance took it. */
  publish (topic: string, data: WebSocketData, options: SendOptions | undefined, from: WebSocket | undefined): number
  /** `socket` holds member `id` in `topic` (presence). */
  track (socket: WebSocket, topic: string, id: string, info: unknown): Promise<Tracked>
  /** `socket` no longer holds a member in `topic`; false when it held none. */
  untrack (socket: WebSocket, topic: string): boolean
  /** `socket` subscribes to `topic`'s join and leave events: the members now. */
  subscribePresence (socket: WebSocket, topic: string): Promise<PresenceMember[]>
  /**
   * Sets `socket`'s `closeAt()` deadline, in ms since the epoch, replacing
   * its previous one; null removes it. At the deadline the owner calls
   * `socket.expire()`; a socket's deadline goes when `closed()` is called.
   */
  closeAt (socket: WebSocket, at: number | null): void
}

/** The flags of a WebSocket, one bit each. */
const SocketFlag = {
  /** `send()` returned false: 'drain' is emitted once the backlog is under `highWaterMark`. */
  NeedDrain: 1,
  /** An async step of the pipeline is running: later messages wait behind it. */
  Busy: 2,
  /** A refused message failed the connection: what follows it is not delivered. */
  Refused: 4
} as const

/**
 * The server side of one WebSocket connection, given to a `ws: true` route's
 * handler. Messages that arrive before a `message` listener is attached (after
 * an `await` in the handler, say) are queued and reading pauses until one is.
 * `Message`: what `message` carries (from the route's `schema.message`);
 * `Send`: what `sendJSON()` takes (from its `schema.send`).
 */
export class WebSocket<Message = Buffer, Send = unknown> extends EventEmitter<WebSocketEvents<Message>> implements AsyncIterable<WebSocketMessage<Message>> {
  /** `readyState` 0: the opening handshake is under way (WHATWG WebSocket `CONNECTING`). */
  static readonly CONNECTING = ReadyState.CONNECTING
  /** `readyState` 1: open, messages flow both ways. */
  static readonly OPEN = ReadyState.OPEN
  /** `readyState` 2: a close frame has been sent or received (RFC 6455 §7.1.3), the closing handshake is under way. */
  static readonly CLOSING = ReadyState.CLOSING
  /** `readyState` 3: the connection is closed (RFC 6455 §7.1.4). */
  static readonly CLOSED = ReadyState.CLOSED

  /** The subprotocol the server chose (RFC 6455 §1.9), '' when none. */
  readonly protocol: string
  /** The extensions in effect, as sent in Sec-WebSocket-Extensions; '' when none. */
  readonly extensions: string
  /** The URL pattern of the route that took the handshake, such as `/chat/:room`. */
  readonly route: string
  /** @internal The handshake request's `request.id`. */
  readonly requestId: string
  /** @internal When the 101 was written, in ms since the epoch. */
  readonly openedAt = Date.now()
  /** @internal The handshake request's logger (`request.log`). */
  readonly log: FastifyBaseLogger
  private readonly owner: SocketOwner
  /** The topics this socket is subscribed to; null when none (an idle socket holds no Set). */
  private subscriptions: Set<string> | null = null
  private connection!: Connection
  /**
   * Messages waiting for a consumer, as [data, isBinary, processed] (whether
   * the route's pipeline has run on it); null when none.
   */
  private queue: Array<[unknown, boolean, boolean]> | null = null
  /** Bits of SocketFlag: one number instead of three booleans, for the memory of an idle socket. */
  private flags = 0
  /** Parse, validate, hooks (lib/messages.ts); null when the route has none of them. */
  private pipeline: MessagePipeline<WebSocket<unknown>> | null = null
  /** The route's `schema.send`, compiled; null when none or `validateSend` is false. */
  private sendValidator: Validate | null = null
  /** The active `for await` iterator, which takes the messages instead of the listeners. */
  private iterator: MessageIterator<Message> | null = null
  /** The close frame `closeAt()` sends at its deadline, as [code, reason's bytes]; null when none is set. */
  private expiry: [number, Buffer] | null = null

  /**
   * @internal Created by the plugin once the 101 is written, for the
   * handshake `request` (not kept); `owner` holds the app's open sockets and topics.
   */
  constructor (protocol: string, extensions: string, request: FastifyRequest, owner: SocketOwner) {
    // A listener's rejected promise goes to [EventEmitter.captureRejectionSymbol], not to the process.
    super({ captureRejections: true })
    this.protocol = protocol
    this.extensions = extensions
    this.route = request.routeOptions.url ?? ''
    this.requestId = request.id
    this.log = request.log
    this.owner = owner
    // 'newListener' is EventEmitter's own event, outside WebSocketEvents.
    const emitter: EventEmitter = this
    emitter.on('newListener', onNewListener)
  }

  /** @internal Binds the connection, once, right after construction. */
  attach (connection: Connection): void {
    this.connection = connection
    this.owner.opened(this.held)
  }

  /** This socket as the registry and the topic table hold it, whatever its messages carry. */
  private get held (): WebSocket {
    return this as unknown as WebSocket
  }

  /** @internal Sets the route's message pipeline and `schema.send` validator, before any message. */
  usePipeline (pipeline: MessagePipeline<WebSocket<unknown>> | null, sendValidator: Validate | null): void {
    this.pipeline = pipeline
    this.sendValidator = sendValidator
  }

  /** @internal Feeds bytes that arrived with the handshake. */
  receive (chunk: Buffer): void {
    this.connection.receive(chunk)
  }

  /** 0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED, as in the WHATWG WebSocket. */
  get readyState (): ReadyState {
    return this.connection.session.readyState
  }

  /** Messages and bytes each way so far, a snapshot. */
  get stats (): WebSocketStats {
    const connection = this.connection
    return {
      messagesIn: connection.messagesIn,
      messagesOut: connection.messagesOut,
      bytesIn: connection.bytesIn,
      bytesOut: connection.bytesOut
    }
  }

  /** Bytes queued by `send()`, `ping()` and the protocol that the kernel has not taken yet. */
  get bufferedAmount (): number {
    return this.connection.bufferedAmount
  }

  /**
   * Sends one message: a string as text, a Buffer, ArrayBuffer or view as
   * binary. The bytes are not copied: do not change them after the call.
   * Returns false when the backlog is over `highWaterMark` (wait for `drain`)
   * or the socket is not OPEN (the message is dropped). Past
   * `maxBackpressure` bytes of backlog the connection closes with 1008.
   */
  send (data: WebSocketData, options?: SendOptions): boolean {
    const opcode = typeof data === 'string' ? Opcode.Text : Opcode.Binary
    return this.deliver(opcode, toPayload(data), options?.compress) && this.writable()
  }

  /**
   * Sends `value` as a text message of JSON (`JSON.stringify`). On a route
   * with `schema.send` (and `validateSend` not false) the value is checked
   * first: one that fails throws a SendValidationError (FST_WS_INVALID_SEND)
   * and nothing is sent. Throws FST_WS_INVALID_DATA when `value` has no JSON
   * form (undefined, a function). Returns as `send()` does.
   */
  sendJSON (value: Send, options?: SendOptions): boolean {
    if (this.sendValidator !== null) checkSend(this.sendValidator, value)
    const text: string | undefined = JSON.stringify(value)
    if (text === undefined) throw sendDataError()
    return this.send(text, options)
  }

  /**
   * @internal Queues a message already turned into bytes; true when it was
   * queued (the socket is OPEN and under `maxBackpressure`). `prepared`:
   * the message of a fan-out, framed once for many sockets, whose
   * compression sockets with the same settings share.
   */
  deliver (opcode: number, payload: Buffer, compress: boolean | undefined, prepared?: PreparedMessage): boolean {
    const session = this.connection.session
    if (session.readyState !== ReadyState.OPEN) return false
    const deflate = session.deflate
    const compressed = deflate !== null && (compress ?? payload.length >= deflate.threshold)
    return this.connection.send(opcode, payload, compressed, prepared)
  }

  /** The topics this socket is subscribed to, read-only (subscribe and unsubscribe change it). */
  get topics (): ReadonlySet<string> {
    return this.subscriptions ?? NO_TOPICS
  }

  /**
   * Subscribes this socket to `topic` (exact match, no wildcards): it will
   * receive every message published to it, on this instance or, through the
   * broker, on any other. Returns false when it already was subscribed or is
   * no longer OPEN. Throws FST_WS_INVALID_TOPIC unless `topic` is a string of
   * at most 1024 bytes of UTF-8, FST_WS_TOO_MANY_TOPICS when the socket holds
   * `maxTopics` topics already. A socket leaves all its topics when it closes.
   *
   * With `options` (a topic with history, docs/recovery.md): resolves with
   * whether the messages after `options.since` could all be replayed and
   * the topic's position (Subscribed). The replayed messages, then the live
   * ones, are queued on the socket right after the promise's reactions have
   * run: what the app sends then (synchronously after `await`) goes before
   * them. Rejects with FST_WS_HISTORY_UNAVAILABLE when the history cannot be
   * read (the socket is then not subscribed).
   */
  subscribe (topic: string): boolean
  subscribe (topic: string, options: SubscribeOptions): Promise<Subscribed>
  subscribe (topic: string, options?: SubscribeOptions): boolean | Promise<Subscribed> {
    if (options !== undefined) return this.owner.resume(this.held, topic, this.subscribe(topic), options)
    if (this.connection.session.readyState !== ReadyState.OPEN) return false
    const max = this.connection.limits.maxTopics
    if (this.subscriptions !== null && this.subscriptions.size >= max && !this.subscriptions.has(topic)) throw topicLimitError(max)
    if (!this.owner.subscribe(this.held, topic)) return false
    ;(this.subscriptions ??= new Set()).add(topic)
    return true
  }

  /** Unsubscribes this socket from `topic`; false when it was not subscribed. */
  unsubscribe (topic: string): boolean {
    if (this.subscriptions === null || !this.subscriptions.delete(topic)) return false
    if (this.subscriptions.size === 0) this.subscriptions = null
    return this.owner.unsubscribe(this.held, topic)
  }

  /**
   * Makes this socket present in `topic` as member `id` (1 to 256 bytes of
   * UTF-8) with `info` (any JSON value, at most the `presence` option's
   * `maxInfoBytes` as JSON), on every instance, until it closes or
   * `untrack(topic)`; docs/presence-and-control.md. Sockets with one id are
   * one member: it joins with the first (on any instance), with that
   * socket's info, and leaves with the last. A socket holds one
   * member per topic (another id replaces it). Needs no subscription.
   * Resolves with whether the member joined; `{ joined: false }` on a socket
   * that is no longer OPEN. Throws FST_WS_NO_PRESENCE without the `presence`
   * option, FST_WS_PRESENCE_ID or FST_WS_PRESENCE_INFO for a bad id or info;
   * rejects with FST_WS_PRESENCE_FULL past `maxMembers`,
   * FST_WS_PRESENCE_UNAVAILABLE when the store (Redis) cannot be reached:
   * the socket is then not present.
   */
  track (topic: string, id: string, info?: unknown): Promise<Tracked> {
    if (this.connection.session.readyState !== ReadyState.OPEN) return Promise.resolve({ joined: false })
    return this.owner.track(this.held, topic, id, info)
  }

  /** This socket is no longer present in `topic` (see track()); false when it was not. */
  untrack (topic: string): boolean {
    return this.owner.untrack(this.held, topic)
  }

  /**
   * Subscribes this socket to the join and leave events of `topic`, on every
   * instance (docs/presence-and-control.md): resolves with the members
   * present now; then each change after them comes, once and in order, as
   * the `presence` option's `encode(event)` makes it (by default the JSON of
   * `{ type: 'join' | 'leave', topic, id, info }`), queued right after the
   * promise's reactions (what the app sends synchronously after `await`
   * goes first). `unsubscribePresence(topic)` stops them; so does closing.
   * Throws FST_WS_NO_PRESENCE without the `presence` option; rejects with
   * FST_WS_PRESENCE_UNAVAILABLE when the store cannot be read.
   */
  subscribePresence (topic: string): Promise<PresenceMember[]> {
    return this.owner.subscribePresence(this.held, topic)
  }

  /** Stops the join and leave events of `topic` (see subscribePresence()); false when they were not subscribed. */
  unsubscribePresence (topic: string): boolean {
    return this.unsubscribe(presenceTopic(topic))
  }

  /** Whether this socket is subscribed to `topic`. */
  isSubscribed (topic: string): boolean {
    return this.subscriptions !== null && this.subscriptions.has(topic)
  }

  /**
   * Publishes a message to every subscriber of `topic` but this socket, on
   * every instance (as `ws.publish` in uWebSockets.js and Bun); this socket
   * need not be subscribed. A string goes as text, bytes as binary, framed
   * once for all. Returns how many sockets of this instance took it. Throws
   * FST_WS_INVALID_TOPIC as `subscribe()` does. On a topic with history the
   * message reaches this socket too, once it has a position (0 is returned):
   * see `app.websocket.publishStored()`.
   */
  publish (topic: string, data: WebSocketData, options?: SendOptions): number {
    return this.owner.publish(topic, data, options, this.held)
  }

  /** Sends a ping with up to 125 bytes of application data (RFC 6455 §5.5.2). */
  ping (data?: WebSocketData): boolean {
    return this.control(Opcode.Ping, data)
  }

  /** Sends an unsolicited pong, a one-way heartbeat (RFC 6455 §5.5.3). */
  pong (data?: WebSocketData): boolean {
    return this.control(Opcode.Pong, data)
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2). `code`: 1000-1003,
   * 1007-1014 or 3000-4999; omitted, the close frame has no body (the peer
   * sees 1005). `reason`: at most 123 bytes of UTF-8, only with a code.
   * Throws FST_WS_INVALID_CLOSE_CODE or FST_WS_INVALID_CLOSE_REASON. The TCP
   * connection is destroyed if the peer has not closed it `closeTimeout` ms later.
   */
  close (code?: number, reason?: string): void {
    if (code !== undefined) {
      this.connection.close(code, closeReason(code, reason))
      return
    }
    if (reason !== undefined && reason !== '') throw closeReasonError('a close reason needs a close code')
    this.connection.close(CloseCode.NoStatusReceived)
  }

  /**
   * Closes the socket at `time` (a Date, or ms since the epoch as
   * `Date.now()` gives), as `close(code, reason)` would then: for a session
   * or a token that expires. `code` defaults to 1008 (Policy Violation) and
   * `reason` to 'expired', checked now as `close()` checks them. A time
   * already past closes the socket within a few ms. A later call replaces
   * the time, code and reason; `closeAt(null)` cancels. Does nothing on a
   * socket that is no longer OPEN. The server keeps every socket's time on
   * one timer (not one per socket), and forgets it when the socket closes.
   * Throws FST_WS_INVALID_CLOSE_TIME for a time that is neither (an Invalid
   * Date, NaN, Infinity), FST_WS_INVALID_CLOSE_CODE or FST_WS_INVALID_CLOSE_REASON.
   */
  closeAt (time: Date | number | null, code: number = CloseCode.PolicyViolation, reason = 'expired'): void {
    if (time === null) {
      this.expiry = null
      this.owner.closeAt(this.held, null)
      return
    }
    const at = time instanceof Date ? time.getTime() : time
    if (typeof at !== 'number' || !Number.isFinite(at)) throw closeTimeError(time)
    const body = closeReason(code, reason)
    if (this.connection.session.readyState !== ReadyState.OPEN) return
    this.expiry = [code, body]
    this.owner.closeAt(this.held, at)
  }

  /** @internal The deadline of `closeAt()` has come: starts the closing handshake with its code and reason. */
  expire (): void {
    const expiry = this.expiry
    if (expiry === null) return
    this.expiry = null
    this.connection.close(expiry[0], expiry[1])
  }

  /** Destroys the TCP connection at once, with no closing handshake. */
  terminate (): void {
    this.connection.terminate()
  }

  /**
   * @internal One heartbeat tick: terminates the connection if the pong to
   * the previous ping has not come back (and returns true), else sends a ping.
   */
  heartbeat (): boolean {
    return this.connection.heartbeat()
  }

  /**
   * @internal Resolves when the TCP connection has closed, whatever the
   * 'close' listeners do; at most `closeTimeout` ms after `close()`, when
   * the connection is destroyed.
   */
  whenClosed (): Promise<void> {
    const socket = this.connection.socket
    if (socket.closed) return Promise.resolve()
    return new Promise((resolve) => socket.once('close', () => resolve()))
  }

  /** @internal Fails the connection: 1011 for anything but a ProtocolError, logged once. */
  fail (error: unknown): void {
    if (!this.connection.session.fail(error)) this.log.error({ err: error }, 'WebSocket handler failed after the connection closed')
  }

  // ConnectionListener, structurally: the published .d.ts strips these @internal
  // members, so an `implements` clause there would break consumers' type checks.

  /** @internal */
  onMessage (data: Buffer, isBinary: boolean): void {
    if (this.queue === null && (this.flags & SocketFlag.Busy) === 0 && this.ready()) {
      if (this.pipeline !== null) this.process(data, isBinary)
      else if (this.iterator !== null) this.iterator.push({ data: data as Message, isBinary })
      else this.emit('message', data as Message, isBinary)
      return
    }
    if (this.queue === null) this.queue = []
    this.queue.push([data, isBinary, false])
    this.connection.pauseReading(PauseReason.NoListener)
  }

  /** @internal */
  onPing (data: Buffer): void {
    this.emit('ping', data)
  }

  /** @internal */
  onPong (data: Buffer): void {
    this.emit('pong', data)
  }

  /** @internal */
  onError (error: ProtocolError): void {
    if (error.closeCode === CloseCode.InternalError) {
      this.log.error({ err: error.cause ?? error }, 'WebSocket closed with 1011 after an error')
    } else {
      this.log.info({ code: error.code, closeCode: error.closeCode }, `WebSocket failed: ${error.message}`)
    }
    this.owner.failed(this.held, error)
    if (this.listenerCount('error') > 0) this.guard(() => this.emit('error', error))
  }

  /** @internal */
  onDrain (): void {
    if ((this.flags & SocketFlag.NeedDrain) === 0 || !this.writable()) return
    this.flags &= ~SocketFlag.NeedDrain
    this.guard(() => this.emit('drain'))
  }

  /** @internal */
  onClose (code: number, reason: string): void {
    this.leaveTopics()
    this.owner.closed(this.held, code, reason, this.connection.session.initiator)
    this.guard(() => this.emit('close', code, reason))
    if (this.iterator !== null) this.flushQueue()
  }

  /**
   * @internal Delivers queued messages to the consumer come since (a
   * listener, or a waiting iterator); resumes reading once none is left, and
   * ends the iterator once the connection is closed and none is left.
   */
  flushQueue (): void {
    const queue = this.queue
    if (queue !== null) {
      let taken = 0
      while (taken < queue.length && (this.flags & SocketFlag.Busy) === 0 && this.ready()) {
        const [data, isBinary, processed] = queue[taken++]
        if (processed || this.pipeline === null) this.hand(data, isBinary)
        else this.process(data as Buffer, isBinary)
      }
      queue.splice(0, taken)
      if (queue.length > 0) return
      this.queue = null
    }
    if ((this.flags & SocketFlag.Busy) !== 0) return
    this.connection.resumeReading(PauseReason.NoListener)
    const iterator = this.iterator
    if (iterator !== null && this.connection.session.readyState === ReadyState.CLOSED) {
      this.iterator = null
      iterator.end()
    }
  }

  /**
   * Async iteration: `for await (const { data, isBinary } of socket)` yields
   * each message in order (as the `message` event would carry it) and ends
   * when the connection closes; see `messages()`.
   */
  [Symbol.asyncIterator] (): AsyncIterableIterator<WebSocketMessage<Message>> {
    return this.messages()
  }

  /**
   * An async iterator of this socket's messages, in order, ending when the
   * connection closes. While it is active it takes the messages instead of
   * the `message` listeners. Backpressure: while the loop body runs, the
   * messages of at most one read wait and reading from the peer pauses.
   * Leaving the loop early closes the connection with 1000 (1011 when the
   * throw that left it rejects the route's handler) unless
   * `options.closeOnReturn` is false. Throws FST_WS_ITERATOR_ACTIVE when
   * another iterator of this socket is active.
   */
  messages (options?: MessagesOptions): AsyncIterableIterator<WebSocketMessage<Message>> {
    if (this.iterator !== null) throw iteratorActiveError()
    const iterator = new MessageIterator<Message>(this, options?.closeOnReturn ?? true)
    this.iterator = iterator
    return iterator
  }

  /** @internal The iterator was left early (`return()`). */
  releaseIterator (iterator: MessageIterator<unknown>, close: boolean): void {
    if (this.iterator !== iterator) return
    this.iterator = null
    // Deferred past the microtasks: a throw that left the loop rejects the handler first, and fails with 1011.
    if (close) setImmediate(closeNormally, this.held)
    else if (this.listenerCount('message') > 0) this.flushQueue()
  }

  /** @internal A JSON route refused a message: fail the connection, or emit `invalid` (`invalidMessages`). */
  refuse (error: MessageValidationError): void {
    if (this.pipeline?.emitInvalid === true) {
      this.guard(() => this.emit('invalid', error))
      return
    }
    this.flags |= SocketFlag.Refused
    this.connection.session.fail(error)
  }

  /** Whether a consumer takes the next message now: the iterator when one is active, else the `message` listeners. */
  private ready (): boolean {
    return this.iterator === null ? this.listenerCount('message') > 0 : this.iterator.waiting
  }

  /** Runs the pipeline on a message, then hands it over; waits (reading paused) while an async step runs. */
  private process (data: Buffer, isBinary: boolean): void {
    if ((this.flags & SocketFlag.Refused) !== 0) return
    let outcome: Outcome | Promise<Outcome>
    try {
      outcome = (this.pipeline as MessagePipeline<WebSocket<unknown>>).run(this as WebSocket<unknown>, data, isBinary)
    } catch (error) {
      this.listenerFailed(error)
      return
    }
    if (!(outcome instanceof Promise)) {
      if (outcome !== null) this.hand(outcome.data, outcome.isBinary)
      return
    }
    this.flags |= SocketFlag.Busy
    this.connection.pauseReading(PauseReason.NoListener)
    outcome.then((message) => {
      this.flags &= ~SocketFlag.Busy
      if (message !== null) {
        if (this.queue === null && this.ready()) this.hand(message.data, message.isBinary)
        else (this.queue ??= []).unshift([message.data, message.isBinary, true])
      }
      this.flushQueue()
    }, (error: unknown) => {
      this.flags &= ~SocketFlag.Busy
      this.listenerFailed(error)
      this.flushQueue()
    })
  }

  /** Gives a message ready for its consumer (through the pipeline, or on a route without one) to the iterator or the listeners. */
  private hand (data: unknown, isBinary: boolean): void {
    if ((this.flags & SocketFlag.Refused) !== 0) return
    if (this.iterator !== null) this.iterator.push({ data: data as Message, isBinary })
    else this.guard(() => this.emit('message', data as Message, isBinary))
  }

  private leaveTopics (): void {
    const subscriptions = this.subscriptions
    if (subscriptions === null) return
    this.subscriptions = null
    for (const topic of subscriptions) this.owner.unsubscribe(this.held, topic)
  }

  private control (opcode: number, data: WebSocketData | undefined): boolean {
    const payload = data === undefined ? EMPTY : toPayload(data)
    if (payload.length > MAX_CONTROL_PAYLOAD) throw controlPayloadError()
    if (this.connection.session.readyState !== ReadyState.OPEN) return false
    this.connection.session.sendControl(opcode, payload)
    return this.writable()
  }

  private writable (): boolean {
    if (this.connection.bufferedAmount <= this.connection.limits.highWaterMark) return true
    this.flags |= SocketFlag.NeedDrain
    return false
  }

  /**
   * @internal A promise returned by a listener rejected (EventEmitter's
   * `captureRejections`): handled as a listener that threw.
   */
  override [EventEmitter.captureRejectionSymbol] (error: Error, ..._eventAndArgs: unknown[]): void {
    this.listenerFailed(error)
  }

  /** Runs application code called from an event: a throw fails this connection (1011), nothing else. */
  private guard (emit: () => void): void {
    try {
      emit()
    } catch (error) {
      this.listenerFailed(error)
    }
  }

  /** Fails this connection with 1011; once it has failed or closed there is nothing to close, so the error is logged here. */
  private listenerFailed (error: unknown): void {
    if (!this.connection.session.fail(error)) this.log.error({ err: error }, 'WebSocket event listener threw')
  }
}

const EMPTY = Buffer.alloc(0)
const NO_TOPICS: ReadonlySet<string> = new Set()

/**
 * The reason of a close frame with `code`, as bytes. Throws
 * FST_WS_INVALID_CLOSE_CODE unless an application may send `code` (RFC 6455
 * §7.4.1, §7.4.2), FST_WS_INVALID_CLOSE_REASON for a reason over 123 bytes
 * of UTF-8 (§5.5: a control frame's payload is at most 125 bytes).
 */
function closeReason (code: number, reason: string | undefined): Buffer {
  if (!Number.isInteger(code) || !isValidWireCode(code)) throw closeCodeError(code)
  const body = Buffer.from(reason ?? '', 'utf8')
  if (body.length > MAX_CLOSE_REASON) throw closeReasonError('a close reason is at most 123 bytes of UTF-8')
  return body
}

function onNewListener (this: WebSocket, event: string | symbol): void {
  if (event === 'message') process.nextTick(flushQueue, this)
}

function flushQueue (socket: WebSocket): void {
  socket.flushQueue()
}

function closeNormally (socket: WebSocket): void {
  if (socket.readyState === ReadyState.OPEN) socket.close(CloseCode.NormalClosure)
}
