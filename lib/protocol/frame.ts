/** A parsed frame header (RFC 6455 §5.2). `payloadLength` is in bytes. */
export interface FrameHeader {
  fin: boolean
  rsv1: boolean
  rsv2: boolean
  rsv3: boolean
  opcode: number
  masked: boolean
  payloadLength: number
}

export interface EncodeOptions {
  /** FIN bit; false for every fragment but the last (§5.4). Default true. */
  fin?: boolean
  /** RSV1 bit, set by permessage-deflate on a compressed message's first frame (RFC 7692 §6). */
  rsv1?: boolean
  /**
   * 4-byte masking key. Servers never mask (RFC 6455 §5.1); clients must.
   * With a key the payload is copied before masking, the input is untouched.
   */
  mask?: Uint8Array
}

const EMPTY = Buffer.alloc(0)
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1
/** Below this many bytes a byte loop beats creating a 32-bit view. */
const WORD_LOOP_MIN = 64

/** True for Close, Ping, Pong and the reserved control opcodes 0xB-0xF (§5.5). */
export function isControl (opcode: number): boolean {
  return (opcode & 0x8) !== 0
}

/**
 * Bytes of a frame header for `payloadLength` bytes of payload: 2, 4 or 10
 * bytes, plus 4 with a masking key (§5.2). The payload length uses the
 * shortest form: 7 bits up to 125, 16 bits up to 65535, else 64 bits.
 */
export function encodeHeader (opcode: number, payloadLength: number, options?: EncodeOptions): Buffer {
  const fin = options?.fin ?? true
  const mask = options?.mask
  const lengthBytes = payloadLength < 126 ? 0 : payloadLength < 65536 ? 2 : 8
  const header = Buffer.allocUnsafe(2 + lengthBytes + (mask === undefined ? 0 : 4))
  header[0] = (fin ? 0x80 : 0) | (options?.rsv1 === true ? 0x40 : 0) | opcode
  const maskBit = mask === undefined ? 0 : 0x80
  let offset = 2
  if (lengthBytes === 0) {
    header[1] = maskBit | payloadLength
  } else if (lengthBytes === 2) {
    header[1] = maskBit | 126
    header.writeUInt16BE(payloadLength, 2)
    offset = 4
  } else {
    header[1] = maskBit | 127
    header.writeUInt32BE(Math.floor(payloadLength / 0x100000000), 2)
    header.writeUInt32BE(payloadLength >>> 0, 6)
    offset = 10
  }
  if (mask !== undefined) header.set(mask.subarray(0, 4), offset)
  return header
}

/**
 * Encodes one frame as `[header, payload]` (RFC 6455 §5.2). Without a masking
 * key the payload is returned as given, not copied: the caller writes both.
 */
export function encodeFrame (opcode: number, payload: Uint8Array = EMPTY, options?: EncodeOptions): [Buffer, Buffer] {
  const header = encodeHeader(opcode, payload.length, options)
  let body = Buffer.from(payload.buffer, payload.byteOffset, payload.length)
  if (options?.mask !== undefined && body.length > 0) {
    body = Buffer.from(body)
    applyMask(body, options.mask, 0)
  }
  return [header, body]
}

/**
 * XORs `data` in place with the 4-byte masking key (RFC 6455 §5.3).
 * `maskOffset` is the index into the key of `data[0]`, for payloads that
 * arrive in pieces: piece n starts at (bytes before it) mod 4.
 * Works on 32-bit words over the aligned middle of `data` when it is long
 * enough for that to pay.
 */
export function applyMask (data: Uint8Array, mask: Uint8Array, maskOffset: number): void {
  const length = data.length
  let i = 0
  if (length >= WORD_LOOP_MIN) {
    // Bytes before the first 4-byte aligned address, then whole words.
    const head = (4 - (data.byteOffset & 3)) & 3
    for (; i < head; i++) data[i] ^= mask[(maskOffset + i) & 3]
    const k = maskOffset + i
    const b0 = mask[k & 3]; const b1 = mask[(k + 1) & 3]; const b2 = mask[(k + 2) & 3]; const b3 = mask[(k + 3) & 3]
    // The key, starting at key index k, as the host reads a 32-bit word.
    const word = (LITTLE_ENDIAN
      ? b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)
      : (b0 << 24) | (b1 << 16) | (b2 << 8) | b3) >>> 0
    const words = (length - i) >>> 2
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words)
    for (let w = 0; w < words; w++) view[w] ^= word
    i += words << 2
  }
  for (; i < length; i++) data[i] ^= mask[(maskOffset + i) & 3]
}
