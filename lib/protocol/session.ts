import { CloseCode, Opcode } from './constants.js'
import { encodeClosePayload, MAX_CLOSE_REASON } from './close.js'
import { ProtocolError } from './errors.js'
import { encodeHeader } from './frame.js'
import { type MessageHandler, MessageReader } from './message.js'
import { FrameParser } from './parser.js'

/** readyState values, as the WHATWG WebSocket numbers them. */
export const ReadyState = {
  CONNECTING: 0,
  OPEN: 1,
  CLOSING: 2,
  CLOSED: 3
} as const
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState]

/** What a Session needs from the layer that owns the TCP connection. */
export interface SessionIO {
  /** Queue one frame's bytes for writing, header first; `payload` may be empty. */
  write (header: Buffer, payload: Buffer): void
  /**
   * Close the TCP connection once queued bytes are written. Called when the
   * close handshake completes or the connection fails: the server closes the
   * TCP connection first (RFC 6455 §7.1.1).
   */
  end (): void
  message (data: Buffer, isBinary: boolean): void
  ping (data: Buffer): void
  pong (data: Buffer): void
  /** The connection failed with `error`; a close frame carrying `error.closeCode` is queued. */
  failed (error: ProtocolError): void
}

/**
 * Maps any error to the close code the connection fails with (RFC 6455 §7.4.1):
 * a ProtocolError carries its own (1002, 1007, 1008, 1009, ...); anything else
 * is an unexpected condition, 1011, sent without a reason so that nothing of
 * the server's internals reaches the peer.
 */
export function toProtocolError (error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error
  const internal = new ProtocolError('WS_ERR_INTERNAL', CloseCode.InternalError,
    error instanceof Error ? error.message : String(error))
  internal.cause = error
  return internal
}

/**
 * One server-side WebSocket connection, without I/O: bytes go in through
 * `receive()`, frames come out through `SessionIO.write()`, and the close
 * handshake (RFC 6455 §7) is kept here in one state machine:
 *
 * OPEN --close() or failure--> CLOSING (close sent) --peer's close--> end TCP
 * OPEN --peer's close--> echo it, CLOSING --> end TCP
 *
 * The layer above moves to CLOSED when the TCP connection is gone and owns
 * the timers (close timeout, idle timeout, heartbeat).
 */
export class Session implements MessageHandler {
  readyState: ReadyState = ReadyState.OPEN
  /** The peer's close code: 1005 for a close frame without one, 1006 until a close frame arrives. */
  closeCode: number = CloseCode.AbnormalClosure
  /** The peer's close reason, '' when none. */
  closeReason = ''
  readonly parser: FrameParser
  readonly reader: MessageReader
  private readonly io: SessionIO
  private closeSent = false
  /** True once input is no longer read: a close frame was received or the connection failed. */
  private inputDone = false

  /** `maxPayload`: bytes of one reassembled message; over it the connection fails with 1009. */
  constructor (io: SessionIO, maxPayload: number) {
    this.io = io
    this.reader = new MessageReader(this, maxPayload)
    this.parser = new FrameParser(this.reader)
  }

  /** Feeds bytes read from the TCP connection. Never throws: errors fail the connection. */
  receive (chunk: Buffer): void {
    if (this.inputDone) return
    try {
      this.parser.push(chunk)
    } catch (error) {
      this.fail(error)
    }
  }

  /**
   * Sends one frame unless a close frame was already sent ("the endpoint MUST
   * NOT send any further data frames", §5.5.1). Returns false when dropped.
   */
  sendFrame (opcode: number, payload: Buffer, fin = true, rsv1 = false): boolean {
    if (this.closeSent) return false
    this.io.write(encodeHeader(opcode, payload.length, { fin, rsv1 }), payload)
    return true
  }

  /**
   * Starts the closing handshake (§7.1.2) with a code valid on the wire and a
   * reason of at most 123 bytes, or 1005 for a close frame without a body.
   * Does nothing once a close frame was sent.
   */
  close (code: number, reason: string | Uint8Array = ''): void {
    if (this.closeSent) return
    this.closeSent = true
    this.readyState = ReadyState.CLOSING
    const body = encodeClosePayload(code, reason)
    this.io.write(encodeHeader(Opcode.Close, body.length), body)
    if (this.inputDone) this.io.end()
  }

  /**
   * Fails the connection (§7.1.7): queues a close frame carrying the error's
   * close code unless one was sent, stops reading, and ends the TCP connection.
   */
  fail (cause: unknown): void {
    const error = toProtocolError(cause)
    if (this.inputDone && this.closeSent) return
    this.inputDone = true
    if (!this.closeSent) {
      const reason = error.closeCode === CloseCode.InternalError ? '' : error.message
      this.close(error.closeCode, Buffer.from(reason).subarray(0, MAX_CLOSE_REASON))
    }
    this.io.failed(error)
    this.io.end()
  }

  /** The TCP connection is gone. */
  transportClosed (): void {
    this.readyState = ReadyState.CLOSED
    this.inputDone = true
    this.closeSent = true
  }

  message (data: Buffer, isBinary: boolean): void {
    this.io.message(data, isBinary)
  }

  /** "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response" with the same data (§5.5.2). */
  ping (data: Buffer): void {
    this.sendFrame(Opcode.Pong, data)
    this.io.ping(data)
  }

  /** Solicited or not, a pong needs no answer (§5.5.3). */
  pong (data: Buffer): void {
    this.io.pong(data)
  }

  /**
   * The peer's close frame (§5.5.1): "If an endpoint receives a Close frame
   * and did not previously send a Close frame, the endpoint MUST send a Close
   * frame in response", echoing its status code; then the server closes the
   * TCP connection. Data after it is ignored.
   */
  closeFrame (code: number, reason: string): void {
    this.inputDone = true
    this.closeCode = code
    this.closeReason = reason
    if (!this.closeSent) this.close(code)
    else this.io.end()
  }
}
