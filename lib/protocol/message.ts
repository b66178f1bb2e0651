import { Buffer, isUtf8 } from 'node:buffer'
import { Opcode } from './constants.js'
import { parseClosePayload } from './close.js'
import { invalidUtf8, messageTooBig, protocolError, ProtocolError } from './errors.js'
import { isControl, unmask, unmaskInto } from './frame.js'
import type { FrameSink } from './parser.js'
import { Utf8Validator } from './utf8.js'

const EMPTY = Buffer.alloc(0)
/** Pieces this long or longer are kept as views instead of copied (see `append`). */
const VIEW_MIN = 16 * 1024

/** What a MessageReader delivers: whole messages and control frames, in wire order. */
export interface MessageHandler {
  message (data: Buffer, isBinary: boolean): void
  /** A whole message whose first frame had RSV1 set: its payload is still compressed (RFC 7692 §6.2). */
  compressedMessage (data: Buffer, isBinary: boolean): void
  ping (data: Buffer): void
  pong (data: Buffer): void
  /** A valid close frame; `code` is 1005 when it had no body (RFC 6455 §7.1.5). */
  closeFrame (code: number, reason: string): void
}

/**
 * Reassembles messages from frames (RFC 6455 §5.4) and checks the rules that
 * span frames:
 * - a continuation frame needs a message to continue, and a new Text or
 *   Binary frame may not start inside a fragmented one (§5.4: "an endpoint
 *   MUST NOT interleave" fragments of different messages): 1002;
 * - control frames may come between fragments (§5.4) and are delivered at once;
 * - text is checked as UTF-8 as it arrives and fails on the first bad piece
 *   (§8.1): 1007;
 * - a message over `maxPayload` bytes fails as soon as a header declares it,
 *   before its payload arrives (§10.4): 1009.
 *
 * Memory for an incomplete message is one buffer holding its payload, at most
 * twice the bytes received so far: fragment count costs nothing. A binary or
 * compressed message's pieces are taken still masked and unmasked as they
 * are copied into the message: one pass over its bytes, not two.
 */
export class MessageReader implements FrameSink {
  /** Bytes of one reassembled message. */
  maxPayload: number
  private readonly handler: MessageHandler
  /** Opcode of the current frame. */
  private frameOpcode = 0
  private frameFin = false
  /** Text or Binary while a message is under way, 0 between messages. */
  private messageOpcode = 0
  /** Payload bytes of the message declared so far, current frame included. */
  private messageLength = 0
  /** Whether the current frame is the whole message, delivered without a copy when it comes in one piece. */
  private single = false
  /** Whether the current message's first frame had RSV1: compressed by permessage-deflate. */
  private compressed = false
  /** Small pieces of the message are copied here; `used` bytes of it are taken. */
  private buffer: Buffer | null = null
  private used = 0
  /** The message so far, in order, when it has pieces of VIEW_MIN bytes or more; null otherwise. */
  private parts: Buffer[] | null = null
  /** Per part, its masking key and the key index of its first byte (0 and 0: not masked); null with `parts`. */
  private partMasks: number[] | null = null
  private partsLength = 0
  private validator: Utf8Validator | null = null
  /** A control frame's payload cut by a chunk boundary. */
  private control: Buffer | null = null

  constructor (handler: MessageHandler, maxPayload: number) {
    this.handler = handler
    this.maxPayload = maxPayload
  }

  frameStart (fin: boolean, rsv1: boolean, opcode: number, payloadLength: number): void {
    this.frameOpcode = opcode
    this.frameFin = fin
    if (isControl(opcode)) {
      if (rsv1) throw protocolError('WS_ERR_UNEXPECTED_RSV_1', 'RSV1 set on a control frame')
      return
    }
    if (opcode === Opcode.Continuation) {
      if (this.messageOpcode === 0) throw protocolError('WS_ERR_INVALID_OPCODE', 'continuation frame with no message to continue')
      if (rsv1) throw protocolError('WS_ERR_UNEXPECTED_RSV_1', 'RSV1 set on a continuation frame')
      this.single = false
    } else {
      if (this.messageOpcode !== 0) throw protocolError('WS_ERR_INVALID_OPCODE', 'new data frame inside a fragmented message')
      this.messageOpcode = opcode
      this.messageLength = 0
      this.single = fin
      this.compressed = rsv1
    }
    this.messageLength += payloadLength
    if (this.messageLength > this.wireLimit()) throw messageTooBig(this.maxPayload)
  }

  framePayload (data: Buffer, frameEnd: boolean): void {
    if (isControl(this.frameOpcode)) {
      this.controlPayload(data, frameEnd)
      return
    }
    const text = this.messageOpcode === Opcode.Text
    const last = frameEnd && this.frameFin
    if (this.single && last && this.used === 0 && this.parts === null) {
      // The whole message in one piece: no copy.
      this.deliver(data, text, false)
      return
    }
    if (text && !this.compressed) {
      if (this.validator === null) this.validator = new Utf8Validator()
      if (!this.validator.push(data)) throw invalidUtf8('text message is not valid UTF-8')
      if (last && !this.validator.end()) throw invalidUtf8('text message ends inside a UTF-8 sequence')
    }
    this.append(data, 0, 0)
    if (!last) return
    this.deliver(this.takeMessage(), text, true)
  }

  /**
   * Takes the pieces of a binary or compressed message that need a copy
   * (all but a message in one piece), still masked: a small piece is
   * unmasked into the message buffer, a large one kept as a view and
   * unmasked into the whole message at its end. Text that is not compressed
   * is left to `framePayload`, since it is checked as UTF-8 piece by piece.
   */
  maskedPayload (data: Buffer, key: number, maskOffset: number, frameEnd: boolean): boolean {
    const last = frameEnd && this.frameFin
    if ((this.single && last && this.used === 0 && this.parts === null) || isControl(this.frameOpcode)) return false
    const text = this.messageOpcode === Opcode.Text
    if (text && !this.compressed) return false
    this.append(data, key, maskOffset)
    if (last) this.deliver(this.takeMessage(), text, false)
    return true
  }

  /**
   * The reassembled message: one copy of the parts at the end (unmasking
   * the masked ones on the way), or the small-piece buffer as it is.
   */
  private takeMessage (): Buffer {
    let message: Buffer
    const parts = this.parts
    if (parts === null) {
      message = this.buffer === null ? EMPTY : this.buffer.subarray(0, this.used)
    } else {
      const masks = this.partMasks as number[]
      if (this.used > 0) {
        parts.push((this.buffer as Buffer).subarray(0, this.used))
        masks.push(0, 0)
      }
      if (parts.length === 1) {
        message = parts[0]
        if (masks[0] !== 0) unmask(message, masks[0], masks[1])
      } else {
        message = Buffer.allocUnsafe(this.partsLength + this.used)
        let offset = 0
        for (let i = 0; i < parts.length; i++) {
          const part = parts[i]
          if (masks[2 * i] === 0) message.set(part, offset)
          else unmaskInto(part, message, offset, masks[2 * i], masks[2 * i + 1])
          offset += part.length
        }
      }
    }
    this.buffer = null
    this.used = 0
    this.parts = null
    this.partMasks = null
    this.partsLength = 0
    return message
  }

  /** Hands on a whole message; `validated` when its text was checked piece by piece. */
  private deliver (data: Buffer, text: boolean, validated: boolean): void {
    this.messageOpcode = 0
    this.validator = null
    if (this.compressed) {
      this.handler.compressedMessage(data, !text)
      return
    }
    if (text && !validated && !isUtf8(data)) throw invalidUtf8('text message is not valid UTF-8')
    this.handler.message(data, !text)
  }

  /**
   * Bytes a message may take on the wire: `maxPayload`; for a compressed one
   * an eighth more, since DEFLATE can grow data that does not compress (at
   * worst 9 bits a byte with fixed Huffman codes, RFC 1951 §3.2.6). Its
   * inflated size is held to `maxPayload` as it inflates.
   */
  private wireLimit (): number {
    return this.compressed ? this.maxPayload + Math.floor(this.maxPayload / 8) + 64 : this.maxPayload
  }

  /**
   * Adds a piece to the message, masked with `key` from key index
   * `maskOffset` (0 and 0: not masked). A piece of VIEW_MIN bytes or more is
   * kept as it is, a view of the chunk it came in (which it fills at least a
   * quarter of: reads are at most 64 KiB), to be copied once at the end.
   * Smaller pieces are copied onto a buffer whose capacity doubles as needed:
   * linear time whatever the fragment sizes, and never past what the last
   * frame declares, nor `maxPayload` while more frames may follow.
   */
  private append (data: Buffer, key: number, maskOffset: number): void {
    if (data.length >= VIEW_MIN) {
      const parts = this.parts ??= []
      const masks = this.partMasks ??= []
      if (this.used > 0) {
        parts.push((this.buffer as Buffer).subarray(0, this.used))
        masks.push(0, 0)
        this.partsLength += this.used
        this.buffer = (this.buffer as Buffer).subarray(this.used)
        this.used = 0
      }
      parts.push(data)
      masks.push(key, maskOffset)
      this.partsLength += data.length
      return
    }
    const needed = this.used + data.length
    let buffer = this.buffer
    if (buffer === null || buffer.length < needed) {
      const limit = this.frameFin ? this.messageLength : this.wireLimit()
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(limit, Math.max((buffer?.length ?? 0) * 2, 256))))
      if (buffer !== null) buffer.copy(grown, 0, 0, this.used)
      this.buffer = buffer = grown
    }
    if (key === 0) buffer.set(data, this.used)
    else unmaskInto(data, buffer, this.used, key, maskOffset)
    this.used = needed
  }

  private controlPayload (data: Buffer, frameEnd: boolean): void {
    let payload = data
    if (this.control !== null || !frameEnd) {
      payload = this.control === null ? Buffer.from(data) : Buffer.concat([this.control, data])
      if (!frameEnd) {
        this.control = payload
        return
      }
      this.control = null
    }
    switch (this.frameOpcode) {
      case Opcode.Ping:
        this.handler.ping(payload)
        break
      case Opcode.Pong:
        this.handler.pong(payload)
        break
      default: {
        const close = parseClosePayload(payload)
        if (close instanceof ProtocolError) throw close
        this.handler.closeFrame(close.code, close.reason)
      }
    }
  }
}
