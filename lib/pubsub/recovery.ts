/**
 * Topics with history on one instance (docs/recovery.md): each message
 * delivered in the order of its offset, a gap filled from the history
 * before what follows it, and sockets resumed from a position with no gap
 * and no duplicate.
 */
import { Buffer } from 'node:buffer'
import { inspect } from '../builtins.js'
import type { FastifyBaseLogger } from 'fastify'
import { historyUnavailableError, invalidOptionError } from '../errors.js'
import { CloseCode, Opcode } from '../protocol/constants.js'
import { toPayload, type WebSocketData } from '../socket/payload.js'
import { isPosition, parsePosition, type Position, type Subscribed } from '../socket/position.js'
import type { WebSocket } from '../socket/websocket.js'
import { broadcastPayload } from './broadcast.js'
import type { BrokerHistory, BrokerMessage, HistoryRead, HistorySettings } from './broker.js'

/** A topic's history, as the app's `history` option gives it. */
export interface TopicHistory extends HistorySettings {
  /**
   * What the subscribers receive for a message at `position`: run once per
   * message on each instance (its frame is then built once for all the
   * instance's subscribers), and once per replayed message for a resuming
   * socket. `data` is the message as published: a string for text, a Buffer
   * for binary; a string returned goes as text, bytes as binary. A throw is
   * logged (error) and the message is not delivered. Default: the message
   * as published.
   */
  encode?: (data: string | Buffer, position: Position) => WebSocketData
}

/**
 * The plugin's `history` option: the history of `topic` (TopicHistory), or
 * null for a topic without history. Called once per publish and when a
 * topic gains its first subscriber on an instance; give every instance the
 * same answers.
 */
export type HistoryOption = (topic: string) => TopicHistory | null

/** Messages a resume replays at most, by default (the `maxRecovery` option). */
export const DEFAULT_MAX_RECOVERY = 1000

/**
 * The close code of the sockets of a topic that lost messages its history
 * cannot give back (a gap, or a new epoch): 1012, so that their clients
 * reconnect and resume from their last position.
 */
export const GAP_CLOSE_CODE = CloseCode.ServiceRestart
const GAP_REASON = 'topic history gap: resume from your last position'

/** The largest `size` and `ttl` of a topic's history. */
const MAX_SIZE = 2 ** 31 - 1

/** A live message held for a socket whose resume is under way: encoded, with its position. */
interface Held {
  opcode: number
  payload: Buffer
  compress: boolean | undefined
  position: Position
}

/** A history topic with subscribers on this instance. */
interface Stream {
  readonly topic: string
  readonly settings: TopicHistory
  /** The topic's subscribers on this instance (the topic table's set), resuming ones included. */
  readonly sockets: Set<WebSocket>
  /** The position of the last message delivered here; null until known. */
  last: Position | null
  /** Messages that came while a read was under way or after a gap, by offset. */
  early: BrokerMessage[]
  /** A read of the history is under way (the first position, or a gap's fill): deliveries wait in `early`. */
  reading: boolean
  /** Resumes waiting for the first position; null once it is known (or could not be). */
  waiting: Array<() => void> | null
  /** Sockets being resumed, with the live messages held for them meanwhile. */
  readonly pending: Map<WebSocket, Held[]>
  /**
   * Resumed sockets whose replay went past `last` (the history was read
   * before this instance saw the latest messages on the broker), by the
   * offset their replay ended at: live messages up to it are not sent to them again.
   */
  readonly ahead: Map<WebSocket, number>
}

/** What a subscribe that changed nothing resolves with. */
export const NOT_SUBSCRIBED: Subscribed = Object.freeze({ subscribed: false, recovered: false, position: null })

/**
 * The history topics of one instance that have a subscriber here. The
 * broker delivers their messages with positions (every instance's,
 * this one's included); each topic delivers them in the order of their
 * offsets: a duplicate is dropped, a message past a gap waits while the
 * gap is read from the history. When the history cannot fill it (trimmed,
 * expired, another epoch, the broker down), the topic's sockets here are
 * closed with GAP_CLOSE_CODE.
 */
export class TopicHistories {
  private readonly streams = new Map<string, Stream>()
  private readonly option: HistoryOption
  private readonly store: BrokerHistory
  private readonly maxRecovery: number
  private readonly log: FastifyBaseLogger
  /** A publish failed and none succeeded since: the next failure is not logged. */
  private failing = false

  constructor (option: HistoryOption, store: BrokerHistory, maxRecovery: number, log: FastifyBaseLogger) {
    this.option = option
    this.store = store
    this.maxRecovery = maxRecovery
    this.log = log
  }

  /** The history of `topic`, null for none. Throws FST_WS_INVALID_OPTION when the option answers something else. */
  settings (topic: string): TopicHistory | null {
    const settings = this.option(topic)
    if (settings === null) return null
    checkSettings(settings, topic)
    return settings
  }

  /**
   * Publishes a message of a history topic through the broker, which
   * delivers it (here too) once it has a position. Resolves with it; rejects
   * as BrokerHistory.publish does.
   */
  publish (message: BrokerMessage, settings: TopicHistory): Promise<Position> {
    try {
      return Promise.resolve(this.store.publish(message, settings))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** As publish(), for a caller that does not wait: a failure is logged, once until a publish succeeds again. */
  publishLogged (message: BrokerMessage, settings: TopicHistory): void {
    this.publish(message, settings).then(() => { this.failing = false }, (err: unknown) => {
      if (this.failing) return
      this.failing = true
      this.log.error({ err, topic: message.topic }, 'a publish to a history topic failed: it reached no subscriber (further failures are not logged until one succeeds)')
    })
  }

  /**
   * `topic` has its first subscriber here (in `sockets`): once the broker's
   * subscription is in effect (`subscribed`), reads the topic's position, from
   * which its messages are delivered in order.
   */
  open (topic: string, settings: TopicHistory, sockets: Set<WebSocket>, subscribed: void | Promise<void>): void {
    const stream: Stream = { topic, settings, sockets, last: null, early: [], reading: true, waiting: [], pending: new Map(), ahead: new Map() }
    this.streams.set(topic, stream)
    after(subscribed, () => {
      if (this.streams.get(topic) !== stream) return
      after(this.store.read(topic, undefined, 0), (answer) => this.started(stream, answer.position), (err) => {
        this.log.error({ err, topic }, 'the position of a history topic could not be read: its first message will set it')
        this.started(stream, null)
      })
    })
  }

  /** `topic` has no subscriber here any more. */
  close (topic: string): void {
    this.streams.delete(topic)
  }

  /** The broker's subscription to `topic` is back (BrokerContext.resubscribed): what was published meanwhile is read from the history. */
  resubscribed (topic: string): void {
    const stream = this.streams.get(topic)
    if (stream === undefined || stream.reading || stream.last === null) return
    this.fill(stream, stream.last)
  }

  /** `socket` left `topic`: a resume under way for it ends. */
  leave (socket: WebSocket, topic: string): void {
    const stream = this.streams.get(topic)
    stream?.pending.delete(socket)
    stream?.ahead.delete(socket)
  }

  /** Delivers a message with a position to `sockets`, the subscribers of its topic here; how many took it now. */
  deliver (message: BrokerMessage, sockets: Set<WebSocket>): number {
    const stream = this.streams.get(message.topic)
    if (stream === undefined) {
      // A topic this instance keeps no history for (another instance does): as published.
      return broadcastPayload(sockets, message.isBinary ? Opcode.Binary : Opcode.Text, message.payload, message.compress)
    }
    if (stream.reading) {
      queue(stream, message)
      return 0
    }
    return this.next(stream, message)
  }

  /**
   * The replay from `since` (SubscribeOptions) for `socket`, just added to
   * `topic`'s subscribers: resolves with what it recovers; the replay and the
   * live messages held meanwhile are sent after the promise's reactions, or
   * after `gate`'s when given (a resume that waits for other reads).
   */
  resume (socket: WebSocket, topic: string, since: Position | string | undefined, gate?: Promise<unknown>): Promise<Subscribed> {
    const stream = this.streams.get(topic)
    if (stream === undefined) return Promise.resolve({ subscribed: true, recovered: false, position: null })
    const held: Held[] = []
    stream.pending.set(socket, held)
    const from = since === undefined ? undefined : (typeof since === 'string' ? parsePosition(since) : (isPosition(since) ? since : null)) ?? undefined
    const current = (): boolean => this.streams.get(topic) === stream && stream.pending.get(socket) === held
    return new Promise<Subscribed>((resolve, reject) => {
      const read = (): void => {
        if (!current()) return resolve(NOT_SUBSCRIBED)
        after(this.store.read(topic, from, this.maxRecovery), (answer) => {
          if (!current()) return resolve(NOT_SUBSCRIBED)
          const replay = from === undefined ? null : answer.messages
          resolve({ subscribed: true, recovered: replay !== null, position: answer.position })
          const flush = (): void => { setImmediate(() => this.resumed(stream, socket, held, answer, replay ?? [])) }
          if (gate === undefined) flush()
          else void gate.then(flush, flush)
        }, (err) => {
          if (current()) socket.unsubscribe(topic)
          reject((err as { code?: unknown } | null)?.code === 'FST_WS_HISTORY_UNAVAILABLE' ? err : historyUnavailableError(topic, err))
        })
      }
      if (stream.waiting === null) read()
      else stream.waiting.push(read)
    })
  }

  /** Sends a resumed socket its replay, then the live messages held for it past the replay. */
  private resumed (stream: Stream, socket: WebSocket, held: Held[], answer: HistoryRead, replay: BrokerMessage[]): void {
    if (stream.pending.get(socket) !== held) return
    stream.pending.delete(socket)
    for (const message of replay) {
      const encoded = this.encode(stream, message)
      if (encoded !== null) socket.deliver(encoded.opcode, encoded.payload, message.compress)
    }
    const { offset, epoch } = answer.position
    for (const message of held) {
      if (message.position.offset > offset || message.position.epoch !== epoch) socket.deliver(message.opcode, message.payload, message.compress)
    }
    const last = stream.last
    if (last === null || (last.epoch === epoch && last.offset < offset)) stream.ahead.set(socket, offset)
  }

  private started (stream: Stream, position: Position | null): void {
    if (this.streams.get(stream.topic) !== stream) return
    stream.last = position
    stream.reading = false
    const waiting = stream.waiting ?? []
    stream.waiting = null
    this.drain(stream)
    for (const read of waiting) read()
  }

  /** Delivers the next message of a stream that is not reading: in order, or after the gap before it is filled. */
  private next (stream: Stream, message: BrokerMessage): number {
    const position = message.position!
    const last = stream.last
    if (last !== null && position.epoch === last.epoch) {
      if (position.offset <= last.offset) return 0
      if (position.offset > last.offset + 1) {
        queue(stream, message)
        this.fill(stream, last)
        return 0
      }
    } else if (last !== null) {
      this.lost(stream, 'a new epoch: the history was lost')
    }
    stream.last = position
    return this.emit(stream, message)
  }

  /** Reads the messages after `last` from the history and delivers them, then those that waited. */
  private fill (stream: Stream, last: Position): void {
    stream.reading = true
    const done = (answer: HistoryRead | null, err?: unknown): void => {
      if (this.streams.get(stream.topic) !== stream) return
      stream.reading = false
      if (answer !== null && answer.messages !== null) {
        for (const message of answer.messages) {
          if (message.position!.offset > stream.last!.offset) {
            stream.last = message.position!
            this.emit(stream, message)
          }
        }
      } else {
        this.lost(stream, err === undefined ? 'a gap the history no longer holds' : 'a gap, and the history could not be read', err)
        stream.last = answer?.position ?? null
      }
      this.drain(stream)
    }
    after(this.store.read(stream.topic, last, this.maxRecovery), (answer) => done(answer), (err) => done(null, err))
  }

  private drain (stream: Stream): void {
    while (!stream.reading && stream.early.length > 0 && this.streams.get(stream.topic) === stream) {
      this.next(stream, stream.early.shift()!)
    }
  }

  /** Messages of the topic were lost for good: its sockets here are closed so that their clients resume. */
  private lost (stream: Stream, why: string, err?: unknown): void {
    this.log.warn({ err, topic: stream.topic, sockets: stream.sockets.size },
      `history topic: ${why}; its subscribers here are closed with ${GAP_CLOSE_CODE} to resume from their positions`)
    for (const socket of [...stream.sockets]) socket.close(GAP_CLOSE_CODE, GAP_REASON)
  }

  /** Sends a message to the stream's sockets, encoded once; held for those being resumed. */
  private emit (stream: Stream, message: BrokerMessage): number {
    const encoded = this.encode(stream, message)
    if (encoded === null) return 0
    const { opcode, payload } = encoded
    if (stream.pending.size === 0 && stream.ahead.size === 0) return broadcastPayload(stream.sockets, opcode, payload, message.compress)
    for (const held of stream.pending.values()) held.push({ opcode, payload, compress: message.compress, position: message.position! })
    const offset = message.position!.offset
    const sent = broadcastPayload(live(stream, offset), opcode, payload, message.compress)
    for (const [socket, replayed] of stream.ahead) if (replayed <= offset) stream.ahead.delete(socket)
    return sent
  }

  private encode (stream: Stream, message: BrokerMessage): { opcode: number, payload: Buffer } | null {
    const encode = stream.settings.encode
    if (encode === undefined) return { opcode: message.isBinary ? Opcode.Binary : Opcode.Text, payload: message.payload }
    try {
      const data = encode(message.isBinary ? message.payload : message.payload.toString('utf8'), message.position!)
      return { opcode: typeof data === 'string' ? Opcode.Text : Opcode.Binary, payload: toPayload(data) }
    } catch (err) {
      this.log.error({ err, topic: stream.topic }, 'the encode() of a history topic threw: the message is not delivered')
      return null
    }
  }
}

/** The stream's sockets that are not being resumed and whose replay did not already give them the message at `offset`. */
function * live (stream: Stream, offset: number): Generator<WebSocket> {
  for (const socket of stream.sockets) {
    if (!stream.pending.has(socket) && !((stream.ahead.get(socket) ?? -1) >= offset)) yield socket
  }
}

/** Adds a message to those waiting, by offset; a duplicate is dropped. */
function queue (stream: Stream, message: BrokerMessage): void {
  const early = stream.early
  const offset = message.position!.offset
  let at = early.length
  while (at > 0 && early[at - 1].position!.offset > offset) at--
  if (at > 0 && early[at - 1].position!.offset === offset && early[at - 1].position!.epoch === message.position!.epoch) return
  early.splice(at, 0, message)
}

/** Runs `then` with `value` now, or once it resolves; `fail` when it rejects or throws. */
function after<T> (value: T | Promise<T>, then: (value: T) => void, fail: (err: unknown) => void = rethrow): void {
  if (value instanceof Promise) value.then(then, fail)
  else then(value)
}

function rethrow (err: unknown): never {
  throw err
}

function checkSettings (settings: unknown, topic: string): asserts settings is TopicHistory {
  const path = `history(${inspect(topic, { maxStringLength: 40 })})`
  if (typeof settings !== 'object' || settings === null) {
    throw invalidOptionError(path, inspect(settings, { depth: 0 }), 'null or an object { size, ttl, encode? }', undefined)
  }
  const { size, ttl, encode } = settings as Record<string, unknown>
  if (!Number.isInteger(size) || (size as number) < 1 || (size as number) > MAX_SIZE) {
    throw invalidOptionError(`${path}.size`, inspect(size), `an integer from 1 to ${MAX_SIZE} (messages)`, undefined)
  }
  if (!Number.isInteger(ttl) || (ttl as number) < 1 || (ttl as number) > Number.MAX_SAFE_INTEGER) {
    throw invalidOptionError(`${path}.ttl`, inspect(ttl), `an integer from 1 to ${Number.MAX_SAFE_INTEGER} (milliseconds)`, undefined)
  }
  if (encode !== undefined && typeof encode !== 'function') {
    throw invalidOptionError(`${path}.encode`, inspect(encode, { depth: 0 }), 'a function (data, position) => string | Buffer', undefined)
  }
}
