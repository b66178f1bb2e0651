/**
 * A raw node:net client on 127.0.0.1 for exact bytes: it writes the opening
 * handshake and masked client frames as they are, and reads the server's HTTP
 * response and frames back byte for byte. Every read is bounded by WAIT_MS.
 */
import { connect, type Socket } from 'node:net'
import type { EncodeOptions } from '../../lib/protocol/frame.js'
import { delay, withTimeout } from './app.js'
import { clientFrame, upgradeRequest, type UpgradeRequestOptions } from './frames.js'

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
  rsv2: boolean
  rsv3: boolean
  opcode: number
  masked: boolean
  payload: Buffer
  /** The whole frame as it came: header then payload. */
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
  /** The handshake's response, once `handshake()` has read it. */
  response: RawResponse | null = null
  private buffer: Buffer = Buffer.alloc(0)
  /** Set by the server's FIN or the connection's close: no more bytes will come. */
  private gone = false
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
      this.gone = true
      this.wake()
      resolve()
    }))
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.gone = true
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

  /** Sends an opening handshake (see `upgradeRequest`) and reads the response, kept on `response`. */
  async handshake (path: string, request?: UpgradeRequestOptions): Promise<RawResponse> {
    this.write(upgradeRequest(path, request))
    this.response = await this.readHttpResponse()
    return this.response
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

  /** Sends one masked client frame (RFC 6455 §5.3). */
  sendFrame (opcode: number, payload?: Uint8Array | string, options?: EncodeOptions): void {
    this.write(clientFrame(opcode, payload, options))
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

  /** Sends a close frame without a body, unless the connection is gone, then destroys the socket. */
  closeAndDestroy (): void {
    if (!this.gone && this.socket.writable) this.socket.write(clientFrame(0x8))
    this.socket.destroy()
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
      rsv2: (bytes[0] & 0x20) !== 0,
      rsv3: (bytes[0] & 0x10) !== 0,
      opcode: bytes[0] & 0x0f,
      masked,
      payload: bytes.subarray(offset, offset + length),
      bytes
    }
  }

  /**
   * Reads the server's close frame after a failure and checks the TCP
   * connection ends (a FIN or a reset): returns the close code (RFC 6455
   * §5.5.1), skipping any data frames queued before it.
   */
  async readCloseCode (): Promise<number> {
    for (;;) {
      const frame = await this.readFrame()
      if (frame.opcode !== 0x8) continue
      await withTimeout(Promise.race([this.ended, this.closed]), 'the server to end the TCP connection')
      return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
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
      if (this.gone) throw new Error(`connection ended with ${this.buffer.length} unread bytes: ${this.buffer.subarray(0, 64).toString('hex')}`)
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

/** The raw clients of one test: each connects to `port` and stays in the set, for the teardown to end it. */
export class RawClients extends Set<RawClient> {
  constructor (private readonly port: number) {
    super()
  }

  /** Connects a raw TCP client. */
  async connect (): Promise<RawClient> {
    const raw = await RawClient.connect(this.port)
    this.add(raw)
    return raw
  }

  /** Connects a raw client and completes an opening handshake; throws unless 101 (the response is on `response`). */
  async webSocket (path: string, request?: UpgradeRequestOptions): Promise<RawClient> {
    const raw = await this.connect()
    const response = await raw.handshake(path, request)
    if (response.status !== 101) throw new Error(`expected 101, got ${response.statusLine}`)
    return raw
  }
}
