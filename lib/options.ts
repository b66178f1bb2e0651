import type { FastifyRequest } from 'fastify'
import type { ConnectionLimits } from './connection.js'
import type { PerMessageDeflateOptions } from './protocol/permessage-deflate.js'

/**
 * Chooses the subprotocol from those the client offered, in its order of
 * preference (RFC 6455 §4.2.2 step 5.4). Return one of `offered`, or
 * undefined to select none.
 */
export type ProtocolChooser = (offered: string[], request: FastifyRequest) => string | undefined

/** Decides whether a handshake's `Origin` (undefined when absent) is allowed (RFC 6455 §4.2.2, §10.2). */
export type OriginCheck = (origin: string | undefined, request: FastifyRequest) => boolean

/** Options of the plugin that a `ws: { ... }` route may override. */
export interface WebSocketOptions {
  /**
   * Bytes of one reassembled message; over it the connection closes with
   * 1009 (RFC 6455 §7.4.1, §10.4), as soon as a frame header declares it.
   * Default: the app's `bodyLimit` (Fastify's default is 1 MiB).
   */
  maxPayload?: number
  /** Milliseconds the closing handshake may take before the TCP connection is destroyed. Default 5000. */
  closeTimeout?: number
  /**
   * Bytes of unsent backlog past which `send()` returns false (resume on
   * `drain`) and the connection stops reading. Default 65536.
   */
  highWaterMark?: number
  /**
   * Bytes of unsent backlog past which a further `send()` fails the
   * connection with 1008 instead of queueing. Default 16 MiB.
   */
  maxBackpressure?: number
  /**
   * Milliseconds without a byte read or written after which the server
   * closes the connection with 1001. 0 turns it off. Default 0.
   */
  idleTimeout?: number
  /**
   * Subprotocols: the names this server speaks (the first the client offers
   * among them is chosen) or a chooser. Default: none chosen.
   */
  protocols?: string[] | ProtocolChooser
  /**
   * Allowed `Origin` values, or a check; a refused origin gets 403
   * (RFC 6455 §4.2.2, §10.2). With a list, a handshake without `Origin`
   * (not from a browser) is allowed. Default: every origin.
   */
  origin?: string[] | OriginCheck
  /**
   * permessage-deflate (RFC 7692): true or options to accept it when a client
   * offers it. Off by default: each compressing connection holds zlib contexts
   * (see PerMessageDeflateOptions for their sizes).
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
}

/** Options of `app.register(fastifyRfc6455, options)`. */
export interface FastifyRfc6455Options extends WebSocketOptions {
  /**
   * Milliseconds between heartbeat pings to every connection; a connection
   * whose pong has not come back by the next ping is terminated (close event
   * code 1006). 0 turns it off. Default 0.
   */
  heartbeatInterval?: number
}

/** Options resolved for one route: every limit set. */
export interface ResolvedOptions extends ConnectionLimits {
  protocols: WebSocketOptions['protocols']
  origin: WebSocketOptions['origin']
  /** null when permessage-deflate is off. */
  perMessageDeflate: PerMessageDeflateOptions | null
}

export const DEFAULTS = {
  closeTimeout: 5000,
  highWaterMark: 64 * 1024,
  maxBackpressure: 16 * 1024 * 1024,
  idleTimeout: 0,
  heartbeatInterval: 0
}

/** Merges route options over plugin options over defaults; `bodyLimit` is the app's. */
export function resolveOptions (plugin: WebSocketOptions, route: WebSocketOptions | undefined, bodyLimit: number): ResolvedOptions {
  const merged = { ...plugin, ...route }
  return {
    maxPayload: merged.maxPayload ?? bodyLimit,
    closeTimeout: merged.closeTimeout ?? DEFAULTS.closeTimeout,
    highWaterMark: merged.highWaterMark ?? DEFAULTS.highWaterMark,
    maxBackpressure: merged.maxBackpressure ?? DEFAULTS.maxBackpressure,
    idleTimeout: merged.idleTimeout ?? DEFAULTS.idleTimeout,
    protocols: merged.protocols,
    origin: merged.origin,
    perMessageDeflate: merged.perMessageDeflate === true ? {} : merged.perMessageDeflate || null
  }
}
