/**
 * Shared helpers of the permessage-deflate (RFC 7692) tests: a Fastify app on
 * an ephemeral 127.0.0.1 port, the raw node:net client of test/support that
 * writes exact bytes (masked frames built with encodeFrame) and reads the
 * server's exact frames back, `ws` 8 as a compressing client with bounded waits, the payload
 * transforms of RFC 7692 §7.2.1/§7.2.2 done with node:zlib on the client
 * side, and probes for zlib contexts and memory.
 */
import { createHook } from 'node:async_hooks'
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket, { type ClientOptions, type RawData } from 'ws'
import fastifyRfc6455, { type FastifyRfc6455Options, type WebSocket as ServerSocket } from '../../lib/index.js'
import { closeApp, listen, withTimeout, type Teardown } from '../support/app.js'
import { RawClients, type RawClient } from '../support/raw-client.js'
import { collectGarbage, pseudoRandomBytes } from '../support/payloads.js'

export { withTimeout, type Teardown } from '../support/app.js'
export { clientFrame, upgradeRequest } from '../support/frames.js'
export type { RawClient, RawFrame } from '../support/raw-client.js'
export { pseudoRandomBytes } from '../support/payloads.js'

/** The sync-flush tail that RFC 7692 §7.2.1 removes from each compressed message. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

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
  const port = await listen(app)
  const raws = new RawClients(port)
  const clients = new Set<WsClient>()
  t.teardown(async () => {
    // Each client ends with a close frame: a bare TCP FIN leaves the server's
    // side open until the close timeout (see the report on Connection).
    for (const raw of raws) raw.closeAndDestroy()
    await Promise.all([...clients].map((client) => client.closeGracefully()))
    await closeApp(app)
  })
  const harness: Harness = {
    app,
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    raw: () => raws.connect(),
    rawWebSocket: (path, extensions) => raws.webSocket(path, { extensions }),
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
