/**
 * Shared helpers of the hostile-client tests: a server on 127.0.0.1 with a
 * well-behaved echo route, raw node:net clients that write exact bytes
 * (the handshake and masked client frames of test/support, RFC 6455 §5.3), an independent reader of
 * server frames, bounded waits, log capture and a forced garbage collection
 * for memory figures.
 */
import type { Server as HttpServer } from 'node:http'
import net from 'node:net'
import { Writable } from 'node:stream'
import Fastify, { type FastifyHttpOptions, type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { WebSocket as UndiciWebSocket } from 'undici'
import fastifyRfc6455, { type FastifyRfc6455Options } from '../../lib/index.js'
import { delay as sleep, listen, withTimeout } from '../support/app.js'
import { SAMPLE_ACCEPT as ACCEPT, upgradeRequest as supportUpgradeRequest } from '../support/frames.js'
import { collectGarbage } from '../support/payloads.js'

export { delay as sleep } from '../support/app.js'
export { clientFrame, MASKING_KEY, SAMPLE_ACCEPT as ACCEPT, SAMPLE_KEY as KEY } from '../support/frames.js'
export { pseudoRandomBytes } from '../support/payloads.js'

/** Opcodes (RFC 6455 §5.2), written out here rather than taken from lib/, as a second source. */
export const Opcode = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const

// ---------------------------------------------------------------------------
// Bounded waits

/** Rejects with `label` when `promise` has not settled within `ms`. */
export function within<T> (promise: Promise<T>, ms: number, label: string): Promise<T> {
  return withTimeout(promise, label, ms)
}

/** Polls `predicate` every few ms until it holds; rejects with `label` after `ms`. */
export async function until (predicate: () => boolean, ms: number, label: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${label}`)
    await sleep(5)
  }
}

/** A promise and the functions that settle it. */
export function deferred<T> (): { promise: Promise<T>, resolve: (value: T) => void, reject: (error: unknown) => void } {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

// ---------------------------------------------------------------------------
// Server

export interface Server {
  app: FastifyInstance
  port: number
  /**
   * Closes the app (once; teardown calls it too). Rejects when app.close()
   * takes over `ms`, after forcing the HTTP server shut so that the test
   * process can still exit.
   */
  close (ms?: number): Promise<void>
}

export interface ServerOptions {
  /** Options of Fastify(): timeouts, logger, and `http` for Node's own server options. */
  app?: FastifyHttpOptions<HttpServer>
  /** Options of the plugin. */
  plugin?: FastifyRfc6455Options
  /** Declares the routes under test; `/echo` (a well-behaved echo route) is always there. */
  routes?: (app: FastifyInstance) => void
}

/** Starts an app on 127.0.0.1 with the plugin and `/echo`; closed on teardown. */
export async function startServer (t: Test, options: ServerOptions = {}): Promise<Server> {
  const app = Fastify(options.app)
  await app.register(fastifyRfc6455, options.plugin ?? {})
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  options.routes?.(app)
  const port = await listen(app)
  let closing: Promise<void> | null = null
  const close = (ms = 5000): Promise<void> => {
    closing ??= within(app.close(), ms, 'app.close()').catch((error: unknown) => {
      app.server.closeAllConnections()
      app.server.close()
      throw error
    })
    return closing
  }
  t.teardown(() => {
    // A close the test awaited itself has been reported there.
    if (closing === null) return close()
  })
  return { app, port, close }
}

/**
 * The process and other connections carry on: a fresh undici WebSocket on
 * `/echo` gets a text and a binary message back, byte-exact, then closes
 * cleanly with 1000.
 */
export async function assertStillServes (t: Test, server: Server): Promise<void> {
  const client = new UndiciWebSocket(`ws://127.0.0.1:${server.port}/echo`)
  client.binaryType = 'arraybuffer'
  const replies: Array<string | Buffer> = []
  const closed = deferred<number>()
  const done = deferred<void>()
  client.onopen = () => {
    client.send('still here ✓')
    client.send(new Uint8Array([0, 1, 2, 0xff]))
  }
  client.onmessage = (event) => {
    replies.push(typeof event.data === 'string' ? event.data : Buffer.from(event.data as ArrayBuffer))
    if (replies.length === 2) {
      done.resolve()
      client.close(1000)
    }
  }
  client.onerror = () => done.reject(new Error('undici client error'))
  client.onclose = (event) => {
    closed.resolve(event.code)
    done.reject(new Error(`closed (${event.code}) before both echoes`))
  }
  await within(done.promise, 5000, 'echo from a fresh connection')
  t.same(replies, ['still here ✓', Buffer.from([0, 1, 2, 0xff])], 'a fresh connection is still served')
  t.equal(await within(closed.promise, 5000, 'fresh connection closes'), 1000, 'and closes with 1000')
}

/** Sends `text` on an open undici WebSocket and returns the next message it receives (its echo), waiting at most 5 s. */
export function echoOn (client: UndiciWebSocket, text: string, label: string): Promise<unknown> {
  return within(new Promise<unknown>((resolve) => {
    client.onmessage = (event) => resolve(event.data)
    client.send(text)
  }), 5000, label)
}

// ---------------------------------------------------------------------------
// Raw clients

/** An upgrade request for `path` with the RFC 6455 §1.3 key; `extra` lines (without CRLF) go before the blank line. */
export function upgradeRequest (path = '/echo', extra: string[] = [], version = 'HTTP/1.1'): string {
  return supportUpgradeRequest(path, { extraLines: extra, httpVersion: version.replace(/^HTTP\//, '') })
}

/** A close frame body: 2-byte close code then the UTF-8 reason (RFC 6455 §5.5.1). */
export function closeBody (code: number, reason = ''): Buffer {
  const reasonBytes = Buffer.from(reason, 'utf8')
  const body = Buffer.alloc(2 + reasonBytes.length)
  body.writeUInt16BE(code, 0)
  reasonBytes.copy(body, 2)
  return body
}

/** A frame the server sent, as read by this independent parser. */
export interface ServerFrame {
  fin: boolean
  rsv: number
  opcode: number
  payload: Buffer
}

/**
 * A raw TCP client that records every byte the server sends, splits the HTTP
 * response from what follows and parses server frames (never masked, §5.1).
 */
export class RawClient {
  readonly socket: net.Socket
  /** Bytes received so far. */
  receivedBytes = 0
  /** The HTTP response head, once complete ('' until then). */
  responseHead = ''
  /** What followed the head of a response other than 101 (its body). */
  body: Buffer = Buffer.alloc(0)
  /** Frames received after a 101. */
  frames: ServerFrame[] = []
  /** Set when the server's FIN arrived. */
  ended = false
  closed = false
  hadError: Error | null = null
  /** Why the frame parser stopped (a masked frame, RFC 6455 §5.1); null while all is well. */
  malformed: string | null = null
  private head: Buffer = Buffer.alloc(0)
  private pending: Buffer = Buffer.alloc(0)

  private constructor (socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('end', () => { this.ended = true })
    socket.on('close', () => { this.closed = true })
    socket.on('error', (error) => { this.hadError = error })
  }

  static async connect (port: number): Promise<RawClient> {
    const socket = net.connect({ port, host: '127.0.0.1' })
    const client = new RawClient(socket)
    await within(new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    }), 5000, 'TCP connect')
    socket.setNoDelay(true)
    return client
  }

  /** Connects, sends the upgrade request and waits for a 101 whose Sec-WebSocket-Accept is right. */
  static async open (port: number, path = '/echo', extra: string[] = []): Promise<RawClient> {
    const client = await RawClient.connect(port)
    client.write(upgradeRequest(path, extra))
    await client.waitResponse()
    if (client.status !== 101 || client.header('sec-websocket-accept') !== ACCEPT) {
      throw new Error(`handshake refused: ${client.responseHead}`)
    }
    return client
  }

  write (data: string | Buffer): boolean {
    return this.socket.write(data)
  }

  /** The HTTP status of the response, once its head is complete. */
  get status (): number {
    return Number(this.responseHead.slice(9, 12))
  }

  /** A response header's value, '' when absent (names compared case-insensitively). */
  header (name: string): string {
    for (const line of this.responseHead.split('\r\n').slice(1)) {
      const colon = line.indexOf(':')
      if (colon > 0 && line.slice(0, colon).toLowerCase() === name.toLowerCase()) return line.slice(colon + 1).trim()
    }
    return ''
  }

  async waitResponse (ms = 5000): Promise<void> {
    await until(() => this.responseHead !== '' || this.closed, ms, 'HTTP response head')
    if (this.responseHead === '') throw new Error('connection closed before an HTTP response')
  }

  async waitFrames (count: number, ms = 5000, label = `${count} frames`): Promise<ServerFrame[]> {
    await until(() => this.frames.length >= count || this.closed || this.malformed !== null, ms, label)
    if (this.malformed !== null) throw new Error(`malformed server frame: ${this.malformed}`)
    if (this.frames.length < count) throw new Error(`connection closed after ${this.frames.length} of ${count} frames`)
    return this.frames
  }

  /** Waits for a close frame and returns its close code (1005 when it has none) and reason. */
  async waitCloseFrame (ms = 5000): Promise<{ code: number, reason: string }> {
    await until(() => this.closeFrame() !== undefined || this.closed || this.malformed !== null, ms, 'close frame')
    const frame = this.closeFrame()
    if (frame === undefined) throw new Error(`no close frame before the connection closed (malformed: ${this.malformed ?? 'no'})`)
    return { code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005, reason: frame.payload.subarray(2).toString('utf8') }
  }

  closeFrame (): ServerFrame | undefined {
    return this.frames.find((frame) => frame.opcode === Opcode.Close)
  }

  async waitClosed (ms = 5000): Promise<void> {
    await until(() => this.closed, ms, 'TCP connection closed')
  }

  /** Stops reading: the kernel's buffers fill and TCP flow control pushes back on the server. */
  pause (): void {
    this.socket.pause()
  }

  resume (): void {
    this.socket.resume()
  }

  /**
   * Drops the connection with a TCP RST, so that the server notices at once
   * (a plain FIN is not noticed by the server until it next writes: see
   * the half-close test in reset.test.ts).
   */
  destroy (): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy()
  }

  private onData (chunk: Buffer): void {
    this.receivedBytes += chunk.length
    if (this.responseHead === '') {
      this.head = Buffer.concat([this.head, chunk])
      const end = this.head.indexOf('\r\n\r\n')
      if (end === -1) return
      this.responseHead = this.head.subarray(0, end + 4).toString('latin1')
      chunk = this.head.subarray(end + 4)
      this.head = Buffer.alloc(0)
    }
    if (this.status !== 101) {
      this.body = Buffer.concat([this.body, chunk])
      return
    }
    if (this.malformed !== null) return
    this.pending = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk
    this.parse()
  }

  private parse (): void {
    const buf = this.pending
    let pos = 0
    while (buf.length - pos >= 2) {
      const b0 = buf[pos]
      const b1 = buf[pos + 1]
      if ((b1 & 0x80) !== 0) {
        this.malformed = 'server frame is masked (RFC 6455 §5.1)'
        return
      }
      let length = b1 & 0x7f
      let header = 2
      if (length === 126) {
        if (buf.length - pos < 4) break
        length = buf.readUInt16BE(pos + 2)
        header = 4
      } else if (length === 127) {
        if (buf.length - pos < 10) break
        length = Number(buf.readBigUInt64BE(pos + 2))
        header = 10
      }
      if (buf.length - pos < header + length) break
      this.frames.push({
        fin: (b0 & 0x80) !== 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        payload: Buffer.from(buf.subarray(pos + header, pos + header + length))
      })
      pos += header + length
    }
    this.pending = pos === buf.length ? Buffer.alloc(0) : buf.subarray(pos)
  }
}

// ---------------------------------------------------------------------------
// Logs and memory

/** A pino destination that keeps every line, parsed. */
export function captureLogs (): { stream: Writable, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      }
      callback()
    }
  })
  return { stream, lines }
}

/** Bytes held by this process's JavaScript: V8 heap plus Buffers and other external memory. */
export function heldBytes (): number {
  collectGarbage()
  collectGarbage()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}
