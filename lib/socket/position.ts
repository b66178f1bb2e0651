/**
 * Positions in a topic's history (see docs/recovery.md): what a socket
 * resumes from. They live in the socket layer because `socket.subscribe()`
 * takes and reports them; the topic table and the brokers (lib/pubsub) use
 * them too.
 */
import type { PresenceMember } from './presence.js'

/**
 * The place of one message in its topic's history, the same on every
 * instance of the app.
 */
export interface Position {
  /**
   * 1 for the topic's first message, one more for each next one; 0 for a
   * topic that has had none (in this epoch). An integer up to 2^53 - 1.
   */
  offset: number
  /**
   * Names one history of the topic: it changes whenever the history is lost
   * (a Redis restarted without persistence, its keys expired or evicted, the
   * process of a LocalBroker restarted), so that offsets of two histories are
   * never compared. 1 to 64 characters of `A-Z a-z 0-9 _ -` (URL-safe).
   */
  epoch: string
}


const EPOCH = /^[A-Za-z0-9_-]{1,64}$/
const POSITION = /^(0|[1-9][0-9]{0,15})\.([A-Za-z0-9_-]{1,64})$/

/**
 * The short string form of a position, `<offset>.<epoch>` (such as
 * `42.Qm9yaXM`), which needs no escaping in a URL or in JSON.
 */
export function formatPosition (position: Position): string {
  return `${position.offset}.${position.epoch}`
}

/**
 * The position a string form (see formatPosition) stands for; null when
 * `text` is not one: a decimal offset (no sign, no leading zero, at most
 * 2^53 - 1), a dot, and an epoch of 1 to 64 characters of `A-Z a-z 0-9 _ -`.
 * Never throws, so a position read from a URL can be given as it is.
 */
export function parsePosition (text: unknown): Position | null {
  if (typeof text !== 'string') return null
  const match = POSITION.exec(text)
  if (match === null) return null
  const offset = Number(match[1])
  return Number.isSafeInteger(offset) ? { offset, epoch: match[2] } : null
}

/** Whether `value` is a Position: a safe integer offset from 0 and an epoch as in parsePosition. */
export function isPosition (value: unknown): value is Position {
  if (typeof value !== 'object' || value === null) return false
  const { offset, epoch } = value as Record<string, unknown>
  return Number.isSafeInteger(offset) && (offset as number) >= 0 && typeof epoch === 'string' && EPOCH.test(epoch)
}

/** Options of `socket.subscribe(topic, options)`. */
export interface SubscribeOptions {
  /**
   * Resume after this position (an object or its string form, such as a
   * client sent back in a URL): every message of the topic after it is
   * delivered, in order, before the live ones, or none when that cannot be
   * done in full (`recovered: false`). A string that is no position counts
   * as a position that cannot be recovered. Unset: live messages only.
   */
  since?: Position | string
  /**
   * true: also subscribe the socket to the topic's join and leave events
   * (as `socket.subscribePresence()`, docs/presence-and-control.md, with
   * the `presence` option): `members` then holds the members now, and the
   * replay, the live messages of the topic and the presence events after
   * `members` all wait until the promise's reactions have run, so that what
   * the app sends then (a welcome, the members) goes first. On a topic
   * without history, live messages are not held.
   */
  presence?: boolean
}

/** What `socket.subscribe(topic, options)` resolves with. */
export interface Subscribed {
  /** false when the socket was already subscribed to the topic, or was not OPEN, or left the topic before the subscription took effect. */
  subscribed: boolean
  /**
   * true when every message after `since` is delivered to the socket before
   * the live ones; false without `since`, for a topic without history, and
   * when the position is of another epoch, older than the history kept, or
   * more than `maxRecovery` messages back: then nothing is replayed and the
   * app reloads its state.
   */
  recovered: boolean
  /**
   * The topic's position when the subscription took effect: the replay (when
   * recovered) ends at it, and the socket receives every message after it.
   * null for a topic without history and when not subscribed.
   */
  position: Position | null
  /** With `presence: true`: the members present in the topic now, on every instance ([] when not subscribed). */
  members?: PresenceMember[]
}
