import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { presenceFullError } from '../errors.js'
import type { FastifyBaseLogger } from 'fastify'
import type { Position } from '../socket/position.js'
import { type PresenceMember, presenceTopic } from '../socket/presence.js'

/** One published message as it travels between instances. */
export interface BrokerMessage {
  /** The topic, exact match (no wildcards). */
  topic: string
  /** The message's bytes: UTF-8 text when `isBinary` is false. Never copied by the plugin: do not change it. */
  payload: Buffer
  /** true for a binary message (opcode 0x2), false for text (opcode 0x1). */
  isBinary: boolean
  /** The publisher's `compress` option (see SendOptions); undefined leaves it to each socket's threshold. */
  compress: boolean | undefined
  /**
   * The message's position in its topic's history: set on every message of
   * a history topic that a broker delivers or reads back (see BrokerHistory),
   * absent on the others.
   */
  position?: Position
}

/** What the plugin hands a broker when it starts. */
export interface BrokerContext {
  /**
   * Delivers a message to this instance's subscribers of `message.topic`.
   * Call it once per message, in the order the other instance published
   * them; it never throws. Messages of a history topic (with a `position`)
   * are delivered through it on every instance, the publishing one included,
   * in the order of their offsets as far as the broker can: the plugin fills
   * a gap in the offsets from `history.read()` and drops a duplicate.
   */
  deliver (message: BrokerMessage): void
  /**
   * The broker's subscription to `topic` is in effect again after an outage
   * (or after it was put off while the broker was down): messages of the
   * topic may have been missed meanwhile. On a history topic the plugin then
   * reads what it missed from the history. Never throws.
   */
  resubscribed (topic: string): void
  /** The app's logger, for outages and reconnections (log them once, not per message). */
  log: FastifyBaseLogger
  /**
   * Runs a cluster request (BrokerCluster.request) on this instance's
   * sockets: how many sockets it counted or acted on. Never throws.
   */
  control (request: ClusterRequest): number
}

/**
 * Which sockets a cluster request acts on: every field given must match;
 * none given, every socket of the app.
 */
export interface SocketMatch {
  /** Sockets present in a topic under this presence id (`socket.track()`); with `topic`, in that topic only. */
  member?: string
  /** Sockets subscribed to this topic (with `member`: present in it). */
  topic?: string
}

/**
 * A request every instance runs on its own sockets (BrokerContext.control):
 * - `count`: the subscribers of `topic`;
 * - `disconnect`: closes the matching sockets with `code` and `reason`;
 * - `unsubscribe`: unsubscribes the matching sockets from `topic`.
 */
export type ClusterRequest = CountRequest | DisconnectRequest | UnsubscribeRequest

/** A ClusterRequest: count the subscribers of `topic`. */
export interface CountRequest {
  /** The request's kind. */
  action: 'count'
  /** The topic whose subscribers each instance counts. */
  topic: string
}

/** A ClusterRequest: close the matching sockets. */
export interface DisconnectRequest {
  /** The request's kind. */
  action: 'disconnect'
  /** Which sockets. */
  match: SocketMatch
  /** The close code (RFC 6455 §7.4): 1000-1003, 1007-1014 or 3000-4999. */
  code: number
  /** The close reason: at most 123 bytes of UTF-8. */
  reason: string
}

/** A ClusterRequest: unsubscribe the matching sockets from `topic`. */
export interface UnsubscribeRequest {
  /** The request's kind. */
  action: 'unsubscribe'
  /** Which sockets. */
  match: SocketMatch
  /** The topic they leave. */
  topic: string
}

/** What a cluster request resolves with. */
export interface ClusterReply {
  /** Instances that ran it and answered (this one included). */
  instances: number
  /** Sockets counted (`count`) or acted on, over those instances. */
  sockets: number
}

/** The cluster side of a broker (`Broker.cluster`): requests that every instance runs. */
export interface BrokerCluster {
  /**
   * Runs `request` on every instance (this one included, through
   * `context.control`) and resolves with the sum of their answers, once
   * every instance that received it answered or a timeout passed (the
   * broker's). Rejects (FST_WS_CLUSTER_UNAVAILABLE) when it could not be sent.
   */
  request (request: ClusterRequest): Promise<ClusterReply>
}

/** What `BrokerPresence.members()` answers. */
export interface PresenceSnapshot {
  /** The members present now, one entry per member. */
  members: PresenceMember[]
  /** The position of the topic's events topic at that moment: the events after it are the changes since. */
  position: Position
}

/** What a presence store needs of the plugin's `presence` option and the topic's events. */
export interface PresenceSettings {
  /** Milliseconds an instance's entry lives without a refresh: an instance that died has its members leave after it. */
  ttl: number
  /** Members a topic holds at most: a join past it is refused. */
  maxMembers: number
  /** The history of the topic's join and leave events (the events topic, see presenceTopic()). */
  events: HistorySettings
}

/**
 * The presence side of a broker (`Broker.presence`): who is present in a
 * topic, on every instance. A member is an id: present while at least one
 * instance holds it (join when the first does, leave when the last lets
 * go or stops refreshing). Each join and leave is a message of the topic's
 * events topic (`presenceTopic(topic)`, a history topic): the JSON text
 * `{"type":"join"|"leave","id":...,"info":...}`.
 */
export interface BrokerPresence {
  /**
   * This instance holds `id` in `topic`, with `info` (JSON text). Resolves
   * true when the member joined (no instance held it), false when it was
   * already present (its info is replaced). Rejects with FST_WS_PRESENCE_FULL
   * past `settings.maxMembers`, FST_WS_PRESENCE_UNAVAILABLE when the store
   * cannot be reached.
   */
  join (topic: string, id: string, info: string, settings: PresenceSettings): Promise<boolean>
  /** This instance no longer holds `id` in `topic`: resolves true when the member left. Rejects as join() does. */
  leave (topic: string, id: string, settings: PresenceSettings): Promise<boolean>
  /**
   * The members of `topic` now, and the position of its events topic at
   * that moment (the events after it are the changes since). Members whose
   * instances stopped refreshing leave first. Rejects as join() does.
   */
  members (topic: string, settings: PresenceSettings): Promise<PresenceSnapshot>
  /**
   * This instance still holds `members` (id, info as JSON text) in `topic`
   * (a heartbeat, every `settings.ttl / 3` ms): their entries live another
   * `ttl`, and one the store lost (an outage longer than `ttl`) joins again.
   * Entries of any instance past their time leave (with their leave
   * events). Rejects as join() does.
   */
  refresh (topic: string, members: Array<{ id: string, info: string }>, settings: PresenceSettings): Promise<void>
}

/** How much of a topic's history a broker keeps: the `size` and `ttl` of the app's TopicHistory. */
export interface HistorySettings {
  /** Messages kept, at most: the oldest go past it (a Redis stream trims approximately, keeping at least `size`). */
  size: number
  /** Milliseconds a message is kept after it was published. */
  ttl: number
}

/** What a history read (`BrokerHistory.read`) answers. */
export interface HistoryRead {
  /** The topic's position now: its epoch, and the offset of its last message (0 when it has had none in this epoch). */
  position: Position
  /**
   * With `since`: every message after it up to `position`, oldest first,
   * each with its `position`; [] when `since` is `position`. null when they
   * cannot all be given (never a part of them): no `since`, `since` of
   * another epoch or past `position`, older than the history kept (trimmed
   * by size or expired), or more than `limit` messages back.
   */
  messages: BrokerMessage[] | null
}

/**
 * The history side of a broker (`Broker.history`): topics that keep their
 * last messages, each with a position. Either method may answer at once (a
 * value) or later (a promise).
 */
export interface BrokerHistory {
  /**
   * Appends `message` to its topic's history, keeping `settings.size`
   * messages for `settings.ttl` ms, gives it the next offset of the topic
   * (the same on every instance) and carries it, with that position, to
   * every instance subscribed to the topic, this one included, through
   * `context.deliver`. Resolves with the position. Rejects (an error with
   * code FST_WS_HISTORY_UNAVAILABLE) when the message could not be stored:
   * it then reached no instance, not even this one.
   */
  publish (message: BrokerMessage, settings: HistorySettings): Position | Promise<Position>
  /**
   * The topic's position now and, with `since`, the messages after it (see
   * HistoryRead), at most `limit`. A topic with no history yet gets one: an
   * epoch, at offset 0. Rejects (FST_WS_HISTORY_UNAVAILABLE) when the history
   * cannot be read.
   */
  read (topic: string, since: Position | undefined, limit: number): HistoryRead | Promise<HistoryRead>
}

/**
 * Carries published messages between the instances of an app, so that a
 * topic's subscribers on every instance receive them.
 *
 * The plugin delivers every publish to a topic without history to its own
 * instance's subscribers itself, then hands it to `publish()`: a broker
 * carries such messages only to *other* instances and must drop its own when
 * they come back. The plugin calls `subscribe(topic)` when the first local
 * socket subscribes to a topic and `unsubscribe(topic)` when the last one
 * leaves, so a broker listens only to topics it has subscribers for.
 *
 * None of the methods but `start` and `close` may block the caller or throw
 * for a broker outage: publish must go on delivering locally while the
 * broker is down (log the outage, reconnect, re-subscribe).
 *
 * A broker that keeps topic histories has `history` (see BrokerHistory);
 * the plugin's `history` option needs one. Other optional parts may come
 * beside it; a broker without them works as before.
 */
export interface Broker {
  /** Called once, when the plugin is registered. Rejecting fails the plugin's registration. */
  start (context: BrokerContext): void | Promise<void>
  /**
   * The first local subscriber of `topic` arrived. May return a promise
   * that settles (never rejects) once messages published from then on are
   * delivered to this instance, or once the attempt failed: a history topic
   * reads its position after it.
   */
  subscribe (topic: string): void | Promise<void>
  /** The last local subscriber of `topic` left. */
  unsubscribe (topic: string): void
  /** Sends a message of a topic without history to the other instances. */
  publish (message: BrokerMessage): void
  /** Called once, when the app closes, after every socket is closed. Must not hang on a dead server. */
  close (): void | Promise<void>
  /** Topic histories: positions, replays (see BrokerHistory). Absent: the broker keeps none. */
  readonly history?: BrokerHistory
  /** Requests to every instance (see BrokerCluster). Absent: the plugin runs them on this instance only. */
  readonly cluster?: BrokerCluster
  /** Presence across instances (see BrokerPresence); needs `history`. Absent: the plugin's `presence` option cannot be used. */
  readonly presence?: BrokerPresence
}

/** The JSON text of a presence event, as BrokerPresence describes it; `info` is JSON text already. */
export function presenceEvent (type: 'join' | 'leave', id: string, info: string): string {
  return `{"type":"${type}","id":${JSON.stringify(id)},"info":${info}}`
}

/** A new random epoch: 8 characters of base64url (48 bits). */
export function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}

/** One topic's history in a LocalBroker: a ring of its last messages. */
interface LocalTopic {
  readonly epoch: string
  /** The offset of the topic's last message. */
  top: number
  /** The kept messages, oldest first from `head`; slots before `head` are free. */
  messages: Array<BrokerMessage | undefined>
  /** When each kept message was published (ms since the epoch), at the same index. */
  times: number[]
  head: number
  /** Milliseconds a message is kept: the latest settings'. */
  ttl: number
}

/** Milliseconds between two sweeps of a LocalBroker's histories for expired messages and empty topics. */
const SWEEP_INTERVAL = 60_000

/**
 * The default broker: one process, nothing to carry. The plugin's own
 * topic table delivers every publish of a topic without history to the
 * local subscribers.
 *
 * History (`history`): a ring of each topic's last `size` messages in
 * memory, of one epoch for the life of the process (new when it restarts).
 * Expired messages leave at the next publish or read of their topic and at
 * a sweep each minute; a topic whose messages all expired and that has no
 * subscriber is forgotten (a later one starts a new epoch).
 */
export class LocalBroker implements Broker {
  private context: BrokerContext | undefined
  private readonly topics = new Map<string, LocalTopic>()
  /** Topics with a subscriber: their history outlives their messages, so that their offsets go on. */
  private readonly subscribed = new Set<string>()
  private sweeper: NodeJS.Timeout | undefined
  /** Per topic, its members' info (JSON text) by id. */
  private readonly present = new Map<string, Map<string, string>>()

  /** In-memory topic histories (see the class's description). */
  readonly history: BrokerHistory = {
    publish: (message, settings) => this.append(message, settings),
    read: (topic, since, limit) => this.read(topic, since, limit)
  }

  /** Requests run on this instance, the only one. */
  readonly cluster: BrokerCluster = {
    request: async (request) => ({ instances: 1, sockets: this.context?.control(request) ?? 0 })
  }

  /** Presence in memory: the members of this instance, which is every instance. */
  readonly presence: BrokerPresence = {
    join: async (topic, id, info, settings) => this.join(topic, id, info, settings),
    leave: async (topic, id, settings) => this.leave(topic, id, settings),
    members: async (topic) => ({
      members: [...this.present.get(topic) ?? []].map(([id, info]) => ({ id, info: JSON.parse(info) as unknown })),
      position: this.read(presenceTopic(topic), undefined, 0).position
    }),
    refresh: async () => {}
  }

  start (context: BrokerContext): void {
    this.context = context
  }

  subscribe (topic: string): void {
    this.subscribed.add(topic)
  }

  unsubscribe (topic: string): void {
    this.subscribed.delete(topic)
  }

  publish (): void {}

  close (): void {
    clearInterval(this.sweeper)
    this.topics.clear()
    this.subscribed.clear()
    this.present.clear()
  }

  private join (topic: string, id: string, info: string, settings: PresenceSettings): boolean {
    let members = this.present.get(topic)
    if (members === undefined) {
      members = new Map()
      this.present.set(topic, members)
    }
    const joined = !members.has(id)
    if (joined && members.size >= settings.maxMembers) throw presenceFullError(topic, settings.maxMembers)
    members.set(id, info)
    if (joined) this.announce(topic, presenceEvent('join', id, info), settings)
    return joined
  }

  private leave (topic: string, id: string, settings: PresenceSettings): boolean {
    const members = this.present.get(topic)
    const info = members?.get(id)
    if (members === undefined || info === undefined) return false
    members.delete(id)
    if (members.size === 0) this.present.delete(topic)
    this.announce(topic, presenceEvent('leave', id, info), settings)
    return true
  }

  /** Appends a presence event to the topic's events topic, which delivers it. */
  private announce (topic: string, event: string, settings: PresenceSettings): void {
    this.append({ topic: presenceTopic(topic), payload: Buffer.from(event), isBinary: false, compress: undefined }, settings.events)
  }

  private append (message: BrokerMessage, settings: HistorySettings): Position {
    const kept = this.topic(message.topic)
    const now = Date.now()
    kept.ttl = settings.ttl
    expire(kept, now)
    const position = { offset: ++kept.top, epoch: kept.epoch }
    const stored: BrokerMessage = { topic: message.topic, payload: message.payload, isBinary: message.isBinary, compress: message.compress, position }
    kept.messages.push(stored)
    kept.times.push(now)
    while (kept.messages.length - kept.head > settings.size) drop(kept)
    this.context?.deliver(stored)
    return position
  }

  private read (topic: string, since: Position | undefined, limit: number): HistoryRead {
    const kept = this.topic(topic)
    expire(kept, Date.now())
    const position = { offset: kept.top, epoch: kept.epoch }
    if (since === undefined || since.epoch !== kept.epoch || since.offset > kept.top || kept.top - since.offset > limit) {
      return { position, messages: null }
    }
    // Kept messages have consecutive offsets, the last one `top`.
    const oldest = kept.top - (kept.messages.length - kept.head) + 1
    if (since.offset + 1 < oldest) return { position, messages: null }
    return { position, messages: kept.messages.slice(kept.head + since.offset + 1 - oldest) as BrokerMessage[] }
  }

  /** The topic's history, created (a new epoch, offset 0) if it has none. */
  private topic (topic: string): LocalTopic {
    let kept = this.topics.get(topic)
    if (kept === undefined) {
      kept = { epoch: newEpoch(), top: 0, messages: [], times: [], head: 0, ttl: 0 }
      this.topics.set(topic, kept)
      this.sweeper ??= setInterval(this.sweep, SWEEP_INTERVAL).unref()
    }
    return kept
  }

  private readonly sweep = (): void => {
    const now = Date.now()
    for (const [topic, kept] of this.topics) {
      expire(kept, now)
      if (kept.head === kept.messages.length && !this.subscribed.has(topic)) this.topics.delete(topic)
    }
  }
}

function expire (kept: LocalTopic, now: number): void {
  while (kept.head < kept.messages.length && now - kept.times[kept.head] >= kept.ttl) drop(kept)
}

/** Drops the oldest kept message; compacts the arrays once half of them is free. */
function drop (kept: LocalTopic): void {
  kept.messages[kept.head] = undefined
  kept.head++
  if (kept.head >= 1024 && kept.head * 2 >= kept.messages.length) {
    kept.messages = kept.messages.slice(kept.head)
    kept.times = kept.times.slice(kept.head)
    kept.head = 0
  }
}
