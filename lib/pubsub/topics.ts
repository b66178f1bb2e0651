import { Buffer } from 'node:buffer'
import { broadcastPayload } from './broadcast.js'
import { noHistoryError, publishSizeError, reservedTopicError, topicError } from '../errors.js'
import { Opcode } from '../protocol/constants.js'
import { toPayload, type SendOptions, type WebSocketData } from '../socket/payload.js'
import type { Position, Subscribed, SubscribeOptions } from '../socket/position.js'
import { presenceOf } from '../socket/presence.js'
import type { WebSocket } from '../socket/websocket.js'
import type { Broker, BrokerMessage } from './broker.js'
import { NOT_SUBSCRIBED, type TopicHistories } from './recovery.js'

/** Longest topic, in bytes of UTF-8. */
export const MAX_TOPIC_BYTES = 1024

/**
 * The local topic table: for each topic, the sockets of this instance
 * subscribed to it. A topic exists while it has a subscriber; the broker is
 * told when a topic gains its first local subscriber and loses its last, so
 * it carries only what this instance delivers.
 */
export class TopicTable {
  private readonly subscribers = new Map<string, Set<WebSocket>>()
  private readonly broker: Broker
  /** The topics with history (the `history` option); null when the app keeps none. */
  private readonly histories: TopicHistories | null

  /** Bytes of one publish's payload, at most (the plugin's `maxPublishPayload`). */
  private readonly maxPublishPayload: number

  constructor (broker: Broker, maxPublishPayload = Number.MAX_SAFE_INTEGER, histories: TopicHistories | null = null) {
    this.broker = broker
    this.maxPublishPayload = maxPublishPayload
    this.histories = histories
  }

  /** Adds `socket` to `topic`'s subscribers; false when it already was one. */
  subscribe (socket: WebSocket, topic: string): boolean {
    checkTopic(topic)
    let sockets = this.subscribers.get(topic)
    if (sockets === undefined) {
      const history = this.histories?.settings(topic) ?? null
      sockets = new Set()
      this.subscribers.set(topic, sockets)
      const subscribed = this.broker.subscribe(topic)
      if (history !== null) this.histories!.open(topic, history, sockets, subscribed)
    } else if (sockets.has(socket)) {
      return false
    }
    sockets.add(socket)
    return true
  }

  /** Removes `socket` from `topic`'s subscribers; false when it was not one. */
  unsubscribe (socket: WebSocket, topic: string): boolean {
    const sockets = this.subscribers.get(topic)
    if (sockets === undefined || !sockets.delete(socket)) return false
    this.histories?.leave(socket, topic)
    if (sockets.size === 0) {
      this.subscribers.delete(topic)
      this.histories?.close(topic)
      this.broker.unsubscribe(topic)
    }
    return true
  }

  /**
   * After `subscribe()` returned `subscribed`: on a topic with history, the
   * replay from `options.since` (TopicHistories.resume; sent after `gate`
   * when given); else at once.
   */
  resume (socket: WebSocket, topic: string, subscribed: boolean, options: SubscribeOptions, gate?: Promise<unknown>): Promise<Subscribed> {
    if (!subscribed) return Promise.resolve(NOT_SUBSCRIBED)
    if (this.histories === null) return Promise.resolve({ subscribed: true, recovered: false, position: null })
    return this.histories.resume(socket, topic, options.since, gate)
  }

  /** The sockets of this instance subscribed to `topic`, as a copy (safe to unsubscribe while iterating). */
  subscribersOf (topic: string): WebSocket[] {
    return [...this.subscribers.get(topic) ?? []]
  }

  /** How many sockets of this instance are subscribed to `topic`. */
  subscriberCount (topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0
  }

  /**
   * Sends a message to every local subscriber of `topic` but `except`, framed
   * once, then hands it to the broker for the other instances. Returns how
   * many local sockets took it. Throws FST_WS_INVALID_TOPIC for a topic that
   * is not a string of at most MAX_TOPIC_BYTES bytes, FST_WS_PUBLISH_TOO_LARGE
   * for a payload over `maxPublishPayload` bytes.
   *
   * A topic with history goes through the broker instead, which delivers the
   * message everywhere (here too, `except` included) once it has a position:
   * 0 is returned, and a failure is logged (see publishStored).
   */
  publish (topic: string, data: WebSocketData, options: SendOptions | undefined, except: WebSocket | undefined): number {
    const message = this.message(topic, data, options)
    if (this.histories !== null) {
      const history = this.histories.settings(topic)
      if (history !== null) {
        this.histories.publishLogged(message, history)
        return 0
      }
    }
    const sent = this.deliver(message, except)
    this.broker.publish(message)
    return sent
  }

  /**
   * Publishes to a topic with history: resolves with the message's position
   * once the broker has stored it and delivered it. Throws FST_WS_INVALID_TOPIC
   * as publish() does and FST_WS_NO_HISTORY for a topic without history;
   * rejects with FST_WS_HISTORY_UNAVAILABLE when the broker cannot store it.
   */
  publishStored (topic: string, data: WebSocketData, options: SendOptions | undefined): Promise<Position> {
    const message = this.message(topic, data, options)
    const history = this.histories?.settings(topic) ?? null
    if (history === null) throw noHistoryError(topic)
    return this.histories!.publish(message, history)
  }

  /**
   * A publish as the broker carries it; throws FST_WS_INVALID_TOPIC (also
   * for a presence events topic, which only the presence store writes) or
   * FST_WS_PUBLISH_TOO_LARGE.
   */
  private message (topic: string, data: WebSocketData, options: SendOptions | undefined): BrokerMessage {
    checkTopic(topic)
    if (presenceOf(topic) !== null) throw reservedTopicError(topic)
    const payload = toPayload(data)
    if (payload.length > this.maxPublishPayload) throw publishSizeError(payload.length, this.maxPublishPayload)
    return { topic, payload, isBinary: typeof data !== 'string', compress: options?.compress }
  }

  /** The broker's subscription to `topic` is back after an outage (BrokerContext.resubscribed). */
  resubscribed (topic: string): void {
    this.histories?.resubscribed(topic)
  }

  /** Delivers a message to the local subscribers of its topic; returns how many took it. */
  deliver (message: BrokerMessage, except?: WebSocket): number {
    const sockets = this.subscribers.get(message.topic)
    if (sockets === undefined) return 0
    if (message.position !== undefined && this.histories !== null) return this.histories.deliver(message, sockets)
    const opcode = message.isBinary ? Opcode.Binary : Opcode.Text
    return broadcastPayload(sockets, opcode, message.payload, message.compress, except)
  }
}

function checkTopic (topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || (topic.length > MAX_TOPIC_BYTES / 3 && Buffer.byteLength(topic) > MAX_TOPIC_BYTES)) {
    throw topicError(topic, MAX_TOPIC_BYTES)
  }
}
