/**
 * Shared helpers of the permessage-deflate (RFC 7692) tests: a Fastify app on
 * an ephemeral 127.0.0.1 port, a raw node:net client that writes exact bytes
 * (masked frames built with encodeFrame) and reads the server's exact frames
 * back, `ws` 8 as a compressing client with bounded waits, the payload
 * transforms of RFC 7692 §7.2.1/§7.2.2 done with node:zlib on the client
 * side, and probes for zlib contexts and memory.
 */
import { createHook } from 'node:async_hooks'
import { connect, type Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket, { type ClientOptions, type RawData } from 'ws'
import fastifyRfc6455, { type FastifyRfc6455Options, type WebSocket as ServerSocket } from '../../lib/index.js'
import { encodeFrame, type EncodeOptions } from '../../lib/protocol/frame.js'

/** Upper bound of every wait for a socket event, in milliseconds. */
export const WAIT_MS = 5000

/** The sample Sec-WebSocket-Key of RFC 6455 §1.3. */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
/** The masking key of the examples in RFC 6455 §5.7. */
export const MASKING_KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d)
/** The sync-flush tail that RFC 7692 §7.2.1 removes from each compressed message. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

/** The subset of tap's Test the helpers need. */
export interface Teardown {
  teardown (fn: () => unknown): void
}

/** Rejects with `label` when `promise` has not settled within `ms`. */
export async function withTimeout<T> (promise: Promise<T>, label: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Hex of bytes, for messages: "c1 07 f2 ...". */
export function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ')
}

/** Bytes from a hex string with optional spaces: bytes('c1 07 f2'). */
export function bytes (text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex')
}

// The app

/** A listening app; teardown destroys raw clients and ws clients, then closes the app. */
export interface Harness {
  app: FastifyInstance
  port: number
  /** `ws://127.0.0.1:port` + path. */
  url (path: string): string
  /** Connects a raw TCP client. */
  raw (): Promise<RawClient>
  /**
   * Connects a raw client and completes an opening handshake offering
   * `extensions` (no Sec-WebSocket-Extensions header when undefined).
   * Throws unless the answer is 101; the response is on `client.response`.
   */
  rawWebSocket (path: string, extensions?: string): Promise<RawClient>
  /** Opens a `ws` client and waits for `open`. */
  ws (path: string, options?: ClientOptions): Promise<WsClient>
}

/**
 * An app with the plugin registered with `options` and `routes` added, on an
 * ephemeral port of 127.0.0.1.
 */
export async function start (t: Teardown, options: FastifyRfc6455Options, routes: (app: FastifyInstance) => void): Promise<Harness> {
  const app = Fastify()
  // A short close timeout bounds the teardown of connections a test left half-way.
  await app.register(fastifyRfc6455, { closeTimeout: 1000, ...options })
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const raws = new Set<RawClient>()
  const clients = new Set<WsClient>()
  t.teardown(async () => {
    // Each client ends with a close frame: a bare TCP FIN leaves the server's
    // side open until the close timeout (see the report on Connection).
    for (const raw of raws) raw.closeAndDestroy()
    await Promise.all([...clients].map((client) => client.closeGracefully()))
    if (app.server.listening) await withTimeout(app.close(), 'app.close() at teardown', 10_000)
  })
  const harness: Harness = {
    app,
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    async raw () {
      const raw = await RawClient.connect(port)
      raws.add(raw)
      return raw
    },
    async rawWebSocket (path, extensions) {
      const raw = await harness.raw()
      await raw.handshake(path, extensions)
      if (raw.response?.status !== 101) throw new Error(`expected 101, got ${raw.response?.statusLine}`)
      return raw
    },
    async ws (path, clientOptions) {
      const client = await WsClient.open(harness.url(path), clientOptions)
      clients.add(client)
      return client
    }
  }
  return harness
}

/** Query of the echo route: how the echo is sent. */
export type EchoMode = 'threshold' | 'always' | 'never'

/**
 * An echo route at `path`: every message goes back with the same opcode,
 * compressed per `?compress=` (always, never, or by the threshold, the
 * default). Each message's server-side socket is on `sockets`.
 */
export function echoRoute (app: FastifyInstance, path = '/echo', sockets: ServerSocket[] = []): void {
  app.get<{ Querystring: { compress?: EchoMode } }>(path, { ws: true }, (socket, request) => {
    sockets.push(socket)
    const mode = request.query.compress ?? 'threshold'
    const options = mode === 'always' ? { compress: true } : mode === 'never' ? { compress: false } : undefined
    socket.on('message', (data, isBinary) => {
      socket.send(isBinary ? data : data.toString('utf8'), options)
    })
  })
}

// Raw node:net client

/** An HTTP response read off a raw socket. Header names are lower case; repeated headers are joined with ', '. */
export interface RawResponse {
  statusLine: string
  status: number
  headers: Record<string, string>
  body: Buffer
}

/** A frame read off a raw socket, with its exact bytes. */
export interface RawFrame {
  fin: boolean
  rsv1: boolean
  rsv2: boolean
  rsv3: boolean
  opcode: number
  payload: Buffer
  /** The whole frame as it came: header then payload. */
  bytes: Buffer
}

/** A TCP client on 127.0.0.1 that reads exact byte counts and reports the server's FIN. */
export class RawClient {
  readonly socket: Socket
  /** The handshake's response, once `handshake()` has read it. */
  response: RawResponse | null = null
  private buffer: Buffer = Buffer.alloc(0)
  private ended = false
  private waiter: (() => void) | null = null

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
      this.wake()
    })
    socket.on('error', () => { /* ECONNRESET after a destroy: 'close' follows */ })
    const ended = (): void => {
      this.ended = true
      this.wake()
    }
    socket.once('end', ended)
    socket.once('close', ended)
  }

  static async connect (port: number): Promise<RawClient> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    }), 'TCP connect')
    return new RawClient(socket)
  }

  /** Sends an opening handshake offering `extensions` and reads the response. */
  async handshake (path: string, extensions?: string): Promise<RawResponse> {
    this.write(upgradeRequest(path, extensions))
    this.response = await this.readHttpResponse()
    return this.response
  }

  write (data: string | Uint8Array): void {
    this.socket.write(data)
  }

  /** Writes `data` one byte per write call, each in its own TCP segment (Nagle off). */
  async writeBytewise (data: Uint8Array): Promise<void> {
    this.socket.setNoDelay(true)
    for (const byte of data) {
      await new Promise<void>((resolve, reject) => this.socket.write(Uint8Array.of(byte), (error) => error == null ? resolve() : reject(error)))
    }
  }

  /** Sends one masked client frame (RFC 6455 §5.3). */
  sendFrame (opcode: number, payload: Uint8Array | string = Buffer.alloc(0), options: EncodeOptions = {}): void {
    this.write(clientFrame(opcode, payload, options))
  }

  destroy (): void {
    this.socket.destroy()
  }

  /** Sends a close frame without a body, unless the connection is gone, then destroys the socket. */
  closeAndDestroy (): void {
    if (!this.ended && this.socket.writable) this.socket.write(clientFrame(0x8))
    this.socket.destroy()
  }

  /** Exactly `n` bytes; rejects when the server ends the connection first. */
  read (n: number): Promise<Buffer> {
    return withTimeout(this.take(() => this.buffer.length >= n ? n : -1), `${n} bytes`)
  }

  /** One HTTP response: status line, headers and a Content-Length body. */
  async readHttpResponse (): Promise<RawResponse> {
    const head = await withTimeout(this.take(() => {
      const end = this.buffer.indexOf('\r\n\r\n')
      return end === -1 ? -1 : end + 4
    }), 'an HTTP response head')
    const lines = head.subarray(0, head.length - 4).toString('latin1').split('\r\n')
    const statusLine = lines[0]
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value
    }
    const length = headers['content-length'] === undefined ? 0 : Number(headers['content-length'])
    const body = length > 0 ? await this.read(length) : Buffer.alloc(0)
    return { statusLine, status: Number(statusLine.split(' ')[1]), headers, body }
  }

  /** One server frame (unmasked, RFC 6455 §5.1), with its exact bytes. */
  async readFrame (): Promise<RawFrame> {
    const frame = await withTimeout(this.take(() => frameLength(this.buffer)), 'a frame')
    let length = frame[1] & 0x7f
    let offset = 2
    if (length === 126) {
      length = frame.readUInt16BE(2)
      offset = 4
    } else if (length === 127) {
      length = Number(frame.readBigUInt64BE(2))
      offset = 10
    }
    if ((frame[1] & 0x80) !== 0) offset += 4
    return {
      fin: (frame[0] & 0x80) !== 0,
      rsv1: (frame[0] & 0x40) !== 0,
      rsv2: (frame[0] & 0x20) !== 0,
      rsv3: (frame[0] & 0x10) !== 0,
      opcode: frame[0] & 0x0f,
      payload: frame.subarray(offset, offset + length),
      bytes: frame
    }
  }

  /**
   * Reads the server's close frame after a failure and checks the TCP
   * connection ends: returns the close code (RFC 6455 §5.5.1), skipping any
   * data frames queued before it.
   */
  async readCloseCode (): Promise<number> {
    for (;;) {
      const frame = await this.readFrame()
      if (frame.opcode !== 0x8) continue
      await this.waitForEnd()
      return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
    }
  }

  /** Waits for the server's FIN or a reset. */
  async waitForEnd (): Promise<void> {
    await withTimeout(this.take(() => this.ended ? 0 : -1, true), 'the server to end the TCP connection')
  }

  /** Removes and returns the first `size()` bytes once `size()` is not -1. */
  private async take (size: () => number, untilEnd = false): Promise<Buffer> {
    for (;;) {
      const n = size()
      if (n !== -1) {
        const out = this.buffer.subarray(0, n)
        this.buffer = this.buffer.subarray(n)
        return out
      }
      if (this.ended && !untilEnd) throw new Error(`connection ended with ${this.buffer.length} unread bytes: ${hex(this.buffer.subarray(0, 64))}`)
      await new Promise<void>((resolve) => { this.waiter = resolve })
    }
  }

  private wake (): void {
    const waiter = this.waiter
    this.waiter = null
    waiter?.()
  }
}

/** Total bytes of the server frame at the start of `buffer`, or -1 when it has not all arrived. */
function frameLength (buffer: Buffer): number {
  if (buffer.length < 2) return -1
  let length = buffer[1] & 0x7f
  let header = 2
  if (length === 126) {
    if (buffer.length < 4) return -1
    length = buffer.readUInt16BE(2)
    header = 4
  } else if (length === 127) {
    if (buffer.length < 10) return -1
    length = Number(buffer.readBigUInt64BE(2))
    header = 10
  }
  if ((buffer[1] & 0x80) !== 0) header += 4
  return buffer.length >= header + length ? header + length : -1
}

/**
 * An opening handshake (RFC 6455 §4.1) with the RFC's sample key, offering
 * `extensions` in Sec-WebSocket-Extensions when given.
 */
export function upgradeRequest (path: string, extensions?: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n` +
    (extensions === undefined ? '' : `Sec-WebSocket-Extensions: ${extensions}\r\n`) + '\r\n'
}

/** One client frame, masked with MASKING_KEY unless the options give another key. */
export function clientFrame (opcode: number, payload: Uint8Array | string = Buffer.alloc(0), options: EncodeOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  return Buffer.concat(encodeFrame(opcode, data, { mask: MASKING_KEY, ...options }))
}

// RFC 7692 §7.2.1 and §7.2.2 on the client side, with node:zlib

/**
 * Compresses one message as §7.2.1 says, on a fresh context: raw DEFLATE,
 * Z_SYNC_FLUSH, the trailing 00 00 ff ff removed.
 */
export function compressMessage (data: Uint8Array, windowBits = 15): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH, windowBits })
  return out.subarray(0, out.length - 4)
}

/** Inflates one compressed message as §7.2.2 says (00 00 ff ff appended), on a fresh context. */
export function inflateMessage (payload: Uint8Array, windowBits = 15): Buffer {
  return inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH, windowBits })
}

/**
 * A client's decompressor with context takeover (§7.2.2): each message
 * inflates after all the earlier ones of the connection, replayed with their
 * tails, so that matches into earlier messages resolve.
 */
export class ContextInflater {
  private readonly stream: Buffer[] = []
  private produced = 0

  constructor (private readonly windowBits = 15) {}

  inflate (payload: Uint8Array): Buffer {
    this.stream.push(Buffer.from(payload), TAIL)
    const all = inflateRawSync(Buffer.concat(this.stream), { finishFlush: constants.Z_SYNC_FLUSH, windowBits: this.windowBits })
    const message = all.subarray(this.produced)
    this.produced = all.length
    return message
  }
}

// ws 8 as a client

/** What a ws client's `close` event carried. */
export interface WsClose {
  code: number
  reason: string
}

/** A received message: its bytes and whether it was binary. */
export interface WsMessage {
  data: Buffer
  isBinary: boolean
}

/** A `ws` client whose messages and pongs queue up for bounded waits. */
export class WsClient {
  readonly ws: WebSocket
  readonly closed: Promise<WsClose>
  /** The Sec-WebSocket-Extensions of the server's 101 response, '' when none (ws.extensions has the names only). */
  extensionsHeader = ''
  private readonly messages: WsMessage[] = []
  private readonly pongs: Buffer[] = []
  private waiter: (() => void) | null = null
  private isClosed = false

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.messages.push({ data: toBuffer(data), isBinary })
      this.wake()
    })
    ws.on('pong', (data: Buffer) => {
      this.pongs.push(data)
      this.wake()
    })
    ws.on('error', () => { /* 'close' follows */ })
    this.closed = new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => {
      this.isClosed = true
      this.wake()
      resolve({ code, reason: reason.toString() })
    }))
  }

  static async open (url: string, options?: ClientOptions): Promise<WsClient> {
    const client = new WsClient(new WebSocket(url, options))
    client.ws.once('upgrade', (response) => {
      client.extensionsHeader = String(response.headers['sec-websocket-extensions'] ?? '')
    })
    const opened = new Promise<void>((resolve, reject) => {
      client.ws.once('open', () => resolve())
      client.closed.then((close) => reject(new Error(`closed before open: ${close.code}`)), reject)
    })
    await withTimeout(opened, `open of ${url}`)
    return client
  }

  /** Sends and waits until ws has handed the frame to the socket. */
  send (data: string | Buffer, options: { compress?: boolean, binary?: boolean } = {}): Promise<void> {
    return withTimeout(new Promise<void>((resolve, reject) => {
      this.ws.send(data, { binary: typeof data !== 'string', ...options }, (error) => error == null ? resolve() : reject(error))
    }), 'ws send')
  }

  /** The next message, in arrival order. */
  nextMessage (): Promise<WsMessage> {
    return withTimeout(this.next(this.messages, 'message'), 'a message')
  }

  /** The next pong, in arrival order. */
  nextPong (): Promise<Buffer> {
    return withTimeout(this.next(this.pongs, 'pong'), 'a pong')
  }

  waitClose (): Promise<WsClose> {
    return withTimeout(this.closed, 'the ws close event')
  }

  /** Runs the closing handshake when the connection is open (bounded), then destroys the socket. */
  async closeGracefully (): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(1000)
      await withTimeout(this.closed, 'the closing handshake', 2000).catch(() => {})
    }
    this.ws.terminate()
  }

  private async next<T> (queue: T[], what: string): Promise<T> {
    while (queue.length === 0) {
      if (this.isClosed) throw new Error(`closed while waiting for a ${what}`)
      await new Promise<void>((resolve) => { this.waiter = resolve })
    }
    return queue.shift() as T
  }

  private wake (): void {
    const waiter = this.waiter
    this.waiter = null
    waiter?.()
  }
}

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

// Payloads

/** Deterministic pseudo-random bytes (xorshift32), so a failure can be replayed. */
export function pseudoRandomBytes (length: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.allocUnsafe(length)
  let x = seed >>> 0
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

/** Deterministic text of exactly `length` bytes: words from a small vocabulary, some multi-byte. */
export function pseudoRandomText (length: number, seed = 7): string {
  const words = ['alpha ', 'beta ', 'gamma ', 'delta ', 'épsilon ', 'ζήτα ', 'eta ', '€uro ', 'theta ', 'iota ']
  const noise = pseudoRandomBytes(Math.ceil(length / 4) + 1, seed)
  let text = ''
  let size = 0
  for (let i = 0; size < length; i++) {
    const word = words[noise[i % noise.length] % words.length]
    const wordSize = Buffer.byteLength(word)
    if (size + wordSize > length) {
      text += 'x'.repeat(length - size)
      break
    }
    text += word
    size += wordSize
  }
  return text
}

// Probes

/**
 * Counts node:zlib contexts (async resources of type ZLIB) created while
 * enabled, and those still open (a context's destroy hook runs when it is closed).
 */
export class ZlibProbe {
  created = 0
  private readonly live = new Set<number>()
  private readonly hook = createHook({
    init: (id, type) => {
      if (type !== 'ZLIB') return
      this.created++
      this.live.add(id)
    },
    destroy: (id) => { this.live.delete(id) }
  })

  enable (): this {
    this.hook.enable()
    return this
  }

  disable (): void {
    this.hook.disable()
  }

  /** Contexts created since enabled and not closed yet. */
  get open (): number {
    return this.live.size
  }
}

let gcFunction: (() => void) | null = null

/** A full garbage collection (V8's gc, exposed at run time). */
export function collectGarbage (): void {
  if (gcFunction === null) {
    setFlagsFromString('--expose-gc')
    gcFunction = runInNewContext('gc') as () => void
  }
  gcFunction()
}

/** Memory figures of this process after a full GC, in bytes. */
export interface MemorySample {
  rss: number
  heapUsed: number
  external: number
  arrayBuffers: number
}

/** Lets pending callbacks run, collects garbage twice, and samples memory. */
export async function sampleMemory (): Promise<MemorySample> {
  for (let i = 0; i < 2; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    collectGarbage()
  }
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage()
  return { rss, heapUsed, external, arrayBuffers }
}

/** `after - before` per `count`, in KiB with one decimal, for reports. */
export function perUnitKiB (before: MemorySample, after: MemorySample, count: number): Record<keyof MemorySample, number> {
  const per = (key: keyof MemorySample): number => Math.round((after[key] - before[key]) / count / 1024 * 10) / 10
  return { rss: per('rss'), heapUsed: per('heapUsed'), external: per('external'), arrayBuffers: per('arrayBuffers') }
}
