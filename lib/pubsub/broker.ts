import type { FastifyBaseLogger } from 'fastify'

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
}

/** What the plugin hands a broker when it starts. */
export interface BrokerContext {
  /**
   * Delivers a message that another instance published to this instance's
   * subscribers of `message.topic`. Call it once per message, in the order
   * the other instance published them; it never throws.
   */
  deliver (message: BrokerMessage): void
  /** The app's logger, for outages and reconnections (log them once, not per message). */
  log: FastifyBaseLogger
}

/**
 * Carries published messages between the instances of an app, so that a
 * topic's subscribers on every instance receive them.
 *
 * The plugin delivers every publish to its own instance's subscribers itself,
 * then hands it to `publish()`: a broker carries messages only to *other*
 * instances and must drop its own when they come back. The plugin calls
 * `subscribe(topic)` when the first local socket subscribes to a topic and
 * `unsubscribe(topic)` when the last one leaves, so a broker listens only to
 * topics it has subscribers for.
 *
 * None of the methods but `start` and `close` may block the caller or throw
 * for a broker outage: publish must go on delivering locally while the
 * broker is down (log the outage, reconnect, re-subscribe).
 */
export interface Broker {
  /** Called once, when the plugin is registered. Rejecting fails the plugin's registration. */
  start (context: BrokerContext): void | Promise<void>
  /** The first local subscriber of `topic` arrived. */
  subscribe (topic: string): void
  /** The last local subscriber of `topic` left. */
  unsubscribe (topic: string): void
  /** Sends a message to the other instances. */
  publish (message: BrokerMessage): void
  /** Called once, when the app closes, after every socket is closed. Must not hang on a dead server. */
  close (): void | Promise<void>
}

/**
 * The default broker: one process, nothing to carry. The plugin's own
 * topic table delivers every publish to the local subscribers.
 */
export class LocalBroker implements Broker {
  start (): void {}
  subscribe (): void {}
  unsubscribe (): void {}
  publish (): void {}
  close (): void {}
}
