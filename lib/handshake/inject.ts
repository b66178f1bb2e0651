import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { publishRefused } from '../diagnostics.js'
import { closeCodeError, closeReasonError, controlPayloadError, HandshakeRefusedError } from '../errors.js'
import { http } from '../builtins.js'
import { encodeClosePayload, isValidWireCode, MAX_CLOSE_REASON } from '../protocol/close.js'
import { CloseCode, MAX_CONTROL_PAYLOAD, Opcode } from '../protocol/constants.js'
import { protocolError, type ProtocolError } from '../protocol/errors.js'
import { encodeFrame } from '../protocol/frame.js'
import { acceptKey, type HandshakeRefusal, refusalResponse } from '../protocol/handshake.js'
import { type MessageHandler, MessageReader } from '../protocol/message.js'
import { FrameParser } from '../protocol/parser.js'
import { ReadyState, toProtocolError, truncateReason } from '../protocol/session.js'
import type { RouteMatcher } from './matcher.js'
import { checkOrigin } from './origin.js'
import { MemoryStream, MemoryTransport } from '../transport/transport.js'
import { type HandshakeRequest, kHandshake, notFound, UpgradeHandshake } from './upgrade.js'
import { toPayload, type WebSocketData } from '../socket/payload.js'

/** What `app.injectWS(path, options)` sends with the opening handshake. */
export interface InjectWSOptions {
  /**
   * Request headers (names in any case). `Host` defaults to `localhost:80`;
   * the handshake's own (`Upgrade`, `Connection`, `Sec-WebSocket-Key`,
   * `Sec-WebSocket-Version`) are set, and `Sec-WebSocket-Extensions` removed:
   * the injected client negotiates no extension.
   */
  headers?: Record<string, string | string[]>
  /** Subprotocols to offer, in order of preference (`Sec-WebSocket-Protocol`, RFC 6455 §4.1). */
  protocols?: string | string[]
  /** The query string: an object of parameters (encoded here), or a string without the '?'. */
  query?: Record<string, string | string[]> | string
  /** Called with the client before the handshake is answered (as @fastify/websocket's `onInit`): attach listeners early. */
  onInit?: (client: InjectedWebSocket) => void
  /** Called with the client once the handshake is answered with 101, before `injectWS()` resolves (as @fastify/websocket's `onOpen`). */
  onOpen?: (client: InjectedWebSocket) => void
}

/** A message the injected client received, as its async iterator yields it. */
export interface InjectedMessage {
  /** The payload; UTF-8 text when `isBinary` is false. */
  data: Buffer
  /** true for a binary message (opcode 0x2), false for text (0x1). */
  isBinary: boolean
}

/** Events of an injected client socket, with their arguments. */
export interface InjectedWebSocketEvents {
  /** A whole message from the server; `data` holds UTF-8 text when `isBinary` is false. */
  message: [data: Buffer, isBinary: boolean]
  /** A ping from the server; the pong has already been sent (RFC 6455 §5.5.2). */
  ping: [data: Buffer]
  /** A pong from the server (§5.5.3). */
  pong: [data: Buffer]
  /** The connection is closed: the server's close code and reason, 1005 for none, 1006 when no close frame came (RFC 6455 §7.1.5). */
  close: [code: number, reason: string]
  /** The server sent a frame a client must refuse; a close frame with `error.closeCode` was sent. */
  error: [error: ProtocolError]
}

/**
 * The `app.injectWS()` decorator. The handshake is a request built on the
 * server's end of an in-memory pair and routed by Fastify's router, as an
 * HTTP/1.1 upgrade is (lib/handshake/upgrade.ts): the origin check before
 * routing, then route hooks and subprotocol choice, and a refusal is an HTTP answer on the pair. Then
 * the route's WebSocket runs over the pair with the real Connection and
 * Session: it is in `app.websocketClients`, and `app.close()` closes it with 1001.
 */
export function createInjector (fastify: FastifyInstance, matcher: RouteMatcher) {
  return async function injectWS (path = '/', options: InjectWSOptions = {}): Promise<InjectedWebSocket> {
    await fastify.ready()
    const [clientEnd, serverEnd] = MemoryStream.pair()
    const key = randomBytes(16).toString('base64')
    const request: HandshakeRequest = new http.IncomingMessage(serverEnd as unknown as Socket)
    request.method = 'GET'
    request.url = withQuery(path, options.query)
    request.httpVersionMajor = 1
    request.httpVersionMinor = 1
    request.httpVersion = '1.1'
    request.headers = handshakeHeaders(options, key)
    request.rawHeaders = Object.entries(request.headers).flatMap(([name, value]) => [name, String(value)])
    request.push(null)
    const client = new InjectedWebSocket(clientEnd, acceptKey(key))
    options.onInit?.(client)
    const refuse = (refusal: HandshakeRefusal): void => {
      serverEnd.end(refusalResponse(refusal))
      publishRefused(request, refusal.status, refusal.reason)
    }
    const lookup = matcher.lookup(fastify, request)
    if (lookup.kind !== 'websocket') refuse(notFound(fastify, matcher, request, lookup))
    else checkOrigin(lookup.policies, request, fastify.log, () => route(request, serverEnd), refuse)
    await client.opened
    options.onOpen?.(client)
    return client
  }

  /** Hands the handshake to the app's router, answered on the pair's server end. */
  function route (request: HandshakeRequest, serverEnd: MemoryStream): void {
    request[kHandshake] = new UpgradeHandshake(new MemoryTransport(serverEnd), Buffer.alloc(0))
    const response = new http.ServerResponse(request)
    response.shouldKeepAlive = false
    // The injected client reads a refusal's body up to the end of the stream.
    response.useChunkedEncodingByDefault = false
    response.assignSocket(serverEnd as unknown as Socket)
    response.on('finish', () => {
      response.detachSocket(serverEnd as unknown as Socket)
      serverEnd.end()
      publishRefused(request, response.statusCode)
    })
    fastify.routing(request, response)
  }
}

function withQuery (path: string, query: InjectWSOptions['query']): string {
  if (query === undefined) return path
  const search = typeof query === 'string' ? query : new URLSearchParams(Object.entries(query).flatMap(([name, value]) =>
    (Array.isArray(value) ? value : [value]).map((item): [string, string] => [name, item]))).toString()
  if (search === '') return path
  return `${path}${path.includes('?') ? '&' : '?'}${search}`
}

function handshakeHeaders (options: InjectWSOptions, key: string): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = { host: 'localhost:80' }
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value
  delete headers['sec-websocket-extensions']
  headers.upgrade = 'websocket'
  headers.connection = 'Upgrade'
  headers['sec-websocket-version'] = '13'
  headers['sec-websocket-key'] = key
  const protocols = options.protocols
  if (protocols !== undefined) headers['sec-websocket-protocol'] = Array.isArray(protocols) ? protocols.join(', ') : protocols
  return headers
}

const EMPTY = Buffer.alloc(0)
const HEAD_END = Buffer.from('\r\n\r\n')

/**
 * The client side of a WebSocket opened by `app.injectWS()`, over an
 * in-memory pair: the API of a client (`send`, `ping`, `pong`, `close`,
 * `terminate`, `readyState`, `protocol`, events `message`, `ping`, `pong`,
 * `close`, `error`), and on the
 * wire what a client sends: masked frames (RFC 6455 §5.3), pongs to pings,
 * the close frame echoed (§5.5.1). Messages that arrive while no `message`
 * listener is attached are queued and delivered to the next one, so that
 * `await once(client, 'message')` twice in a row loses none; or iterate
 * them: `for await (const { data, isBinary } of client)` takes the messages
 * in order while no `message` listener is attached, and ends when the
 * connection has closed and none is left.
 */
export class InjectedWebSocket extends EventEmitter<InjectedWebSocketEvents> implements AsyncIterable<InjectedMessage> {
  /** The subprotocol the server chose, '' for none. */
  protocol = ''
  /** `WebSocket.CONNECTING` (0) to `WebSocket.CLOSED` (3), as the server's socket numbers them. */
  readyState: ReadyState = ReadyState.CONNECTING
  /** @internal Settles with the handshake's answer. */
  readonly opened: Promise<InjectedWebSocket>
  private readonly stream: MemoryStream
  private readonly accept: string
  private readonly parser: FrameParser
  private settle: (error: Error | null) => void = () => {}
  /** Bytes of the handshake's answer read so far; null once it was read. */
  private head: Buffer | null = EMPTY
  private readonly queue: InjectedMessage[] = []
  /** An iterator waiting for the next message or the close. */
  private waiter: (() => void) | null = null
  private closeSent = false
  private closeCode: number = CloseCode.AbnormalClosure
  private closeReason = ''

  /** @internal */
  constructor (stream: MemoryStream, accept: string) {
    super()
    this.stream = stream
    this.accept = accept
    this.parser = new FrameParser(new MessageReader(new ClientFrames(this), Number.MAX_SAFE_INTEGER), false)
    this.opened = new Promise((resolve, reject) => {
      this.settle = (error) => error === null ? resolve(this) : reject(error)
    })
    stream.on('data', (chunk: Buffer) => this.receive(chunk))
    stream.on('end', () => stream.end())
    stream.on('close', () => this.closed())
    // 'newListener' is EventEmitter's own event, outside InjectedWebSocketEvents.
    const emitter: EventEmitter = this
    emitter.on('newListener', (event: string) => {
      if (event === 'message' && this.queue.length > 0) process.nextTick(() => this.flushQueue())
    })
  }

  /** Sends a string as a text message, bytes as a binary one; false, sending nothing, unless OPEN. */
  send (data: WebSocketData): boolean {
    if (this.readyState !== ReadyState.OPEN) return false
    this.write(typeof data === 'string' ? Opcode.Text : Opcode.Binary, toPayload(data))
    return true
  }

  /** Sends a ping with up to 125 bytes of application data (RFC 6455 §5.5.2); false, sending nothing, unless OPEN. */
  ping (data?: WebSocketData): boolean {
    return this.control(Opcode.Ping, data)
  }

  /** Sends an unsolicited pong (RFC 6455 §5.5.3); false, sending nothing, unless OPEN. */
  pong (data?: WebSocketData): boolean {
    return this.control(Opcode.Pong, data)
  }

  /**
   * Starts the closing handshake: a close frame with `code` (1000-1003,
   * 1007-1014 or 3000-4999) and `reason` (at most 123 bytes of UTF-8), or
   * none without a code. Throws FST_WS_INVALID_CLOSE_CODE or
   * FST_WS_INVALID_CLOSE_REASON. `close` follows once the server has closed.
   */
  close (code?: number, reason?: string): void {
    if (code === undefined && reason !== undefined && reason !== '') throw closeReasonError('a close reason needs a close code')
    if (code !== undefined && (!Number.isInteger(code) || !isValidWireCode(code))) throw closeCodeError(code)
    const body = Buffer.from(reason ?? '', 'utf8')
    if (body.length > MAX_CLOSE_REASON) throw closeReasonError('a close reason is at most 123 bytes of UTF-8')
    if (this.readyState !== ReadyState.OPEN) return
    this.sendClose(code ?? CloseCode.NoStatusReceived, body)
  }

  /** Ends the in-memory pair at once, with no closing handshake: the server sees 1006. */
  terminate (): void {
    this.stream.destroy()
  }

  /** @internal A whole message from the server. */
  received (data: Buffer, isBinary: boolean): void {
    if (this.queue.length === 0 && this.listenerCount('message') > 0) {
      this.emit('message', data, isBinary)
      return
    }
    this.queue.push({ data, isBinary })
    this.wake()
  }

  /** The messages in order, while no `message` listener takes them; ends once closed and all are taken. */
  async * [Symbol.asyncIterator] (): AsyncGenerator<InjectedMessage, void, undefined> {
    for (;;) {
      const next = this.queue.shift()
      if (next !== undefined) {
        yield next
      } else if (this.readyState === ReadyState.CLOSED) {
        return
      } else {
        await new Promise<void>((resolve) => { this.waiter = resolve })
      }
    }
  }

  /** @internal "an endpoint MUST send a Pong frame in response" (RFC 6455 §5.5.2), then tell the listeners. */
  pinged (data: Buffer): void {
    if (!this.closeSent) this.write(Opcode.Pong, data)
    this.emit('ping', data)
  }

  /** @internal The server's close frame: echoed unless one was sent (§5.5.1); the server then ends the stream. */
  closeFrame (code: number, reason: string): void {
    this.closeCode = code
    this.closeReason = reason
    this.parser.pause()
    if (!this.closeSent) this.sendClose(code, EMPTY)
  }

  private receive (chunk: Buffer): void {
    if (this.head !== null) {
      chunk = this.readHead(chunk)
      if (chunk.length === 0) return
    }
    if (this.readyState !== ReadyState.OPEN && this.readyState !== ReadyState.CLOSING) return
    try {
      this.parser.push(chunk)
    } catch (error) {
      this.fail(toProtocolError(error))
    }
  }

  /** Reads the handshake's answer; returns the bytes after it (frames, or a refusal's body). */
  private readHead (chunk: Buffer): Buffer {
    const head = Buffer.concat([this.head as Buffer, chunk])
    const end = head.indexOf(HEAD_END)
    if (end === -1) {
      this.head = head
      return EMPTY
    }
    this.head = null
    const [statusLine, ...lines] = head.subarray(0, end).toString('latin1').split('\r\n')
    const status = Number(statusLine.split(' ')[1])
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value
    }
    const rest = head.subarray(end + HEAD_END.length)
    if (status !== 101) {
      this.readBody(status, headers, rest)
      return EMPTY
    }
    if (headers['sec-websocket-accept'] !== this.accept) {
      this.stream.destroy()
      this.settle(new HandshakeRefusedError(status, headers, 'Sec-WebSocket-Accept does not match the key'))
      return EMPTY
    }
    this.protocol = headers['sec-websocket-protocol'] ?? ''
    this.readyState = ReadyState.OPEN
    this.settle(null)
    return rest
  }

  /** A refusal: its body is the rest of the stream, which the server ends. */
  private readBody (status: number, headers: Record<string, string>, start: Buffer): void {
    const chunks = [start]
    this.stream.removeAllListeners('data')
    this.stream.removeAllListeners('close')
    this.stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    this.stream.on('close', () => {
      this.readyState = ReadyState.CLOSED
      this.settle(new HandshakeRefusedError(status, headers, Buffer.concat(chunks).toString('utf8')))
    })
  }

  private control (opcode: number, data: WebSocketData | undefined): boolean {
    const payload = data === undefined ? EMPTY : toPayload(data)
    if (payload.length > MAX_CONTROL_PAYLOAD) throw controlPayloadError()
    if (this.readyState !== ReadyState.OPEN) return false
    this.write(opcode, payload)
    return true
  }

  private write (opcode: number, payload: Buffer): void {
    // "The masking key is a 32-bit value chosen at random" (RFC 6455 §5.3).
    const [header, body] = encodeFrame(opcode, payload, { mask: randomBytes(4) })
    this.stream.cork()
    this.stream.write(header)
    if (body.length > 0) this.stream.write(body)
    this.stream.uncork()
  }

  private sendClose (code: number, reason: Buffer): void {
    this.closeSent = true
    this.readyState = ReadyState.CLOSING
    this.write(Opcode.Close, encodeClosePayload(code, reason))
  }

  /** The server broke a rule a client checks: close with the error's code, then end (RFC 6455 §7.1.7). */
  private fail (error: ProtocolError): void {
    this.parser.pause()
    if (!this.closeSent) this.sendClose(error.closeCode, truncateReason(error.message))
    this.stream.end()
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }

  /** Queued messages to the listeners, while there are (a `once()` listener leaves after one). */
  private flushQueue (): void {
    while (this.queue.length > 0 && this.listenerCount('message') > 0) {
      const { data, isBinary } = this.queue.shift() as InjectedMessage
      this.emit('message', data, isBinary)
    }
  }

  private wake (): void {
    const waiter = this.waiter
    this.waiter = null
    waiter?.()
  }

  private closed (): void {
    const opened = this.readyState !== ReadyState.CONNECTING
    this.readyState = ReadyState.CLOSED
    if (!opened) {
      this.settle(new HandshakeRefusedError(0, {}, 'the stream closed before the handshake was answered'))
      return
    }
    // Messages still queued go first, to a listener attached in the meantime.
    this.flushQueue()
    this.wake()
    this.emit('close', this.closeCode, this.closeReason)
  }
}

/** What the client's parser reports, handed to the client's private handling. */
class ClientFrames implements MessageHandler {
  private readonly client: InjectedWebSocket

  constructor (client: InjectedWebSocket) {
    this.client = client
  }

  message (data: Buffer, isBinary: boolean): void {
    this.client.received(data, isBinary)
  }

  /** Never called: the client offers no extension, so the parser refuses RSV1. */
  compressedMessage (): void {
    throw protocolError('WS_ERR_UNEXPECTED_RSV_1', 'RSV1 set without a negotiated extension')
  }

  ping (data: Buffer): void {
    this.client.pinged(data)
  }

  pong (data: Buffer): void {
    this.client.emit('pong', data)
  }

  closeFrame (code: number, reason: string): void {
    this.client.closeFrame(code, reason)
  }
}
