import { Buffer } from 'node:buffer'
import type { IncomingMessage } from 'node:http'
import {
  constants, type Http2SecureServer, type Http2Server, type Http2ServerRequest, Http2ServerResponse, type Http2Session,
  type OutgoingHttpHeaders, type ServerHttp2Stream
} from 'node:http2'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { publishRefused } from '../diagnostics.js'
import { CloseCode } from '../protocol/constants.js'
import { connectionOn } from '../transport/connection.js'
import { type HandshakeOffer, type HandshakeRefusal, validateExtendedConnect } from '../protocol/handshake.js'
import type { RouteMatcher } from './matcher.js'
import { checkOrigin, pathOf } from './origin.js'
import { Http2Transport, type Transport } from '../transport/transport.js'
import { type HandshakeRequest, kHandshake, notFound, type PendingHandshake } from './upgrade.js'

/** WebSockets over HTTP/2 on the app's server, stopped by `close()`. */
export interface Http2WebSockets {
  /**
   * Takes no more extended CONNECTs, and closes gracefully (GOAWAY, then once
   * their open streams have closed) the HTTP/2 connections that carried a
   * WebSocket, so that they do not keep `app.close()` waiting.
   */
  close (): void
}

const EMPTY = Buffer.alloc(0)
/** Node's SETTINGS_MAX_CONCURRENT_STREAMS when the server was given none: no limit. */
const NODE_MAX_CONCURRENT_STREAMS = 2 ** 32 - 1
/**
 * Streams advertised besides `maxHttp2WebSockets`, for the requests a page
 * makes on the same connection (RFC 9113 §6.5.2: "It is recommended that
 * this value be no smaller than 100").
 */
const REQUEST_STREAMS = 100
/** The connection's receive window, in streams' windows (see http2WebSockets). */
const SESSION_WINDOW_STREAMS = 16
/** The largest flow-control window, 2^31 - 1 bytes (RFC 9113 §6.9.1). */
const MAX_WINDOW = 2 ** 31 - 1

/**
 * Bootstraps WebSockets over HTTP/2 (RFC 8441) when the app's server is an
 * HTTP/2 one (`Fastify({ http2: true })`, with or without TLS and
 * `allowHTTP1`); null otherwise. Advertises SETTINGS_ENABLE_CONNECT_PROTOCOL
 * (§3) on every new HTTP/2 connection and listens for the extended CONNECT
 * requests (§4), which Node's compatibility layer emits as the server's
 * `'connect'` event (and answers 405 when nothing listens there).
 *
 * An extended CONNECT with `:protocol websocket` to the path of a `ws: true`
 * route, within the connection's `maxWebSockets` and with an allowed origin
 * (both checked before any hook), goes through Fastify's router as a GET, so that params, prefixes,
 * constraints and hooks apply exactly as for an HTTP/1.1 upgrade, and its
 * handler answers `:status 200` (§5). Any other CONNECT is left to the
 * server's other `'connect'` listeners, or refused (405 without
 * `:protocol websocket`, 404 without a route) when there are none.
 *
 * Receive windows (RFC 9113 §6.9) come from the plugin's `highWaterMark`
 * (bytes): each stream's is `highWaterMark` (SETTINGS_INITIAL_WINDOW_SIZE),
 * what a WebSocket's reading may hold unread, as over TCP; the connection's
 * is SESSION_WINDOW_STREAMS times that (1 MiB by default) instead of Node's
 * 65,535 bytes, which every stream of the connection shares: with it, 100
 * WebSockets echoing 64 KiB messages on one connection move about 3 times
 * as many. It is not larger because Node stops reading an HTTP/2 connection
 * while one of its socket writes waits (Http2Session::MaybeStopReading): when
 * both ends are Node and each may send more than the kernel's socket buffers
 * hold, both stop reading and the connection stalls for good, which a
 * 16 MiB window did.
 */
export function http2WebSockets (fastify: FastifyInstance, matcher: RouteMatcher, maxWebSockets: number, highWaterMark: number): Http2WebSockets | null {
  const server = fastify.server as unknown as Http2Server | Http2SecureServer
  if (typeof server.updateSettings !== 'function') return null
  const streamWindow = Math.min(highWaterMark, MAX_WINDOW)
  const sessionWindow = Math.min(highWaterMark * SESSION_WINDOW_STREAMS, MAX_WINDOW)
  server.updateSettings({ enableConnectProtocol: true, initialWindowSize: streamWindow })
  server.on('session', (session: Http2Session) => { session.setLocalWindowSize(sessionWindow) })
  const sessions = new Set<Http2Session>()
  const streamsOf = new WeakMap<Http2Session, Set<ServerHttp2Stream>>()

  /**
   * A new HTTP/2 connection: once its first SETTINGS is acknowledged, a
   * finite SETTINGS_MAX_CONCURRENT_STREAMS unless the app set one (Node's
   * default is 2^32-1, RFC 9113 §6.5.2); and its WebSockets close with 1001
   * when it times out (Fastify's `http2SessionTimeout` then sends GOAWAY and
   * waits for the open streams) or the client sends GOAWAY.
   */
  function onSession (session: Http2Session): void {
    const streams = new Set<ServerHttp2Stream>()
    streamsOf.set(session, streams)
    session.once('localSettings', (settings) => {
      if (settings.maxConcurrentStreams === NODE_MAX_CONCURRENT_STREAMS && !session.destroyed) {
        session.settings({ maxConcurrentStreams: maxWebSockets + REQUEST_STREAMS })
      }
    })
    const goingAway = (): void => {
      for (const stream of streams) connectionOn(stream)?.close(CloseCode.GoingAway, 'HTTP/2 connection closing')
    }
    session.once('timeout', goingAway)
    session.once('goaway', goingAway)
  }

  /**
   * Counts the stream against its connection's `maxHttp2WebSockets`; over
   * it, resets the stream with REFUSED_STREAM (RFC 9113 §5.1.2: the client
   * may retry it, on another connection) and returns false.
   */
  function admit (stream: ServerHttp2Stream, request: IncomingMessage): boolean {
    const streams = streamsOf.get(stream.session as Http2Session)
    if (streams === undefined) return true
    if (streams.size >= maxWebSockets) {
      if (streams.size === maxWebSockets) {
        fastify.log.warn({ path: pathOf(request), maxHttp2WebSockets: maxWebSockets },
          'WebSocket handshake refused: the HTTP/2 connection carries maxHttp2WebSockets already; further streams are reset (REFUSED_STREAM)')
      }
      stream.close(constants.NGHTTP2_REFUSED_STREAM)
      return false
    }
    streams.add(stream)
    stream.once('close', () => streams.delete(stream))
    return true
  }

  function onConnect (request: Http2ServerRequest | IncomingMessage, response: Http2ServerResponse | Duplex): void {
    if (!(response instanceof Http2ServerResponse)) {
      // An HTTP/1.1 CONNECT (allowHTTP1) asks for a proxy tunnel. Node destroys
      // its socket when nothing listens for 'connect': so do we, unless the app listens.
      if (server.listenerCount('connect') === 1) response.destroy()
      return
    }
    const raw = request as unknown as HandshakeRequest
    // Upgrade tokens compare case-insensitively, as in RFC 6455's `Upgrade: websocket`.
    const isWebSocket = String(raw.headers[':protocol']).toLowerCase() === 'websocket'
    const lookup = isWebSocket ? matcher.lookup(fastify, raw) : undefined
    if (lookup?.kind !== 'websocket') {
      if (server.listenerCount('connect') > 1) return
      if (lookup === undefined) {
        fastify.log.info({ path: pathOf(raw) }, 'CONNECT refused: :protocol is not websocket')
        refuse(raw, response, { status: 405, headers: {}, reason: 'CONNECT is allowed only with :protocol websocket (RFC 8441)' })
      } else {
        refuse(raw, response, notFound(fastify, matcher, raw, lookup))
      }
      return
    }
    if (!admit(response.stream, raw)) return
    checkOrigin(lookup.policies, raw, fastify.log, () => {
      // HAProxy's mapping: the extended CONNECT goes through the router as the GET of an
      // HTTP/1.1 upgrade would, so one route serves both (RFC 8441 §5 keeps :path as the request-target).
      ;(request as { method: string }).method = 'GET'
      const handshake = new ConnectHandshake(response.stream, sessions)
      raw[kHandshake] = handshake
      // The stream's end finishes the response of an answered handshake too, much later.
      response.once('finish', () => { if (!handshake.opened) publishRefused(raw, response.statusCode) })
      fastify.routing(raw, response as never)
    }, (refusal) => refuse(raw, response, refusal))
  }

  server.on('session', onSession)
  server.on('connect', onConnect)
  return {
    close (): void {
      server.off('session', onSession)
      server.off('connect', onConnect)
      for (const session of sessions) session.close()
    }
  }
}

/**
 * An extended CONNECT (RFC 8441 §4-5): answered with `:status 200` on its
 * stream, which then carries the WebSocket's bytes both ways.
 */
class ConnectHandshake implements PendingHandshake {
  readonly head = EMPTY
  /** Answered with `:status 200`: the stream carries a WebSocket. */
  opened = false
  private readonly stream: ServerHttp2Stream
  private readonly sessions: Set<Http2Session>

  constructor (stream: ServerHttp2Stream, sessions: Set<Http2Session>) {
    this.stream = stream
    this.sessions = sessions
  }

  validate (request: IncomingMessage): HandshakeOffer | HandshakeRefusal {
    return validateExtendedConnect(request.headers)
  }

  get answerable (): boolean {
    return !this.stream.closed && this.stream.writable
  }

  open (_response: unknown, protocol: string | undefined, extensions: string): Transport {
    this.opened = true
    const headers: OutgoingHttpHeaders = { ':status': 200 }
    if (protocol !== undefined && protocol !== '') headers['sec-websocket-protocol'] = protocol
    if (extensions !== '') headers['sec-websocket-extensions'] = extensions
    this.stream.respond(headers)
    const session = this.stream.session
    if (session !== undefined && !this.sessions.has(session)) {
      this.sessions.add(session)
      session.once('close', () => this.sessions.delete(session))
    }
    return new Http2Transport(this.stream)
  }
}

/** Answers a CONNECT that is not ours on its own stream; the HTTP/2 connection carries on. */
function refuse (request: IncomingMessage, response: Http2ServerResponse, refusal: HandshakeRefusal): void {
  response.writeHead(refusal.status, { ...refusal.headers, 'content-type': 'text/plain; charset=utf-8' })
  response.end(refusal.reason)
  publishRefused(request, refusal.status, refusal.reason)
}
