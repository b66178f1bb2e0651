import { Buffer, isUtf8 } from 'node:buffer'
import { CloseCode, Opcode } from './constants.js'
import { encodeClosePayload, MAX_CLOSE_REASON } from './close.js'
import { invalidUtf8, ProtocolError } from './errors.js'
import { type EncodeOptions, encodeHeader } from './frame.js'
import { type MessageHandler, MessageReader } from './message.js'
import { FrameParser } from './parser.js'
import type { PerMessageDeflate, PreparedMessage } from './permessage-deflate.js'

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
  /** Stop (true) or restart (false) reading from the peer while a message inflates. */
  hold (on: boolean): void
  message (data: Buffer, isBinary: boolean): void
  ping (data: Buffer): void
  pong (data: Buffer): void
  /** The connection failed with `error`; a close frame carrying `error.closeCode` is queued. */
  failed (error: ProtocolError): void
}

/** The header options of a compressed message's frame, allocated once. */
const RSV1: EncodeOptions = { rsv1: true }

/** A data or close frame waiting behind a compression, to keep the send order. */
interface Outgoing {
  opcode: number
  payload: Buffer
  compress: boolean
  /** The payload compressed once for many connections, when it is a publish. */
  prepared: PreparedMessage | undefined
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
 * With permessage-deflate (RFC 7692), inflation and compression run in
 * zlib's thread pool; input is held while a message inflates and frames
 * queue behind a compression, so messages keep their order both ways.
 * The layer above moves to CLOSED when the TCP connection is gone and owns
 * the timers (close timeout, idle timeout, heartbeat).
 */
export class Session implements MessageHandler {
  readyState: ReadyState = ReadyState.OPEN
  /** The peer's close code: 1005 for a close frame without one, 1006 until a close frame arrives. */
  closeCode: number = CloseCode.AbnormalClosure
  /** The peer's close reason, '' when none. */
  closeReason = ''
  /** Who sent the first close frame, or failed the connection; null while neither has (RFC 6455 §7.1.2-§7.1.3). */
  initiator: 'server' | 'client' | null = null
  /**
   * The frame parser and, behind it, the message reader: created when the
   * first bytes arrive, so that a connection that never sends holds neither.
   */
  parser: FrameParser | null = null
  readonly deflate: PerMessageDeflate | null
  /** Bytes of one reassembled (and inflated) message. */
  private readonly maxPayload: number
  private readonly io: SessionIO
  /** A close frame was queued or written: no more data frames (§5.5.1). */
  private closeSent = false
  private closeWritten = false
  /** True once input is no longer read: a close frame was received or the connection failed. */
  private inputDone = false
  /** Frames waiting for a compression to finish; null when nothing is compressing. */
  private outgoing: Outgoing[] | null = null
  /** Payload bytes of the message being compressed and of the frames waiting behind it. */
  queuedBytes = 0

  /**
   * `maxPayload`: bytes of one reassembled (and inflated) message; over it the
   * connection fails with 1009. `deflate`: the negotiated permessage-deflate, if any.
   */
  constructor (io: SessionIO, maxPayload: number, deflate: PerMessageDeflate | null = null) {
    this.io = io
    this.deflate = deflate
    this.maxPayload = maxPayload
  }

  /** Feeds bytes read from the TCP connection. Never throws: errors fail the connection. */
  receive (chunk: Buffer): void {
    if (this.inputDone) return
    try {
      (this.parser ?? this.startParsing()).push(chunk)
    } catch (error) {
      this.fail(error)
    }
  }

  private startParsing (): FrameParser {
    const parser = new FrameParser(new MessageReader(this, this.maxPayload))
    parser.allowRsv1 = this.deflate !== null
    this.parser = parser
    return parser
  }

  /**
   * Sends one unfragmented message; with permessage-deflate and `compress`,
   * compressed (RSV1 set, RFC 7692 §6). `prepared`: the same message as a
   * PreparedMessage (a publish), whose uncompressed frame is written as it
   * was encoded once and whose compressed output connections with the same
   * settings share.
   * Dropped, returning false, once a close frame was sent ("the endpoint
   * MUST NOT send any further data frames", RFC 6455 §5.5.1).
   */
  sendMessage (opcode: number, payload: Buffer, compress: boolean, prepared?: PreparedMessage): boolean {
    if (this.closeSent) return false
    if (this.outgoing !== null || compress) this.enqueue({ opcode, payload, compress: compress && this.deflate !== null, prepared })
    else if (prepared === undefined) this.writeFrame(opcode, payload, false)
    else this.io.write(prepared.head, prepared.tail)
    return true
  }

  /** Sends a ping or a pong, after any message waiting to be compressed. */
  sendControl (opcode: number, payload: Buffer): boolean {
    if (this.closeSent) return false
    this.enqueue({ opcode, payload, compress: false, prepared: undefined })
    return true
  }

  /**
   * Starts the closing handshake (§7.1.2) with a code valid on the wire and a
   * reason of at most 123 bytes, or 1005 for a close frame without a body.
   * Messages sent before it go first. Does nothing once a close frame was sent.
   */
  close (code: number, reason: string | Uint8Array = ''): void {
    if (this.closeSent) return
    this.closeSent = true
    this.initiator ??= 'server'
    this.readyState = ReadyState.CLOSING
    this.enqueue({ opcode: Opcode.Close, payload: encodeClosePayload(code, reason), compress: false, prepared: undefined })
  }

  /**
   * Fails the connection (§7.1.7): drops what waits to be sent, sends a close
   * frame carrying the error's close code unless one was written, stops
   * reading, and ends the TCP connection. Returns false, doing nothing, when
   * the connection had already stopped reading and written its close frame.
   */
  fail (cause: unknown): boolean {
    if (this.inputDone && this.closeWritten) return false
    const error = toProtocolError(cause)
    this.initiator ??= 'server'
    this.inputDone = true
    this.outgoing = null
    this.queuedBytes = 0
    if (!this.closeWritten) {
      this.closeSent = true
      this.closeWritten = true
      this.readyState = ReadyState.CLOSING
      const reason = error.closeCode === CloseCode.InternalError ? '' : error.message
      const body = encodeClosePayload(error.closeCode, truncateReason(reason))
      this.io.write(encodeHeader(Opcode.Close, body.length), body)
    }
    this.io.failed(error)
    this.io.end()
    return true
  }

  /** The TCP connection is gone: nothing more is read or sent, zlib contexts are freed. */
  transportClosed (): void {
    this.readyState = ReadyState.CLOSED
    this.inputDone = true
    this.closeSent = true
    this.closeWritten = true
    this.outgoing = null
    this.queuedBytes = 0
    this.deflate?.close()
  }

  message (data: Buffer, isBinary: boolean): void {
    this.io.message(data, isBinary)
  }

  /**
   * A compressed message (RFC 7692 §7.2.2): parsing stops until it is
   * inflated, so that nothing overtakes it, then resumes.
   */
  compressedMessage (data: Buffer, isBinary: boolean): void {
    const parser = this.parser as FrameParser
    parser.pause()
    this.io.hold(true)
    ;(this.deflate as PerMessageDeflate).decompress(data, (error, inflated) => {
      if (this.inputDone) return
      try {
        if (error !== null) throw error
        if (!isBinary && !isUtf8(inflated)) throw invalidUtf8('text message is not valid UTF-8')
        this.io.message(inflated, isBinary)
        this.io.hold(false)
        parser.resume()
      } catch (failure) {
        this.fail(failure)
      }
    })
  }

  /** "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response" with the same data (§5.5.2). */
  ping (data: Buffer): void {
    this.sendControl(Opcode.Pong, data)
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
    // "discards any further data received" (§1.4), including the rest of this chunk.
    this.parser?.pause()
    this.initiator ??= 'client'
    this.closeCode = code
    this.closeReason = reason
    if (!this.closeSent) this.close(code)
    else if (this.closeWritten) this.io.end()
  }

  private enqueue (frame: Outgoing): void {
    if (this.outgoing !== null) {
      this.outgoing.push(frame)
      this.queuedBytes += frame.payload.length
      return
    }
    if (frame.compress) this.compress(frame.opcode, frame.payload, frame.prepared)
    else this.writeFrame(frame.opcode, frame.payload, false)
  }

  private compress (opcode: number, payload: Buffer, prepared: PreparedMessage | undefined): void {
    this.outgoing = []
    this.queuedBytes += payload.length
    const deflate = this.deflate as PerMessageDeflate
    const done = (error: ProtocolError | null, compressed: Buffer, header?: Buffer): void => {
      const waiting = this.outgoing
      if (waiting === null) return
      if (error !== null) {
        this.fail(error)
        return
      }
      this.outgoing = null
      this.queuedBytes = 0
      this.writeFrame(opcode, compressed, true, header)
      for (let i = 0; i < waiting.length; i++) {
        this.enqueue(waiting[i])
        // A compression started by that frame makes the rest wait behind it.
        const queue = this.outgoing as Outgoing[] | null
        if (queue !== null) {
          for (let j = i + 1; j < waiting.length; j++) this.enqueue(waiting[j])
          return
        }
      }
    }
    if (prepared === undefined) deflate.compress(payload, done)
    else prepared.compress(deflate, done)
  }

  private writeFrame (opcode: number, payload: Buffer, rsv1: boolean, header?: Buffer): void {
    this.io.write(header ?? encodeHeader(opcode, payload.length, rsv1 ? RSV1 : undefined), payload)
    if (opcode !== Opcode.Close) return
    this.closeWritten = true
    if (this.inputDone) this.io.end()
  }
}

/**
 * A close reason as UTF-8, cut to at most 123 bytes (MAX_CLOSE_REASON) on a
 * character boundary: "the body ... MUST be ... UTF-8-encoded data" (RFC 6455
 * §5.5.1), so a cut through a multi-byte character would make the peer fail
 * the connection with 1007 instead of reading the close code.
 */
export function truncateReason (reason: string): Buffer {
  const bytes = Buffer.from(reason, 'utf8')
  if (bytes.length <= MAX_CLOSE_REASON) return bytes
  let end = MAX_CLOSE_REASON
  // Back up over continuation bytes (10xxxxxx) to the lead byte of the character that does not fit.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--
  return bytes.subarray(0, end)
}
