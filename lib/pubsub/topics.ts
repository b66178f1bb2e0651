import { Buffer } from 'node:buffer'
import { broadcastPayload } from './broadcast.js'
import { publishSizeError, topicError } from '../errors.js'
import { Opcode } from '../protocol/constants.js'
import { toPayload, type SendOptions, type WebSocketData } from '../socket/payload.js'
import type { WebSocket } from '../socket/websocket.js'
import type { Broker, BrokerMessage } from './broker.js'

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

  /** Bytes of one publish's payload, at most (the plugin's `maxPublishPayload`). */
  private readonly maxPublishPayload: number

  constructor (broker: Broker, maxPublishPayload = Number.MAX_SAFE_INTEGER) {
    this.broker = broker
    this.maxPublishPayload = maxPublishPayload
  }

  /** Adds `socket` to `topic`'s subscribers; false when it already was one. */
  subscribe (socket: WebSocket, topic: string): boolean {
    checkTopic(topic)
    let sockets = this.subscribers.get(topic)
    if (sockets === undefined) {
      sockets = new Set()
      this.subscribers.set(topic, sockets)
      this.broker.subscribe(topic)
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
    if (sockets.size === 0) {
      this.subscribers.delete(topic)
      this.broker.unsubscribe(topic)
    }
    return true
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
   */
  publish (topic: string, data: WebSocketData, options: SendOptions | undefined, except: WebSocket | undefined): number {
    checkTopic(topic)
    const payload = toPayload(data)
    if (payload.length > this.maxPublishPayload) throw publishSizeError(payload.length, this.maxPublishPayload)
    const message: BrokerMessage = { topic, payload, isBinary: typeof data !== 'string', compress: options?.compress }
    const sent = this.deliver(message, except)
    this.broker.publish(message)
    return sent
  }

  /** Delivers a message to the local subscribers of its topic; returns how many took it. */
  deliver (message: BrokerMessage, except?: WebSocket): number {
    const sockets = this.subscribers.get(message.topic)
    if (sockets === undefined) return 0
    const opcode = message.isBinary ? Opcode.Binary : Opcode.Text
    return broadcastPayload(sockets, opcode, message.payload, message.compress, except)
  }
}

function checkTopic (topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || (topic.length > MAX_TOPIC_BYTES / 3 && Buffer.byteLength(topic) > MAX_TOPIC_BYTES)) {
    throw topicError(topic, MAX_TOPIC_BYTES)
  }
}
