import { constants, type ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

/**
 * The byte stream a Connection reads frames from and writes frames to: a TCP
 * socket, or an HTTP/2 stream. `setTimeout(ms, callback)` arms the idle timer
 * (reset by every read and write) as both Node's sockets and streams do.
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
  /** Ends the byte stream at once, without a close frame: a TCP reset, or RST_STREAM (CANCEL) on an HTTP/2 stream. */
  abort (): void
}

/** A WebSocket over the TCP connection of an HTTP/1.1 upgrade (RFC 6455 §4). */
export class TcpTransport implements Transport {
  readonly stream: Socket

  constructor (socket: Socket) {
    // Frames are written whole and batched already: Nagle's algorithm would only delay them.
    socket.setNoDelay(true)
    this.stream = socket
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

  constructor (stream: ServerHttp2Stream) {
    this.stream = stream
  }

  abort (): void {
    // RFC 8441 §5: a TCP reset maps to RST_STREAM with the CANCEL error code.
    if (!this.stream.closed) this.stream.close(constants.NGHTTP2_CANCEL)
  }
}
