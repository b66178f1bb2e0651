/**
 * A node:http2 client for WebSockets over HTTP/2 (RFC 8441): it waits for the
 * server's SETTINGS_ENABLE_CONNECT_PROTOCOL (§3) before any extended CONNECT
 * (node refuses to send `:protocol` otherwise), opens streams with
 * `:method CONNECT` and `:protocol websocket` (§4, §5), writes masked client
 * frames as they are and reads the server's frames back byte for byte, and
 * reports how the stream ended: END_STREAM (the orderly end) or RST_STREAM
 * with its code. Every wait is bounded by WAIT_MS.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http2, {
  type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type SecureClientSessionOptions, type SecureServerOptions
} from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { clientFrame } from './frames.js'
import { withTimeout } from './app.js'

/**
 * `Fastify({ http2: true, https })` (h2c without `https`), typed as the default instance that
 * the helpers of test/support take: routes and hooks are declared the same way.
 */
export function http2App (https?: SecureServerOptions): FastifyInstance {
  const app = https === undefined ? Fastify({ http2: true }) : Fastify({ http2: true, https })
  return app as unknown as FastifyInstance
}

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made by the openssl
 * CLI in a temporary directory (Node cannot make X.509 certificates); a
 * string saying why when openssl is missing, for tap's `skip`.
 */
export function selfSignedCertificate (): { key: Buffer, cert: Buffer } | string {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-rfc6455-tls-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
  } catch (error) {
    return `openssl could not make a certificate (${(error as Error).message}): apt-get install openssl`
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Opcodes (RFC 6455 §5.2). */
export const OP = { text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const

/** A close frame's body: the code, then the reason's UTF-8. */
export function closeBody (code: number, reason = ''): Buffer {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason))
  body.writeUInt16BE(code, 0)
  body.write(reason, 2)
  return body
}

/** Resolves once `predicate` holds, checked every 5 ms; fails after WAIT_MS. */
export async function until (predicate: () => boolean, label: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await withTimeout(new Promise<void>((resolve) => {
      const check = (): void => {
        if (predicate()) resolve()
        else timer = setTimeout(check, 5)
      }
      check()
    }), label)
  } finally {
    clearTimeout(timer)
  }
}

/** A frame from the server, payload unmasked if (wrongly) masked. */
export interface H2Frame {
  fin: boolean
  rsv1: boolean
  opcode: number
  masked: boolean
  payload: Buffer
}

/** Connects to the HTTP/2 server on 127.0.0.1:`port` and waits for its first SETTINGS. */
export async function connectSession (port: number, tls?: SecureClientSessionOptions): Promise<ClientHttp2Session> {
  const session = tls === undefined
    ? http2.connect(`http://127.0.0.1:${port}`)
    : http2.connect(`https://127.0.0.1:${port}`, tls)
  session.on('error', () => { /* a reset session: its streams report it */ })
  await withTimeout(new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve())
    session.once('error', reject)
  }), 'the server SETTINGS')
  return session
}

export interface OpenOptions {
  /** Sec-WebSocket-Protocol. */
  protocols?: string
  /** Sec-WebSocket-Extensions. */
  extensions?: string
  /** Headers to add or replace (pseudo-headers too). */
  headers?: Record<string, string>
  /** Default headers to leave out, by name. */
  omit?: string[]
}

/** One extended CONNECT stream and the WebSocket on it. */
export class H2WebSocket {
  readonly stream: ClientHttp2Stream
  /** The response headers, `:status` included. */
  readonly response: IncomingHttpHeaders
  /** Resolves on the server's END_STREAM. */
  readonly ended: Promise<void>
  /** Resolves with the RST_STREAM code (0 when closed without an error) once the stream is closed. */
  readonly closed: Promise<number>
  private buffer: Buffer = Buffer.alloc(0)
  private readonly frames: H2Frame[] = []
  private gone = false
  private waiter: (() => void) | null = null
  /** Whether the server's END_STREAM is answered with ours (true), or the client's side stays open. */
  endOnEnd = true
  /** The bytes a refusal carried, for its reason. */
  body: Buffer = Buffer.alloc(0)

  private constructor (stream: ClientHttp2Stream, response: IncomingHttpHeaders) {
    this.stream = stream
    this.response = response
    stream.on('data', (chunk: Buffer) => {
      if (Number(response[':status']) !== 200) {
        this.body = Buffer.concat([this.body, chunk])
        return
      }
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
      this.parse()
      this.wake()
    })
    this.ended = new Promise((resolve) => stream.once('end', () => {
      // As a TCP client closes its socket on the server's FIN: END_STREAM both ways closes the stream.
      if (this.endOnEnd) stream.end()
      this.gone = true
      this.wake()
      resolve()
    }))
    this.closed = new Promise((resolve) => stream.once('close', () => {
      this.gone = true
      this.wake()
      resolve(stream.rstCode ?? 0)
    }))
  }

  /**
   * Sends an extended CONNECT to `path` and waits for the response headers:
   * `:status` 200 is an open WebSocket, anything else a refusal.
   */
  static async open (session: ClientHttp2Session, path: string, options: OpenOptions = {}): Promise<H2WebSocket> {
    if (session.remoteSettings.enableConnectProtocol !== true) throw new Error('the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL')
    const headers: Record<string, string> = {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'http',
      ':path': path,
      ':authority': '127.0.0.1',
      'sec-websocket-version': '13'
    }
    if (options.protocols !== undefined) headers['sec-websocket-protocol'] = options.protocols
    if (options.extensions !== undefined) headers['sec-websocket-extensions'] = options.extensions
    for (const name of options.omit ?? []) Reflect.deleteProperty(headers, name)
    Object.assign(headers, options.headers)
    const stream = session.request(headers, { endStream: false })
    stream.on('error', () => { /* RST_STREAM with an error code: 'close' reports it */ })
    const response = await withTimeout(new Promise<IncomingHttpHeaders>((resolve, reject) => {
      stream.once('response', resolve)
      stream.once('close', () => reject(new Error(`stream closed before a response (RST_STREAM ${stream.rstCode})`)))
    }), `the response to CONNECT ${path}`)
    return new H2WebSocket(stream, response)
  }

  get status (): number {
    return Number(this.response[':status'])
  }

  /** Writes bytes as they are. */
  write (bytes: Buffer): void {
    this.stream.write(bytes)
  }

  /** Writes one masked client frame. */
  send (opcode: number, payload: Buffer | string = Buffer.alloc(0)): void {
    this.write(clientFrame(opcode, payload))
  }

  /** Reads the refusal's body once the stream has ended. */
  async reason (): Promise<string> {
    await withTimeout(this.closed, 'the refusal body')
    return this.body.toString('utf8')
  }

  /** The next frame from the server. */
  async nextFrame (label = 'a frame'): Promise<H2Frame> {
    await withTimeout(new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (this.frames.length > 0) resolve()
        else if (this.gone) reject(new Error(`stream ended while waiting for ${label}`))
        else this.waiter = check
      }
      check()
    }), label)
    return this.frames.shift() as H2Frame
  }

  /** The close code of the next frame, which must be a close frame (1005 for an empty body). */
  async closeCode (label = 'a close frame'): Promise<number> {
    const frame = await this.nextFrame(label)
    if (frame.opcode !== 0x8) throw new Error(`expected a close frame, got opcode ${frame.opcode}`)
    return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
  }

  /** Ends the client's side (END_STREAM). */
  end (): void {
    this.stream.end()
  }

  private parse (): void {
    for (;;) {
      const buffer = this.buffer
      if (buffer.length < 2) return
      let length = buffer[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffer.length < 4) return
        length = buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffer.length < 10) return
        length = Number(buffer.readBigUInt64BE(2))
        offset = 10
      }
      const masked = (buffer[1] & 0x80) !== 0
      const mask = masked ? buffer.subarray(offset, offset + 4) : null
      if (masked) offset += 4
      if (buffer.length < offset + length) return
      const payload = Buffer.from(buffer.subarray(offset, offset + length))
      if (mask !== null) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]
      this.frames.push({ fin: (buffer[0] & 0x80) !== 0, rsv1: (buffer[0] & 0x40) !== 0, opcode: buffer[0] & 0x0f, masked, payload })
      this.buffer = buffer.subarray(offset + length)
    }
  }

  private wake (): void {
    const waiter = this.waiter
    this.waiter = null
    waiter?.()
  }
}
