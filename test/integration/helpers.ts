/**
 * Shared helpers of the integration tests: a Fastify app on an ephemeral
 * 127.0.0.1 port, undici's WebSocket with bounded waits, and a raw node:net
 * client that writes exact bytes (masked frames built with encodeFrame) and
 * reads the server's exact bytes back (HTTP responses and frames).
 */
import { connect, type Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'undici'
import { encodeFrame, type EncodeOptions } from '../../lib/protocol/frame.js'

/** Upper bound of every wait for a socket event, in milliseconds. */
export const WAIT_MS = 5000

/** The sample Sec-WebSocket-Key of RFC 6455 §1.3 and its Sec-WebSocket-Accept. */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
export const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

/** The masking key of the examples in RFC 6455 §5.7. */
export const MASKING_KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d)

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

/** Resolves after `ms` milliseconds. */
export function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A listening app and the clients opened against it, all closed at teardown. */
export interface Harness {
  port: number
  /** `ws://127.0.0.1:port` + path. */
  wsUrl (path: string): string
  /** `http://127.0.0.1:port` + path. */
  httpUrl (path: string): string
  /** Opens an undici WebSocket and waits for `open`. */
  client (path: string, protocols?: string | string[]): Promise<TestClient>
  /** Connects a raw TCP client. */
  raw (): Promise<RawClient>
  /** Connects a raw client and completes an opening handshake (throws unless 101). */
  rawWebSocket (path: string, request?: UpgradeRequestOptions): Promise<RawClient>
}

/** Listens on an ephemeral 127.0.0.1 port; teardown resets raw clients, closes undici clients, then closes the app. */
export async function start (t: Teardown, app: FastifyInstance): Promise<Harness> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const raws = new Set<RawClient>()
  const clients = new Set<TestClient>()
  t.teardown(async () => {
    // A reset, not a FIN: the server learns at once that the connection is gone.
    for (const raw of raws) raw.reset()
    for (const client of clients) client.ws.close()
    if (app.server.listening) await withTimeout(app.close(), 'app.close() at teardown', 10_000)
  })
  const harness: Harness = {
    port,
    wsUrl: (path) => `ws://127.0.0.1:${port}${path}`,
    httpUrl: (path) => `http://127.0.0.1:${port}${path}`,
    async client (path, protocols) {
      const client = await TestClient.open(harness.wsUrl(path), protocols)
      clients.add(client)
      return client
    },
    async raw () {
      const raw = await RawClient.connect(port)
      raws.add(raw)
      return raw
    },
    async rawWebSocket (path, request) {
      const raw = await harness.raw()
      raw.write(upgradeRequest(path, request))
      const response = await raw.readHttpResponse()
      if (response.status !== 101) throw new Error(`expected 101, got ${response.statusLine}`)
      return raw
    }
  }
  return harness
}

// undici's WebSocket

/** What the client's `close` event carried. */
export interface ClientClose {
  code: number
  reason: string
  wasClean: boolean
}

/** An undici WebSocket whose messages queue up for `nextMessage()`; binaryType is 'arraybuffer'. */
export class TestClient {
  readonly ws: WebSocket
  readonly closed: Promise<ClientClose>
  private readonly messages: Array<string | ArrayBuffer> = []
  private waiter: (() => void) | null = null

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.binaryType = 'arraybuffer'
    ws.addEventListener('message', (event) => {
      this.messages.push(event.data as string | ArrayBuffer)
      this.wake()
    })
    this.closed = new Promise((resolve) => {
      ws.addEventListener('close', (event) => {
        resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean })
        this.wake()
      })
    })
  }

  /** Opens a WebSocket and waits for `open`; rejects when it closes first. */
  static async open (url: string, protocols?: string | string[]): Promise<TestClient> {
    const client = new TestClient(new WebSocket(url, protocols))
    const opened = new Promise<void>((resolve, reject) => {
      client.ws.addEventListener('open', () => resolve())
      client.closed.then((close) => reject(new Error(`closed before open: ${close.code}`)), reject)
    })
    await withTimeout(opened, `open of ${url}`)
    return client
  }

  send (data: string | ArrayBuffer | ArrayBufferView): void {
    this.ws.send(data)
  }

  /** The next message, in arrival order. */
  async nextMessage (): Promise<string | ArrayBuffer> {
    const next = async (): Promise<string | ArrayBuffer> => {
      while (this.messages.length === 0) {
        if (this.ws.readyState === WebSocket.CLOSED) throw new Error('closed while waiting for a message')
        await new Promise<void>((resolve) => { this.waiter = resolve })
      }
      return this.messages.shift() as string | ArrayBuffer
    }
    return withTimeout(next(), 'a message')
  }

  /** The `close` event. */
  waitClose (): Promise<ClientClose> {
    return withTimeout(this.closed, 'the client close event')
  }

  private wake (): void {
    const waiter = this.waiter
    this.waiter = null
    waiter?.()
  }
}

// Raw node:net client

/** An HTTP response read off a raw socket. Header names are lower case; repeated headers are joined with ', '. */
export interface RawResponse {
  statusLine: string
  status: number
  headers: Record<string, string>
  /** Header lines as sent, for checks on repetition and order. */
  headerLines: string[]
  body: Buffer
}

/** A frame read off a raw socket, with its exact bytes. */
export interface RawFrame {
  fin: boolean
  rsv1: boolean
  opcode: number
  masked: boolean
  payload: Buffer
  bytes: Buffer
}

/** A TCP client on 127.0.0.1 that reads exact byte counts and reports the server's FIN. */
export class RawClient {
  readonly socket: Socket
  /** The client's TCP port, which the server sees as `request.socket.remotePort`. */
  readonly localPort: number
  /** Resolves when the server ends its side (FIN received). */
  readonly ended: Promise<void>
  /** Resolves when the TCP connection is fully closed. */
  readonly closed: Promise<void>
  private buffer: Buffer = Buffer.alloc(0)
  private endedFlag = false
  private waiter: (() => void) | null = null

  private constructor (socket: Socket) {
    this.socket = socket
    this.localPort = socket.localPort ?? 0
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
      this.wake()
    })
    socket.on('error', () => { /* ECONNRESET after a destroy: 'close' follows */ })
    this.ended = new Promise((resolve) => socket.once('end', () => {
      this.endedFlag = true
      this.wake()
      resolve()
    }))
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.endedFlag = true
      this.wake()
      resolve()
    }))
  }

  static async connect (port: number): Promise<RawClient> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    }), 'TCP connect')
    return new RawClient(socket)
  }

  write (data: string | Uint8Array | Uint8Array[]): void {
    if (Array.isArray(data)) {
      for (const piece of data) this.socket.write(piece)
    } else {
      this.socket.write(data)
    }
  }

  /** Writes `bytes` one byte per TCP segment (Nagle off, a pause between bytes), so the server reads them one at a time. */
  async writeBytewise (bytes: Uint8Array): Promise<void> {
    this.socket.setNoDelay(true)
    for (const byte of bytes) {
      this.socket.write(Uint8Array.of(byte))
      await delay(2)
    }
  }

  /** Sends our FIN. */
  end (): void {
    this.socket.end()
  }

  destroy (): void {
    this.socket.destroy()
  }

  /** Closes the connection with a TCP reset (RST) instead of a FIN. */
  reset (): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy()
  }

  /** Bytes received and not read yet. */
  unread (): Buffer {
    return this.buffer
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
    const headerLines = lines.slice(1)
    const headers: Record<string, string> = {}
    for (const line of headerLines) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value
    }
    const length = headers['content-length'] === undefined ? 0 : Number(headers['content-length'])
    const body = length > 0 ? await this.read(length) : Buffer.alloc(0)
    return { statusLine, status: Number(statusLine.split(' ')[1]), headers, headerLines, body }
  }

  /** One server frame (unmasked, RFC 6455 §5.1), with its exact bytes. */
  async readFrame (): Promise<RawFrame> {
    const bytes = await withTimeout(this.take(() => frameLength(this.buffer)), 'a frame')
    const masked = (bytes[1] & 0x80) !== 0
    let length = bytes[1] & 0x7f
    let offset = 2
    if (length === 126) {
      length = bytes.readUInt16BE(2)
      offset = 4
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(2))
      offset = 10
    }
    if (masked) offset += 4
    return {
      fin: (bytes[0] & 0x80) !== 0,
      rsv1: (bytes[0] & 0x40) !== 0,
      opcode: bytes[0] & 0x0f,
      masked,
      payload: bytes.subarray(offset, offset + length),
      bytes
    }
  }

  /** Waits for the server's FIN; `unread()` then holds whatever came before it and was not read. */
  waitForEnd (): Promise<void> {
    return withTimeout(this.ended, 'the server to end the TCP connection')
  }

  /** Removes and returns the first `size()` bytes once `size()` is not -1. */
  private async take (size: () => number): Promise<Buffer> {
    for (;;) {
      const n = size()
      if (n !== -1) {
        const out = this.buffer.subarray(0, n)
        this.buffer = this.buffer.subarray(n)
        return out
      }
      if (this.endedFlag) throw new Error(`connection ended with ${this.buffer.length} unread bytes: ${this.buffer.toString('hex')}`)
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

// Bytes the raw client writes

export interface UpgradeRequestOptions {
  method?: string
  /** HTTP version of the request line. Default '1.1'. */
  httpVersion?: string
  /** Default headers to leave out, by name (case-insensitive). */
  omit?: string[]
  /** Default headers to replace, and headers to add, by name. */
  set?: Record<string, string>
  /** Header lines added as they are, after the others (for repeated headers). */
  extraLines?: string[]
}

/**
 * An opening handshake (RFC 6455 §4.1): Host, Upgrade: websocket,
 * Connection: Upgrade, the RFC's sample Sec-WebSocket-Key, version 13.
 */
export function upgradeRequest (path: string, options: UpgradeRequestOptions = {}): string {
  const headers = new Map<string, [string, string]>([
    ['host', ['Host', '127.0.0.1']],
    ['upgrade', ['Upgrade', 'websocket']],
    ['connection', ['Connection', 'Upgrade']],
    ['sec-websocket-key', ['Sec-WebSocket-Key', SAMPLE_KEY]],
    ['sec-websocket-version', ['Sec-WebSocket-Version', '13']]
  ])
  for (const name of options.omit ?? []) headers.delete(name.toLowerCase())
  for (const [name, value] of Object.entries(options.set ?? {})) headers.set(name.toLowerCase(), [name, value])
  const lines = [`${options.method ?? 'GET'} ${path} HTTP/${options.httpVersion ?? '1.1'}`]
  for (const [name, value] of headers.values()) lines.push(`${name}: ${value}`)
  lines.push(...(options.extraLines ?? []))
  return lines.join('\r\n') + '\r\n\r\n'
}

/** One client frame, masked with MASKING_KEY unless the options give another key. */
export function clientFrame (opcode: number, payload: Uint8Array | string = new Uint8Array(0), options: EncodeOptions = {}): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  return Buffer.concat(encodeFrame(opcode, bytes, { mask: MASKING_KEY, ...options }))
}

/** The exact bytes of a server close frame: 0x88, payload length, close code, UTF-8 reason (RFC 6455 §5.5.1). */
export function serverCloseFrame (code: number, reason = ''): Buffer {
  const reasonBytes = Buffer.from(reason, 'utf8')
  return Buffer.from([0x88, 2 + reasonBytes.length, code >> 8, code & 0xff, ...reasonBytes])
}

// Payloads

/**
 * A string of exactly `bytes` bytes of UTF-8 mixing 1-, 2-, 3- and 4-byte
 * sequences ("aé€😀" is 10 bytes), padded with ASCII.
 */
export function utf8Text (bytes: number): string {
  return 'aé€😀'.repeat(Math.floor(bytes / 10)) + 'z'.repeat(bytes % 10)
}

/** `length` bytes of a non-repeating-looking pattern. */
export function binaryPayload (length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff
  return bytes
}

// Logs

/** A pino destination that keeps every log record, parsed. */
export function captureLogs (): { stream: { write (line: string): void }, records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = []
  return {
    stream: { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } },
    records
  }
}
