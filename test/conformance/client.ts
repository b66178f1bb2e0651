/**
 * The helper module of the RFC 6455 conformance suite (the Autobahn|Testsuite
 * case categories, rewritten from their published descriptions):
 *
 * - `startEchoServer()`: an in-process echo app shaped like examples/echo.ts
 *   (Fastify + this plugin, route `/`, text echoed as text, binary as binary)
 *   on 127.0.0.1, port 0, that also records what the application saw;
 * - `RawClient`: a `node:net` client that performs the opening handshake,
 *   writes exact bytes (in one write, frame by frame, in chops, one byte at a
 *   time), parses the server's frames with a parser of its own, and records
 *   when the server ends the TCP connection;
 * - the transport, a parameter: TCP (an HTTP/1.1 upgrade) by default, or with
 *   `CONFORMANCE_TRANSPORT=http2` one HTTP/2 stream per client (an extended
 *   CONNECT, RFC 8441) on an h2c echo app, where END_STREAM stands for the
 *   server's FIN and RST_STREAM for a TCP reset (§5). test/conformance/http2.test.ts
 *   runs every case file that way;
 * - frame builders for masked client frames (through `encodeFrame` with a
 *   masking key) and hand-made bytes for malformed ones;
 * - assertions on the server's frames: exact header bytes (FIN, RSV1-3 clear,
 *   no MASK bit, the shortest payload length form, RFC 6455 §5.2), exact
 *   payloads, close codes.
 *
 * Every wait is bounded: a bug fails a test instead of hanging it.
 */
import { createHash } from 'node:crypto'
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import fastifyRfc6455 from '../../lib/index.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { listen } from '../support/app.js'

/** The GUID of RFC 6455 §1.3, written out here so that the handshake check does not lean on the library. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Largest message the echo app takes: section 9 sends up to 16 MiB. */
export const MAX_PAYLOAD = 16 * 1024 * 1024

/** Default bound of one wait, in milliseconds. */
export const WAIT = 5000

/** What carries the WebSockets of this run: TCP, or HTTP/2 streams (`CONFORMANCE_TRANSPORT=http2`). */
export const TRANSPORT: 'tcp' | 'http2' = process.env.CONFORMANCE_TRANSPORT === 'http2' ? 'http2' : 'tcp'

/** Opcodes (RFC 6455 §5.2), spelled out independently of the library. */
export const OP = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa
} as const

// ---------------------------------------------------------------------------
// The echo app
// ---------------------------------------------------------------------------

/** What the application of one connection saw, in order. */
export interface AppLog {
  /** Messages delivered by the `message` event: length and type only. */
  messages: Array<{ length: number, isBinary: boolean }>
  /** `ping` events, with their application data. */
  pings: Buffer[]
  /** `error` events: the close code each failure sent. */
  errors: number[]
  /** The `close` event's arguments once it fired. */
  closed: { code: number, reason: string } | null
  /** Resolves on the `close` event. */
  closedPromise: Promise<void>
}

export interface EchoServer {
  port: number
  /** What the application saw on the connection opened with this `id` (see `RawClient.connect`). */
  app (id: number): AppLog
  /** The same, once the application's `close` event has fired; fails after `timeoutMs`. */
  appClosed (id: number, timeoutMs?: number): Promise<AppLog>
  close (): Promise<void>
}

/**
 * Starts the echo app of examples/echo.ts in this process: `maxPayload`
 * defaults to 16 MiB. Each connection is told apart by the `id` query
 * parameter the RawClient puts in its request-target.
 */
export async function startEchoServer (options: { maxPayload?: number } = {}): Promise<EchoServer> {
  // Both kinds of server take the same routes; Fastify types them apart.
  const app = (TRANSPORT === 'http2' ? Fastify({ http2: true }) : Fastify()) as FastifyInstance
  // No heartbeat: a case checks every frame the server sends, and one server serves a whole file of cases, longer than 30 s on a loaded machine.
  await app.register(fastifyRfc6455, { maxPayload: options.maxPayload ?? MAX_PAYLOAD, heartbeatInterval: 0 })
  const logs = new Map<number, AppLog>()
  app.get('/', { ws: true }, (socket, request) => {
    let onClosed!: () => void
    const log: AppLog = {
      messages: [],
      pings: [],
      errors: [],
      closed: null,
      closedPromise: new Promise((resolve) => { onClosed = resolve })
    }
    logs.set(Number((request.query as { id?: string }).id), log)
    socket.on('message', (data, isBinary) => {
      log.messages.push({ length: data.length, isBinary })
      socket.send(isBinary ? data : data.toString('utf8'))
    })
    socket.on('ping', (data) => { log.pings.push(Buffer.from(data)) })
    socket.on('error', (error) => { log.errors.push(error.closeCode) })
    socket.on('close', (code, reason) => {
      log.closed = { code, reason }
      onClosed()
    })
  })
  const port = await listen(app)
  const appLog = (id: number): AppLog => {
    const log = logs.get(id)
    if (log === undefined) throw new Error(`no connection with id ${id} reached the application`)
    return log
  }
  return {
    port,
    app: appLog,
    async appClosed (id: number, timeoutMs = WAIT): Promise<AppLog> {
      const log = appLog(id)
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`the application's close event did not fire within ${timeoutMs} ms`)), timeoutMs)
      })
      try {
        await Promise.race([log.closedPromise, timeout])
      } finally {
        clearTimeout(timer)
      }
      return log
    },
    async close (): Promise<void> {
      await app.close()
    }
  }
}

/**
 * Starts an echo app for one test file and closes it when the file's tests
 * are done.
 */
export async function echoServerFor (t: Test, options?: { maxPayload?: number }): Promise<EchoServer> {
  const server = await startEchoServer(options)
  t.teardown(() => server.close())
  return server
}

// ---------------------------------------------------------------------------
// Client frames
// ---------------------------------------------------------------------------

let maskSeed = 0x2545f491

/**
 * A 4-byte masking key from a fixed pseudo-random sequence: reproducible
 * runs, and never a key of zeros that would hide a masking bug.
 */
export function nextMask (): Buffer {
  maskSeed = (Math.imul(maskSeed, 1103515245) + 12345) >>> 0
  const key = Buffer.alloc(4)
  key.writeUInt32BE((maskSeed | 0x01010101) >>> 0)
  return key
}

export interface FrameOptions {
  /** FIN; default true. */
  fin?: boolean
  /** RSV1-RSV3 as a 3-bit number, RSV1 being 4 (RFC 6455 §5.2: "RSV = 7" sets all three). */
  rsv?: number
  /** The masking key; default `nextMask()`. */
  mask?: Buffer
}

function bytesOf (payload: Buffer | string | undefined): Buffer {
  if (payload === undefined) return Buffer.alloc(0)
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
}

/**
 * One masked client frame (RFC 6455 §5.2, §5.3) built by `encodeFrame` with a
 * masking key; RSV2 and RSV3, which encodeFrame does not set, are or-ed into
 * the first byte.
 */
export function frame (opcode: number, payload?: Buffer | string, options: FrameOptions = {}): Buffer {
  const [header, body] = encodeFrame(opcode, bytesOf(payload), { fin: options.fin ?? true, mask: options.mask ?? nextMask() })
  header[0] = (header[0] & 0x8f) | (((options.rsv ?? 0) & 7) << 4)
  return Buffer.concat([header, body])
}

export const text = (payload: Buffer | string, options?: FrameOptions): Buffer => frame(OP.text, payload, options)
export const binary = (payload: Buffer | string, options?: FrameOptions): Buffer => frame(OP.binary, payload, options)
export const continuation = (payload: Buffer | string, options?: FrameOptions): Buffer => frame(OP.continuation, payload, options)
export const ping = (payload?: Buffer | string, options?: FrameOptions): Buffer => frame(OP.ping, payload, options)
export const pong = (payload?: Buffer | string, options?: FrameOptions): Buffer => frame(OP.pong, payload, options)

/** A close frame: no body without a code, else the 2-byte code then the reason bytes (RFC 6455 §5.5.1). */
export function close (code?: number, reason?: Buffer | string, options?: FrameOptions): Buffer {
  if (code === undefined) return frame(OP.close, undefined, options)
  const reasonBytes = bytesOf(reason)
  const body = Buffer.alloc(2 + reasonBytes.length)
  body.writeUInt16BE(code, 0)
  reasonBytes.copy(body, 2)
  return frame(OP.close, body, options)
}

/**
 * A message cut into data frames of `size` payload bytes (the last may be
 * shorter): the first frame carries `opcode`, the others are continuation
 * frames, FIN on the last only (RFC 6455 §5.4).
 */
export function fragments (opcode: number, payload: Buffer | string, size: number): Buffer[] {
  const bytes = bytesOf(payload)
  const frames: Buffer[] = []
  let offset = 0
  do {
    const piece = bytes.subarray(offset, offset + size)
    offset += size
    frames.push(frame(frames.length === 0 ? opcode : OP.continuation, piece, { fin: offset >= bytes.length }))
  } while (offset < bytes.length)
  return frames
}

/** `length` bytes made of `pattern` repeated (Autobahn's `payload_len`). */
export function repeat (pattern: Buffer | string, length: number): Buffer {
  const unit = bytesOf(pattern)
  const out = Buffer.allocUnsafe(length)
  if (length === 0) return out
  unit.copy(out, 0, 0, Math.min(unit.length, length))
  let filled = Math.min(unit.length, length)
  while (filled < length) {
    const n = Math.min(filled, length - filled)
    out.copy(out, filled, 0, n)
    filled += n
  }
  return out
}

/** Cuts `bytes` into pieces of `size` bytes (the last may be shorter). */
export function chops (bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let offset = 0; offset < bytes.length; offset += size) out.push(bytes.subarray(offset, offset + size))
  return out
}

// ---------------------------------------------------------------------------
// Server frames
// ---------------------------------------------------------------------------

/** A frame as the server sent it. */
export interface Frame {
  fin: boolean
  /** RSV1-RSV3 as a 3-bit number. */
  rsv: number
  opcode: number
  masked: boolean
  /** The header bytes as received. */
  header: Buffer
  /** The payload, unmasked if the server (wrongly, §5.1) masked it. */
  payload: Buffer
}

/**
 * Incremental parser of server-to-client frames (RFC 6455 §5.2), written
 * apart from the library's parser. Chunks are queued, not concatenated, so a
 * 16 MiB frame costs one copy.
 */
class ServerFrameParser {
  private chunks: Buffer[] = []
  private length = 0
  readonly frames: Frame[] = []

  push (chunk: Buffer): void {
    this.chunks.push(chunk)
    this.length += chunk.length
    for (;;) {
      const next = this.parseOne()
      if (next === null) return
      this.frames.push(next)
    }
  }

  /** Bytes received that do not yet make a whole frame. */
  get pending (): number {
    return this.length
  }

  private parseOne (): Frame | null {
    if (this.length < 2) return null
    const start = this.peek(Math.min(this.length, 14))
    const b0 = start[0]
    const b1 = start[1]
    const masked = (b1 & 0x80) !== 0
    let payloadLength = b1 & 0x7f
    let headerLength = 2
    if (payloadLength === 126) {
      headerLength = 4
      if (start.length < 4) return null
      payloadLength = start.readUInt16BE(2)
    } else if (payloadLength === 127) {
      headerLength = 10
      if (start.length < 10) return null
      const high = start.readUInt32BE(2)
      payloadLength = high * 0x100000000 + start.readUInt32BE(6)
    }
    if (masked) headerLength += 4
    if (this.length < headerLength + payloadLength) return null
    const header = this.take(headerLength)
    const payload = this.take(payloadLength)
    if (masked) {
      const key = header.subarray(headerLength - 4)
      for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]
    }
    return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, header, payload }
  }

  /** The first `n` queued bytes, without consuming them. */
  private peek (n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n)
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    for (const chunk of this.chunks) {
      filled += chunk.copy(out, filled, 0, Math.min(chunk.length, n - filled))
      if (filled === n) break
    }
    return out
  }

  /** Consumes the first `n` queued bytes into a buffer of their own. */
  private take (n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.chunks[0]
      const want = n - filled
      if (chunk.length <= want) {
        chunk.copy(out, filled)
        filled += chunk.length
        this.chunks.shift()
      } else {
        chunk.copy(out, filled, 0, want)
        this.chunks[0] = chunk.subarray(want)
        filled += want
      }
    }
    this.length -= n
    return out
  }
}

// ---------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------

/**
 * How pieces are paced: each is one write, followed by two turns of the event
 * loop ('immediate': the in-process server reads each piece on its own) or a
 * pause of `ms` milliseconds.
 */
export type Pace = 'immediate' | { ms: number }

let nextId = 1

export class RawClient {
  /** Tells this connection apart on the server (`EchoServer.app(id)`). */
  readonly id: number
  /** The TCP socket, or the HTTP/2 stream. */
  readonly socket: Duplex
  /** The HTTP/2 connection of the stream; null over TCP. */
  private readonly session: ClientHttp2Session | null
  private readonly parser = new ServerFrameParser()
  private readonly waiters = new Set<() => void>()
  /** The server ended its side of the TCP connection (a FIN, or END_STREAM, arrived). */
  serverEnded = false
  /** When the FIN arrived (`performance.now()`), and how many frames had arrived before it. */
  serverEndedAt: { ms: number, afterFrames: number } | null = null
  /** The TCP connection is fully closed. */
  closed = false
  /** A socket error such as ECONNRESET (the server reset the connection instead of closing it), or a RST_STREAM. */
  error: NodeJS.ErrnoException | null = null
  /** Bytes this client wrote after the handshake. */
  bytesSent = 0

  private constructor (socket: Duplex, id: number, session: ClientHttp2Session | null = null) {
    this.socket = socket
    this.id = id
    this.session = session
  }

  /**
   * Connects to `port` on 127.0.0.1 and performs the opening handshake
   * (RFC 6455 §4.1): a GET with a Sec-WebSocket-Key of 16 bytes (derived
   * from the connection id, for reproducible runs), expecting
   * `101`, `Upgrade: websocket`, `Connection: Upgrade`, the matching
   * Sec-WebSocket-Accept and no extension (§4.2.2). Bytes after the response
   * are frames.
   */
  static async connect (port: number, timeoutMs = WAIT): Promise<RawClient> {
    const id = nextId++
    if (TRANSPORT === 'http2') return await RawClient.connectStream(port, id, timeoutMs)
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.setNoDelay(true)
    const client = new RawClient(socket, id)
    const key = Buffer.from(Array.from({ length: 16 }, (_, i) => (id * 31 + i * 7) & 0xff)).toString('base64')
    const expectedAccept = createHash('sha1').update(key + GUID).digest('base64')
    const rest = await new Promise<Buffer>((resolve, reject) => {
      let head = Buffer.alloc(0)
      const timer = setTimeout(() => fail(new Error(`no handshake response within ${timeoutMs} ms`)), timeoutMs)
      const fail = (error: Error): void => {
        clearTimeout(timer)
        socket.off('data', onData)
        socket.destroy()
        reject(error)
      }
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        clearTimeout(timer)
        socket.off('data', onData)
        socket.off('error', fail)
        socket.off('close', onClose)
        const lines = head.subarray(0, end).toString('latin1').split('\r\n')
        const headers = new Map<string, string>()
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':')
          headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
        }
        if (!/^HTTP\/1\.1 101 /.test(lines[0]) ||
          headers.get('upgrade')?.toLowerCase() !== 'websocket' ||
          headers.get('connection')?.toLowerCase() !== 'upgrade' ||
          headers.get('sec-websocket-accept') !== expectedAccept ||
          // None offered, none may be chosen (§4.2.2, §9.1): RSV1-3 have no meaning here (section 3).
          headers.has('sec-websocket-extensions')) {
          socket.destroy()
          reject(new Error(`opening handshake refused or wrong:\n${lines.join('\n')}`))
          return
        }
        // Listen for frames before anything else can arrive, then hand over what came with the response.
        client.attach()
        resolve(head.subarray(end + 4))
      }
      const onClose = (): void => fail(new Error('connection closed during the opening handshake'))
      socket.on('data', onData)
      socket.on('error', fail)
      socket.on('close', onClose)
      socket.write(
        `GET /?id=${id} HTTP/1.1\r\n` +
        `Host: 127.0.0.1:${port}\r\n` +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${key}\r\n` +
        'Sec-WebSocket-Version: 13\r\n\r\n')
    })
    if (rest.length > 0) client.received(rest)
    return client
  }

  /**
   * Opens an HTTP/2 connection to `port` and, once the server's SETTINGS
   * allow it (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 §3), an extended
   * CONNECT stream (§4): `:protocol websocket`, version 13, expecting
   * `:status 200` and no extension (§5). The stream's bytes are frames.
   */
  private static async connectStream (port: number, id: number, timeoutMs: number): Promise<RawClient> {
    const session = http2.connect(`http://127.0.0.1:${port}`)
    session.on('error', () => { /* the stream reports it */ })
    try {
      const stream = await new Promise<http2.ClientHttp2Stream>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no handshake response within ${timeoutMs} ms`)), timeoutMs)
        session.once('close', () => reject(new Error('HTTP/2 connection closed during the opening handshake')))
        session.once('remoteSettings', (settings) => {
          if (settings.enableConnectProtocol !== true) {
            reject(new Error('the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL'))
            return
          }
          const stream = session.request({
            ':method': 'CONNECT',
            ':protocol': 'websocket',
            ':scheme': 'http',
            ':path': `/?id=${id}`,
            ':authority': `127.0.0.1:${port}`,
            'sec-websocket-version': '13'
          }, { endStream: false })
          stream.on('error', () => { /* 'close' reports the RST_STREAM code */ })
          stream.once('close', () => reject(new Error(`stream closed during the opening handshake (RST_STREAM ${stream.rstCode})`)))
          stream.once('response', (headers: IncomingHttpHeaders) => {
            clearTimeout(timer)
            if (Number(headers[':status']) !== 200 || headers['sec-websocket-extensions'] !== undefined) {
              reject(new Error(`opening handshake refused or wrong: ${JSON.stringify(headers)}`))
              return
            }
            resolve(stream)
          })
        })
      })
      const client = new RawClient(stream, id, session)
      client.attach()
      return client
    } catch (error) {
      session.destroy()
      throw error
    }
  }

  private attach (): void {
    const socket = this.socket
    socket.on('data', (chunk: Buffer) => this.received(chunk))
    socket.on('end', () => {
      // END_STREAM both ways closes the stream, as a TCP client closes its socket on the server's FIN.
      if (this.session !== null) socket.end()
      this.serverEnded = true
      this.serverEndedAt = { ms: performance.now(), afterFrames: this.frames.length }
      this.notify()
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.error = error
      this.notify()
    })
    socket.on('close', () => {
      const code = (socket as http2.ClientHttp2Stream).rstCode
      if (this.session !== null && code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR && this.error === null) {
        this.error = Object.assign(new Error(`RST_STREAM ${code}`), { code: `RST_STREAM ${code}` })
      }
      this.closed = true
      this.notify()
    })
  }

  /** The frames the server sent so far, in order. */
  get frames (): Frame[] {
    return this.parser.frames
  }

  /** Bytes received that do not make a whole frame yet. */
  get pendingBytes (): number {
    return this.parser.pending
  }

  /** Writes `bytes` (several buffers are joined) in one write and waits until the socket took them. */
  async send (...bytes: Buffer[]): Promise<void> {
    await this.write(bytes.length === 1 ? bytes[0] : Buffer.concat(bytes))
  }

  /** Writes each buffer on its own, pacing between them (Autobahn's "frame-wise chops", `sync=True`). */
  async sendEach (pieces: Buffer[], pace: Pace = 'immediate'): Promise<void> {
    for (const piece of pieces) {
      if (!this.writable) return
      await this.write(piece)
      await this.pause(pace)
    }
  }

  /** Writes `bytes` in pieces of `size` bytes, pacing between them (Autobahn's `chopsize`). */
  async sendChopped (bytes: Buffer, size: number, pace: Pace = 'immediate'): Promise<void> {
    await this.sendEach(chops(bytes, size), pace)
  }

  /** Writes `bytes` one byte per write (Autobahn's "octet-wise chops"). */
  async sendOctets (bytes: Buffer, pace: Pace = 'immediate'): Promise<void> {
    await this.sendChopped(bytes, 1, pace)
  }

  /** Whether bytes can still be written: the TCP connection is not closed and the server has not ended it. */
  get writable (): boolean {
    return !this.socket.destroyed && this.socket.writable && !this.serverEnded
  }

  /** Waits until `count` frames have arrived; fails on timeout or when the connection closes first. */
  async waitForFrames (count: number, timeoutMs = WAIT): Promise<Frame[]> {
    await this.waitUntil(() => this.frames.length >= count, timeoutMs, `${count} frame(s)`)
    return this.frames.slice(0, count)
  }

  /** Waits until the server has ended the TCP connection. */
  async waitForServerClose (timeoutMs = WAIT): Promise<void> {
    await this.waitUntil(() => this.serverEnded, timeoutMs, 'the server to close the TCP connection', false)
  }

  /**
   * Waits `ms` and returns how many frames arrived meanwhile and whether the
   * server ended the connection: the check of "nothing happens yet".
   */
  async quiet (ms: number): Promise<{ frames: number, serverEnded: boolean }> {
    const before = this.frames.length
    await new Promise((resolve) => setTimeout(resolve, ms))
    return { frames: this.frames.length - before, serverEnded: this.serverEnded }
  }

  /** A summary of what was received, for failure messages. */
  describe (): string {
    const frames = this.frames.map(describeFrame).join(', ')
    return `received [${frames}]` +
      (this.parser.pending > 0 ? ` + ${this.parser.pending} byte(s) of an incomplete frame` : '') +
      `; server ended TCP: ${this.serverEndedAt === null ? 'no' : `after ${this.serverEndedAt.afterFrames} frame(s)`}` +
      `; closed: ${this.closed}` +
      (this.error === null ? '' : `; socket error ${this.error.code ?? this.error.message}`)
  }

  destroy (): void {
    this.socket.destroy()
    this.session?.destroy()
  }

  private received (chunk: Buffer): void {
    this.parser.push(chunk)
    this.notify()
  }

  private notify (): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  private async write (bytes: Buffer): Promise<void> {
    if (!this.writable) return
    this.bytesSent += bytes.length
    await new Promise<void>((resolve) => {
      // A write error (the server reset the connection) is recorded by the 'error' listener.
      this.socket.write(bytes, () => resolve())
    })
  }

  private async pause (pace: Pace): Promise<void> {
    if (pace === 'immediate') {
      await new Promise((resolve) => setImmediate(resolve))
      await new Promise((resolve) => setImmediate(resolve))
    } else {
      await new Promise((resolve) => setTimeout(resolve, pace.ms))
    }
  }

  private async waitUntil (done: () => boolean, timeoutMs: number, what: string, failOnClose = true): Promise<void> {
    if (done()) return
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (done()) {
          finish()
          resolve()
        } else if (failOnClose && this.closed) {
          finish()
          reject(new Error(`connection closed while waiting for ${what}: ${this.describe()}`))
        }
      }
      const timer = setTimeout(() => {
        finish()
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${this.describe()}`))
      }, timeoutMs)
      const finish = (): void => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
    })
  }
}

/**
 * Connects a RawClient to `server` for one test and destroys it when the
 * test ends, whatever happened.
 */
export async function connect (t: Test, server: EchoServer): Promise<RawClient> {
  const client = await RawClient.connect(server.port)
  t.teardown(() => client.destroy())
  return client
}

function describeFrame (f: Frame): string {
  const names: Record<number, string> = { 0: 'continuation', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' }
  const name = names[f.opcode] ?? `opcode ${f.opcode}`
  if (f.opcode === OP.close && f.payload.length >= 2) return `close ${f.payload.readUInt16BE(0)}`
  return `${name}${f.fin ? '' : ' (FIN clear)'} ${f.payload.length} B`
}

// ---------------------------------------------------------------------------
// Expectations on the server's frames
// ---------------------------------------------------------------------------

/** A frame the server is expected to send. `close: null` is a close frame without a body. */
export type Expected =
  | { text: Buffer | string }
  | { binary: Buffer }
  | { pong: Buffer | string }
  | { close: number | null }

/**
 * The header an RFC 6455 server must send for one unfragmented frame: FIN
 * set, RSV1-3 clear, MASK clear (§5.1: "A server MUST NOT mask any frames"),
 * and "the minimal number of bytes MUST be used to encode the length" (§5.2).
 * Computed here, not with the library's encoder.
 */
export function serverHeader (opcode: number, payloadLength: number): Buffer {
  if (payloadLength <= 125) return Buffer.from([0x80 | opcode, payloadLength])
  if (payloadLength <= 0xffff) return Buffer.from([0x80 | opcode, 126, payloadLength >> 8, payloadLength & 0xff])
  const header = Buffer.alloc(10)
  header[0] = 0x80 | opcode
  header[1] = 127
  header.writeUInt32BE(Math.floor(payloadLength / 0x100000000), 2)
  header.writeUInt32BE(payloadLength >>> 0, 6)
  return header
}

/** Compares bytes: as hex when small (a readable diff), by length and content when large. */
export function sameBytes (t: Test, actual: Buffer, expected: Buffer, message: string): void {
  if (actual.length <= 512 && expected.length <= 512) {
    t.equal(actual.toString('hex'), expected.toString('hex'), message)
  } else {
    t.equal(actual.length, expected.length, `${message}: length`)
    t.ok(actual.equals(expected), `${message}: bytes`)
  }
}

/** Asserts one frame: its exact header bytes and payload, or for a close frame its close code and a UTF-8 reason. */
export function expectFrame (t: Test, actual: Frame | undefined, expected: Expected, label: string): void {
  if (actual === undefined) {
    t.fail(`${label}: missing, expected ${describeExpected(expected)}`)
    return
  }
  if ('close' in expected) {
    t.equal(actual.opcode, OP.close, `${label}: opcode is Close`)
    sameBytes(t, actual.header, serverHeader(OP.close, actual.payload.length), `${label}: header (FIN, no RSV, no MASK, shortest length)`)
    if (expected.close === null) {
      t.equal(actual.payload.length, 0, `${label}: close frame without a body`)
      return
    }
    t.ok(actual.payload.length >= 2 && actual.payload.length <= 125, `${label}: close body of 2-125 bytes (${actual.payload.length})`)
    if (actual.payload.length < 2) return
    t.equal(actual.payload.readUInt16BE(0), expected.close, `${label}: close code ${expected.close}`)
    const reason = actual.payload.subarray(2)
    t.ok(isWellFormedUtf8(reason), `${label}: close reason is UTF-8 (§5.5.1)`)
    return
  }
  let opcode: number
  let payload: Buffer
  if ('text' in expected) {
    opcode = OP.text
    payload = bytesOf(expected.text)
  } else if ('binary' in expected) {
    opcode = OP.binary
    payload = expected.binary
  } else {
    opcode = OP.pong
    payload = bytesOf(expected.pong)
  }
  sameBytes(t, actual.header, serverHeader(opcode, payload.length), `${label}: header (opcode ${opcode}, FIN, no RSV, no MASK, shortest length)`)
  sameBytes(t, actual.payload, payload, `${label}: payload`)
}

function describeExpected (expected: Expected): string {
  if ('close' in expected) return expected.close === null ? 'a close frame without a body' : `close ${expected.close}`
  if ('text' in expected) return `text ${bytesOf(expected.text).length} B`
  if ('binary' in expected) return `binary ${expected.binary.length} B`
  return `pong ${bytesOf(expected.pong).length} B`
}

/** Asserts the whole list of frames the server sent: exactly `expected`, in order. */
export function expectFrames (t: Test, client: RawClient, expected: Expected[]): void {
  t.equal(client.frames.length, expected.length, `${expected.length} frame(s) from the server: ${client.describe()}`)
  const count = Math.max(client.frames.length, expected.length)
  for (let i = 0; i < count; i++) {
    if (i >= expected.length) {
      t.fail(`frame ${i + 1}: unexpected ${describeFrame(client.frames[i])}`)
      continue
    }
    expectFrame(t, client.frames[i], expected[i], `frame ${i + 1}`)
  }
}

/**
 * Waits for the server to end the TCP connection, then asserts the frames it
 * sent over the whole connection and that it closed it with a FIN, not a
 * reset ("the server MUST close the underlying TCP connection first",
 * RFC 6455 §7.1.1; §5.5.1).
 */
export async function expectServerCloses (t: Test, client: RawClient, expected: Expected[], timeoutMs = WAIT): Promise<void> {
  try {
    await client.waitForServerClose(timeoutMs)
  } catch (error) {
    t.fail((error as Error).message)
    return
  }
  expectFrames(t, client, expected)
  t.ok(client.serverEnded, 'the server closed the TCP connection')
  t.equal(client.pendingBytes, 0, 'no partial frame before the end of the TCP connection')
  t.equal(client.error, null, 'no TCP reset')
}

/**
 * The end of a case the client closes: waits for the `expected` frames, sends
 * a close frame with `code` (Autobahn sends 1000), then expects exactly
 * `expected` followed by the echo of that code, and the server closing TCP.
 */
export async function closeAfter (t: Test, client: RawClient, expected: Expected[], timeoutMs = WAIT, code = 1000): Promise<void> {
  try {
    await client.waitForFrames(expected.length, timeoutMs)
  } catch (error) {
    t.fail((error as Error).message)
    return
  }
  await client.send(close(code))
  await expectServerCloses(t, client, [...expected, { close: code }], timeoutMs)
}

/** UTF-8 well-formedness by the WHATWG decoder, an oracle independent of the library's validator. */
export function isWellFormedUtf8 (bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes)
    return true
  } catch {
    return false
  }
}
