import { isUtf8 } from 'node:buffer'
import diagnostics from 'node:diagnostics_channel'
import type { FastifyBaseLogger } from 'fastify'
import { bounded } from '../errors.js'

/**
 * Diagnostics channel of the messages a broker dropped on arrival: each
 * gets `{ reason, channel, bytes }` (BrokerDroppedMessage).
 */
export const BROKER_DROPPED_CHANNEL = 'fastify-rfc6455:broker:dropped'

/** Why a broker dropped a message that arrived on a channel. */
export type DropReason = 'malformed' | 'oversized' | 'invalid-utf8'

/** What the `fastify-rfc6455:broker:dropped` channel publishes. */
export interface BrokerDroppedMessage {
  /**
   * 'malformed': not an envelope of this version (another version of the
   * app, or another publisher on the channel); 'oversized': a payload over
   * the broker's `maxPayload`; 'invalid-utf8': a text message whose payload
   * is not UTF-8, which sockets would send as an invalid text frame
   * (RFC 6455 §5.6, §8.1).
   */
  reason: DropReason
  /** The channel it arrived on, cut to 200 characters. */
  channel: string
  /** Its size in bytes, envelope included. */
  bytes: number
}

/** Counts of the messages a broker dropped on arrival, since it was created. */
export interface BrokerDropStats {
  /** Not an envelope of this version: another version of the plugin, or another publisher on the channel. */
  malformed: number
  /** A payload over the broker's `maxPayload` bytes. */
  oversized: number
  /** Flagged as text, not UTF-8 (a text frame must be, RFC 6455 §5.6, §8.1). */
  invalidUtf8: number
}

/** Milliseconds between two log lines about dropped messages, at most one per period. */
const LOG_PERIOD = 10_000

const dropped = diagnostics.channel(BROKER_DROPPED_CHANNEL)

/**
 * The checks a broker makes on what arrives from its channels before any
 * socket sees it: anything may publish there (another app, a redis-cli), so
 * nothing is trusted. Drops are counted, published on the diagnostics
 * channel, and logged at warn level at most once per 10 s, with the count
 * of drops since the previous line.
 */
export class EnvelopeChecks {
  readonly stats: BrokerDropStats = { malformed: 0, oversized: 0, invalidUtf8: 0 }
  private readonly maxPayload: number
  private lastLog = -Infinity
  private unlogged = 0

  constructor (maxPayload: number) {
    this.maxPayload = maxPayload
  }

  /** Whether a decoded message may go to the sockets; counts and reports it when not. */
  deliverable (payload: Buffer, isBinary: boolean, channel: Buffer, bytes: number, log: FastifyBaseLogger | undefined): boolean {
    if (payload.length > this.maxPayload) {
      this.drop('oversized', channel, bytes, log)
      return false
    }
    if (!isBinary && !isUtf8(payload)) {
      this.drop('invalid-utf8', channel, bytes, log)
      return false
    }
    return true
  }

  /** Counts and reports a message that is no envelope of this version. */
  malformed (channel: Buffer, bytes: number, log: FastifyBaseLogger | undefined): void {
    this.drop('malformed', channel, bytes, log)
  }

  private drop (reason: DropReason, channel: Buffer, bytes: number, log: FastifyBaseLogger | undefined): void {
    this.stats[reason === 'invalid-utf8' ? 'invalidUtf8' : reason]++
    const name = bounded(channel.toString('utf8', 0, 1024))
    if (dropped.hasSubscribers) dropped.publish({ reason, channel: name, bytes } satisfies BrokerDroppedMessage)
    this.unlogged++
    const now = Date.now()
    if (now - this.lastLog < LOG_PERIOD) return
    log?.warn({ reason, channel: name, bytes, dropped: this.unlogged, stats: { ...this.stats } },
      'RedisBroker: dropped a message from a channel (not a version 1 envelope, over maxPayload, or text that is not UTF-8); at most one such line per 10 s')
    this.lastLog = now
    this.unlogged = 0
  }
}
