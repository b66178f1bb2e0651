/**
 * The shapes of presence (docs/presence-and-control.md) that sockets take and
 * report: `socket.track()` and `socket.subscribePresence()`. They live in the
 * socket layer for that reason; the presence table and the brokers
 * (lib/pubsub) use them too.
 */

/** A member present in a topic: the id the app gave it (`socket.track()`) and its info (a JSON value). */
export interface PresenceMember {
  /** The member's id, as given to `socket.track()`: 1 to 256 bytes of UTF-8. */
  id: string
  /** The member's info, as given to `socket.track()` (parsed back from its JSON). */
  info: unknown
}

/** What `socket.track()` resolves with. */
export interface Tracked {
  /** true when the member joined the topic (no socket on any instance held it before). */
  joined: boolean
}

/**
 * The topic of `topic`'s presence events: a history topic whose messages
 * are the joins and leaves of `topic` (BrokerPresence). Starts with a NUL,
 * which no topic of the app's is expected to.
 */
export function presenceTopic (topic: string): string {
  return `\u0000presence\u0000${topic}`
}

/** The topic whose presence events `topic` carries; null when it is not an events topic. */
export function presenceOf (topic: string): string | null {
  return topic.startsWith(PRESENCE_PREFIX) ? topic.slice(PRESENCE_PREFIX.length) : null
}

const PRESENCE_PREFIX = presenceTopic('')
