/**
 * Presence (docs/presence-and-control.md): which members are present in a
 * topic on every instance, the sockets of this instance that hold them, and
 * the join and leave events that sockets subscribe to. The store is the
 * broker's (BrokerPresence); the events travel as messages of a history
 * topic (presenceTopic()), so that a socket gets the members and then every
 * change after them, once and in order.
 */
import { Buffer } from 'node:buffer'
import type { FastifyBaseLogger } from 'fastify'
import { FastifyWebSocketError, presenceInfoError, presenceUnavailableError } from '../errors.js'
import type { WebSocketData } from '../socket/payload.js'
import type { WebSocket } from '../socket/websocket.js'
import { type PresenceMember, presenceTopic, type Tracked } from '../socket/presence.js'
import type { BrokerPresence, PresenceSettings } from './broker.js'
import type { TopicHistory } from './recovery.js'
import type { TopicTable } from './topics.js'

/** The plugin's `presence` option: presence in topics (`socket.track()`), bounded. */
export interface PresenceOptions {
  /**
   * Milliseconds an instance's members live in the store without its
   * heartbeat (sent every `ttl / 3` ms): the members of an instance that died
   * (SIGKILL, a lost network) leave at most this long after, with their leave
   * events. Default 30000.
   */
  ttl?: number
  /** Members one topic holds at most: a join past it rejects with FST_WS_PRESENCE_FULL. Default 10000. */
  maxMembers?: number
  /** Bytes of a member's info as JSON text, at most: a track() over it throws FST_WS_PRESENCE_INFO. Default 1024. */
  maxInfoBytes?: number
  /**
   * What a socket subscribed to a topic's presence (`socket.subscribePresence()`)
   * receives for each join and leave: run once per event on each instance,
   * its frame built once for all the instance's sockets. A string goes as
   * text, bytes as binary; a throw is logged and the event not sent.
   * Default: the JSON text of the event, `{"type","topic","id","info"}`.
   */
  encode?: (event: PresenceEvent) => WebSocketData
}

/** A member joined a topic (its first connection, on any instance) or left it (its last). */
export interface PresenceEvent {
  /** `join`: the member's first socket arrived (on any instance); `leave`: its last one went, or its instance stopped refreshing it. */
  type: 'join' | 'leave'
  /** The topic the member joined or left (not its events topic). */
  topic: string
  /** The member's id, as given to `socket.track()`. */
  id: string
  /** The member's info, as given to `socket.track()` (parsed back from its JSON). */
  info: unknown
}

/** The defaults of the `presence` option (see PresenceOptions). */
const PRESENCE_DEFAULTS = { ttl: 30_000, maxMembers: 10_000, maxInfoBytes: 1024 }

/** Longest member id, in bytes of UTF-8. */
export const MAX_MEMBER_ID_BYTES = 256

/** Events a topic's events topic keeps, and for how long: enough for a subscriber to catch up with its snapshot. */
const EVENTS_HISTORY = { size: 1000, ttl: 60_000 }

/** What the store needs of the `presence` option (`ttl`, `maxMembers`), with the defaults. */
export function presenceSettings (options: Pick<PresenceOptions, 'ttl' | 'maxMembers'>): PresenceSettings {
  return { ttl: options.ttl ?? PRESENCE_DEFAULTS.ttl, maxMembers: options.maxMembers ?? PRESENCE_DEFAULTS.maxMembers, events: EVENTS_HISTORY }
}

/** A member present through sockets of this instance. */
interface Member {
  readonly sockets: Set<WebSocket>
  /** Its info as JSON text: the first socket's. */
  info: string
  /** The last store operation of the member (join or leave): the next one waits for it. */
  op: Promise<unknown>
}

/**
 * This instance's side of presence: which sockets hold which members (a
 * member is an id: two sockets with one id are one member, which joins
 * with the first and leaves with the last), the store's joins and leaves in
 * the order they happen, and the heartbeat that keeps them alive in the store.
 */
export class PresenceTable {
  readonly settings: PresenceSettings
  private readonly encode: (event: PresenceEvent) => WebSocketData
  private readonly store: BrokerPresence
  private readonly topics: TopicTable
  private readonly maxInfoBytes: number
  private readonly log: FastifyBaseLogger
  /** Per topic, its members held by sockets here. */
  private readonly tracked = new Map<string, Map<string, Member>>()
  /** Per socket, the member it holds in each topic. */
  private readonly bySocket = new Map<WebSocket, Map<string, string>>()
  /** Topics whose presence a socket here subscribed to: their heartbeat also clears the members of dead instances. */
  private readonly watched = new Set<string>()
  private readonly heartbeat: NodeJS.Timeout
  /** Whether the last heartbeat failed: failures are logged once until one succeeds. */
  private failing = false

  constructor (options: PresenceOptions, store: BrokerPresence, log: FastifyBaseLogger, topics: TopicTable) {
    this.store = store
    this.topics = topics
    this.log = log
    this.maxInfoBytes = options.maxInfoBytes ?? PRESENCE_DEFAULTS.maxInfoBytes
    this.settings = presenceSettings(options)
    const ttl = this.settings.ttl
    this.encode = options.encode ?? ((event: PresenceEvent) => JSON.stringify(event))
    this.heartbeat = setInterval(() => this.beat(), Math.max(1, Math.floor(ttl / 3))).unref()
  }

  /** The history of `topic`'s events topic (presenceTopic()): its events go through the app's encode. */
  events (topic: string): TopicHistory {
    return {
      ...EVENTS_HISTORY,
      encode: (data) => {
        const { type, id, info } = JSON.parse(data.toString()) as PresenceEvent
        return this.encode({ type, topic, id, info })
      }
    }
  }

  /**
   * `socket` holds member `id` in `topic`, with `info` (any JSON value).
   * A socket holds one member per topic: another id replaces the one it held.
   */
  async track (socket: WebSocket, topic: string, id: string, info: unknown): Promise<Tracked> {
    if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > MAX_MEMBER_ID_BYTES) {
      throw new FastifyWebSocketError('FST_WS_PRESENCE_ID', `a presence id is a string of 1 to ${MAX_MEMBER_ID_BYTES} bytes of UTF-8`)
    }
    const json = infoJson(info, this.maxInfoBytes)
    const held = this.bySocket.get(socket)
    if (held?.get(topic) === id) return { joined: false }
    if (held?.has(topic) === true) this.untrack(socket, topic)
    let members = this.tracked.get(topic)
    if (members === undefined) {
      members = new Map()
      this.tracked.set(topic, members)
    }
    let member = members.get(id)
    if (member === undefined) {
      member = { sockets: new Set(), info: json, op: Promise.resolve() }
      members.set(id, member)
    }
    member.sockets.add(socket)
    let topics = this.bySocket.get(socket)
    if (topics === undefined) {
      topics = new Map()
      this.bySocket.set(socket, topics)
    }
    topics.set(topic, id)
    const first = member.sockets.size === 1
    if (first) {
      member.info = json
      member.op = member.op.catch(() => {}).then(() => this.store.join(topic, id, json, this.settings))
    }
    try {
      // A second socket of the member waits for the join under way.
      const joined = await member.op
      return { joined: first && joined === true }
    } catch (err) {
      const released = this.release(socket, topic)
      if (released !== null) this.forget(topic, id, released.member)
      throw (err as { code?: unknown }).code === undefined ? presenceUnavailableError(topic, err) : err
    }
  }

  /** `socket` no longer holds a member in `topic`: false when it held none. The member leaves with its last socket. */
  untrack (socket: WebSocket, topic: string): boolean {
    const released = this.release(socket, topic)
    if (released === null) return false
    const { member, id } = released
    if (member.sockets.size > 0) return true
    member.op = member.op.catch(() => {}).then(() => this.store.leave(topic, id, this.settings)).catch((err: unknown) => {
      this.log.warn({ err, topic }, 'presence: a leave failed; the member leaves when its entry expires (the presence ttl)')
    }).finally(() => this.forget(topic, id, member))
    return true
  }

  /** `socket` closed: it leaves every topic it was present in. */
  closed (socket: WebSocket): void {
    const topics = this.bySocket.get(socket)
    if (topics === undefined) return
    for (const topic of [...topics.keys()]) this.untrack(socket, topic)
  }

  /** The members of `topic` on every instance. */
  async members (topic: string): Promise<PresenceMember[]> {
    try {
      return (await this.store.members(topic, this.settings)).members
    } catch (err) {
      throw (err as { code?: unknown }).code === undefined ? presenceUnavailableError(topic, err) : err
    }
  }

  /**
   * `socket` subscribes to `topic`'s join and leave events: resolves with
   * the members now; the events after them follow, once and in order, right
   * after the promise's reactions (as a resume's replay does), or after
   * `gate`'s when given.
   */
  async subscribe (socket: WebSocket, topic: string, gate?: Promise<unknown>): Promise<PresenceMember[]> {
    for (let attempt = 0; ; attempt++) {
      let snapshot: Awaited<ReturnType<BrokerPresence['members']>>
      try {
        snapshot = await this.store.members(topic, this.settings)
      } catch (err) {
        throw (err as { code?: unknown }).code === undefined ? presenceUnavailableError(topic, err) : err
      }
      const events = presenceTopic(topic)
      socket.unsubscribe(events)
      const resumed = await this.topics.resume(socket, events, socket.subscribe(events), { since: snapshot.position }, gate)
      if (!resumed.subscribed) return snapshot.members
      this.watched.add(topic)
      // The events topic lost its history between the two reads (a new epoch): read the members again.
      if (resumed.recovered) return snapshot.members
      if (attempt === 2) throw presenceUnavailableError(topic, new Error('the presence events kept changing epoch'))
    }
  }

  /** The sockets here that hold member `id` (in `topic` only, when given). */
  * socketsOf (id: string, topic: string | undefined): Generator<WebSocket> {
    for (const [name, members] of this.tracked) {
      if (topic !== undefined && name !== topic) continue
      const member = members.get(id)
      if (member !== undefined) yield * [...member.sockets]
    }
  }

  /** Stops the heartbeat once every join and leave under way is done (before the broker closes). */
  async close (): Promise<void> {
    clearInterval(this.heartbeat)
    const ops: Array<Promise<unknown>> = []
    for (const members of this.tracked.values()) for (const member of members.values()) ops.push(member.op.catch(() => {}))
    await Promise.all(ops)
  }

  /** Takes `socket` off the member it holds in `topic`; the member and its id, or null when it held none. */
  private release (socket: WebSocket, topic: string): { member: Member, id: string } | null {
    const topics = this.bySocket.get(socket)
    const id = topics?.get(topic)
    if (topics === undefined || id === undefined) return null
    topics.delete(topic)
    if (topics.size === 0) this.bySocket.delete(socket)
    const member = this.tracked.get(topic)?.get(id)
    if (member === undefined) return null
    member.sockets.delete(socket)
    return { member, id }
  }

  /** Drops a member that no socket here holds any more, once its last operation is done. */
  private forget (topic: string, id: string, member: Member): void {
    const members = this.tracked.get(topic)
    if (member.sockets.size > 0 || members?.get(id) !== member) return
    void member.op.finally(() => {
      if (member.sockets.size > 0 || members.get(id) !== member) return
      members.delete(id)
      if (members.size === 0) this.tracked.delete(topic)
    }).catch(() => {})
  }

  /** One heartbeat: refreshes this instance's members in every topic it holds some, and clears dead instances' in the topics watched here. */
  private beat (): void {
    for (const topic of this.watched) if (this.topics.subscriberCount(presenceTopic(topic)) === 0) this.watched.delete(topic)
    const topics = new Set([...this.tracked.keys(), ...this.watched])
    for (const topic of topics) {
      const members = this.tracked.get(topic)
      const held = members === undefined ? [] : [...members].filter(([, member]) => member.sockets.size > 0).map(([id, member]) => ({ id, info: member.info }))
      this.store.refresh(topic, held, this.settings).then(() => { this.failing = false }, (err: unknown) => {
        if (this.failing) return
        this.failing = true
        this.log.error({ err, topic }, `presence: the heartbeat failed; this instance's members leave after ${this.settings.ttl} ms unless it is back (further failures are not logged until one succeeds)`)
      })
    }
  }
}

/** `info` as JSON text: throws FST_WS_PRESENCE_INFO when it has none or it is over `max` bytes. */
function infoJson (info: unknown, max: number): string {
  let json: string | undefined
  try {
    json = JSON.stringify(info ?? null)
  } catch (err) {
    throw presenceInfoError(`cannot be serialised as JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (json === undefined) throw presenceInfoError('cannot be serialised as JSON')
  if (Buffer.byteLength(json) > max) throw presenceInfoError(`is over ${max} bytes as JSON (the presence option's maxInfoBytes)`)
  return json
}
