import { Buffer } from 'node:buffer'
import { constants, type ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import { TLSSocket } from '../builtins.js'
import { Duplex } from 'node:stream'

/**
 * The byte stream a Connection reads frames from and writes frames to: a TCP
 * socket, an HTTP/2 stream, or one end of an in-memory pair. `setTimeout(ms,
 * callback)` arms the idle timer (reset by every read and write) as Node's
 * sockets and streams do.
 */
export type ByteStream = Duplex & { setTimeout (ms: number, callback: () => void): unknown }

/**
 * What differs between the transports of a WebSocket once the handshake is
 * answered: the byte stream itself, and how it is aborted. The orderly end is
 * `stream.end()` on both: a TCP FIN, or END_STREAM on an HTTP/2 stream
 * (RFC 8441 §5).
 */
export interface Transport {
  readonly stream: ByteStream
  /**
   * True when a write the stream takes whole at once is done with its bytes
   * by the time `write()` returns, which `writableLength` then shows (0 left
   * when nothing else waits): plain TCP. TLS, HTTP/2 and in-memory streams
   * keep every write's bytes for later, so this is false for them.
   */
  readonly writesAtOnce: boolean
  /** Ends the byte stream at once, without a close frame: a TCP reset, or RST_STREAM (CANCEL) on an HTTP/2 stream. */
  abort (): void
}

/** A WebSocket over the TCP connection of an HTTP/1.1 upgrade (RFC 6455 §4). */
export class TcpTransport implements Transport {
  readonly stream: Socket
  readonly writesAtOnce: boolean

  constructor (socket: Socket) {
    // Frames are written whole and batched already: Nagle's algorithm would only delay them.
    socket.setNoDelay(true)
    this.stream = socket
    // A TLS socket encrypts and writes later (an upgrade on an HTTPS server).
    this.writesAtOnce = !(socket instanceof TLSSocket)
  }

  abort (): void {
    this.stream.destroy()
  }
}

/**
 * A WebSocket over one stream of an HTTP/2 connection (RFC 8441): the other
 * streams and the connection are not touched. Backpressure follows the
 * stream's flow control, since bytes the peer's window does not let through
 * stay in the stream's writable length.
 */
export class Http2Transport implements Transport {
  readonly stream: ServerHttp2Stream
  readonly writesAtOnce = false

  constructor (stream: ServerHttp2Stream) {
    this.stream = stream
  }

  abort (): void {
    // RFC 8441 §5: a TCP reset maps to RST_STREAM with the CANCEL error code.
    if (!this.stream.closed) this.stream.close(constants.NGHTTP2_CANCEL)
  }
}

/**
 * One end of an in-memory byte stream pair (`MemoryStream.pair()`), what
 * `app.injectWS()` runs a WebSocket over: what one end writes, the other
 * reads. A write completes once the other end has room for it (its readable
 * high-water mark), so backpressure works as over TCP. `end()` is the other
 * end's 'end' (a FIN); `destroy()` before both ends have ended destroys the
 * other end too (a reset).
 */
export class MemoryStream extends Duplex {
  /** What Fastify reports as `request.ip` for a request on this stream. */
  readonly remoteAddress = '127.0.0.1'
  private peer: MemoryStream | null = null
  /** The other end's write that waits for this end to have room. */
  private onRoom: (() => void) | null = null
  private idleTimer: NodeJS.Timeout | null = null

  /** Two connected ends. */
  static pair (): [MemoryStream, MemoryStream] {
    const a = new MemoryStream()
    const b = new MemoryStream()
    a.peer = b
    b.peer = a
    return [a, b]
  }

  /** Emits 'timeout' after `ms` milliseconds without a read or a write (0: never), as `net.Socket` does. */
  setTimeout (ms: number, callback?: () => void): this {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer)
    this.idleTimer = ms > 0 ? setTimeout(() => this.emit('timeout'), ms).unref() : null
    if (callback !== undefined) this.once('timeout', callback)
    return this
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.idleTimer?.refresh()
    // A copy, as a wire makes: neither end shares memory with the other. It
    // arrives on a later tick, as from a socket: never inside the writer's call.
    process.nextTick(deliver, this.peer as MemoryStream, Buffer.from(chunk), callback)
  }

  /** @internal Bytes the other end wrote. */
  receive (chunk: Buffer | null, written: () => void): void {
    if (chunk !== null) this.idleTimer?.refresh()
    if (this.destroyed || this.push(chunk) || chunk === null) written()
    else this.onRoom = written
  }

  override _read (): void {
    const onRoom = this.onRoom
    this.onRoom = null
    onRoom?.()
  }

  override _final (callback: (error?: Error | null) => void): void {
    process.nextTick(deliver, this.peer as MemoryStream, null, callback)
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer)
    const peer = this.peer
    if (peer !== null && !peer.destroyed && !(this.writableFinished && this.readableEnded)) peer.destroy()
    callback(error)
  }
}

/** Hands `chunk` (null: the end) to the reading end; `written` is called once it has room. */
function deliver (reader: MemoryStream, chunk: Buffer | null, written: () => void): void {
  reader.receive(chunk, written)
}

/** A WebSocket over one end of an in-memory pair (`app.injectWS()`): no network. */
export class MemoryTransport implements Transport {
  readonly stream: MemoryStream
  readonly writesAtOnce = false

  constructor (stream: MemoryStream) {
    this.stream = stream
  }

  abort (): void {
    this.stream.destroy()
  }
}
