import { Buffer } from 'node:buffer'

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
/**
 * The headers of whole (FIN), unmasked, uncompressed continuation, text and
 * binary frames of up to 125 bytes, by `opcode << 7 | length`, made on first
 * use: a small message allocates no header. They are shared, so whoever gets
 * one from `encodeHeader()` must not write to it.
 */
const SHORT_HEADERS: Buffer[] = []
/** Their bytes, all in one allocation of their own (not a slice of Node's pool, which they would keep alive). */
const SHORT_HEADER_BYTES = Buffer.alloc(2 * (3 << 7))
for (let index = 0; index < 3 << 7; index++) {
  SHORT_HEADER_BYTES[2 * index] = 0x80 | (index >>> 7)
  SHORT_HEADER_BYTES[2 * index + 1] = index & 0x7f
}
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** True for Close, Ping, Pong and the reserved control opcodes 0xB-0xF (§5.5). */
export function isControl (opcode: number): boolean {
  return (opcode & 0x8) !== 0
}

/**
 * Bytes of a frame header for `payloadLength` bytes of payload: 2, 4 or 10
 * bytes, plus 4 with a masking key (§5.2). The payload length uses the
 * shortest form: 7 bits up to 125, 16 bits up to 65535, else 64 bits. The
 * result must not be written to: without `options`, a data frame's header of
 * 2 bytes is shared.
 */
export function encodeHeader (opcode: number, payloadLength: number, options?: EncodeOptions): Buffer {
  if (options === undefined && payloadLength < 126 && opcode <= 0x2) {
    const index = (opcode << 7) | payloadLength
    return SHORT_HEADERS[index] ??= SHORT_HEADER_BYTES.subarray(2 * index, 2 * index + 2)
  }
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
 */
export function applyMask (data: Uint8Array, mask: Uint8Array, maskOffset: number): void {
  unmask(data, ((mask[0] << 24) | (mask[1] << 16) | (mask[2] << 8) | mask[3]) >>> 0, maskOffset)
}

/**
 * XORs `data` in place with a masking key given as the 32-bit big-endian
 * number its 4 bytes form on the wire (octet i of the payload is XORed with
 * octet (i + maskOffset) mod 4 of the key, RFC 6455 §5.3). Short data takes a
 * byte loop; from NATIVE_MIN bytes Node's own routine where Node has one
 * (`http.websocketUnmask`, Node 26 and later); otherwise longer data 32-bit
 * words, and pieces of 768 bytes and more a WASM SIMD routine where the
 * runtime has one: 16 bytes at a time.
 */
export function unmask (data: Uint8Array, key: number, maskOffset: number): void {
  const length = data.length
  if (native !== null && length >= NATIVE_MIN) {
    native.unmask(data, keyBytes(key, maskOffset))
    return
  }
  if (length < WORD_LOOP_MIN) {
    const k0 = keyByte(key, maskOffset); const k1 = keyByte(key, maskOffset + 1)
    const k2 = keyByte(key, maskOffset + 2); const k3 = keyByte(key, maskOffset + 3)
    let j = 0
    for (; j + 3 < length; j += 4) {
      data[j] ^= k0
      data[j + 1] ^= k1
      data[j + 2] ^= k2
      data[j + 3] ^= k3
    }
    if (j < length) data[j] ^= k0
    if (j + 1 < length) data[j + 1] ^= k1
    if (j + 2 < length) data[j + 2] ^= k2
    return
  }
  let i = 0
  // Bytes before the first 4-byte aligned address, then whole words.
  const head = (4 - (data.byteOffset & 3)) & 3
  for (; i < head; i++) data[i] ^= keyByte(key, maskOffset + i)
  const k = maskOffset + i
  const b0 = keyByte(key, k); const b1 = keyByte(key, k + 1); const b2 = keyByte(key, k + 2); const b3 = keyByte(key, k + 3)
  // The key from index k as a little-endian word (WASM's order, and the host's on little-endian machines).
  const little = b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)
  const bytes = (length - i) & ~3
  if (simd !== null && bytes >= SIMD_MIN) {
    simd.xor(data, i, bytes, little, data, i)
  } else {
    const word = LITTLE_ENDIAN ? little : (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    const view = new Int32Array(data.buffer, data.byteOffset + i, bytes >>> 2)
    const words = view.length
    let w = 0
    for (; w + 3 < words; w += 4) {
      view[w] ^= word
      view[w + 1] ^= word
      view[w + 2] ^= word
      view[w + 3] ^= word
    }
    for (; w < words; w++) view[w] ^= word
  }
  i += bytes
  for (; i < length; i++) data[i] ^= keyByte(key, maskOffset + i)
}

/**
 * Writes `source` XORed with the key (as `unmask()` takes it) into `target`
 * from `targetOffset`, leaving `source` as it is: unmasking and copying in
 * one pass over the bytes, for a message put together from several pieces.
 */
export function unmaskInto (source: Uint8Array, target: Uint8Array, targetOffset: number, key: number, maskOffset: number): void {
  const length = source.length
  if (native !== null && length >= NATIVE_MIN) {
    // Masking and unmasking are the same XOR: Node's masking routine copies as it goes.
    native.mask(source, keyBytes(key, maskOffset), target, targetOffset, length)
    return
  }
  if (simd === null || length < SIMD_MIN) {
    const copy = target.subarray(targetOffset, targetOffset + length)
    copy.set(source)
    unmask(copy, key, maskOffset)
    return
  }
  const little = keyByte(key, maskOffset) | (keyByte(key, maskOffset + 1) << 8) |
    (keyByte(key, maskOffset + 2) << 16) | (keyByte(key, maskOffset + 3) << 24)
  simd.xor(source, 0, length, little, target, targetOffset)
}

/**
 * The key's 4 octets from key index `maskOffset` on, in a buffer reused by
 * every call: what Node's routines take, which start at octet 0.
 */
function keyBytes (key: number, maskOffset: number): Buffer {
  const shift = (maskOffset & 3) << 3
  KEY.writeUInt32BE(shift === 0 ? key : ((key << shift) | (key >>> (32 - shift))) >>> 0, 0)
  return KEY
}

const KEY = Buffer.alloc(4)

/**
 * Node's native masking (Node 26 and later; what `ws` uses there too): XORs
 * with a 4-byte key buffer, in place or copying into `output` from `offset`.
 */
interface NativeMask {
  mask (source: Uint8Array, key: Uint8Array, output: Uint8Array, offset: number, length: number): void
  unmask (data: Uint8Array, key: Uint8Array): void
}

const native: NativeMask | null = (() => {
  // Pure functions that Node exports from node:http; taken without an ESM import of it (see lib/builtins.ts).
  const { websocketMask, websocketUnmask } = process.getBuiltinModule('node:http') as unknown as { websocketMask?: NativeMask['mask'], websocketUnmask?: NativeMask['unmask'] }
  return typeof websocketMask === 'function' && typeof websocketUnmask === 'function'
    ? { mask: websocketMask, unmask: websocketUnmask }
    : null
})()

/**
 * From this many bytes Node's routine beats the JavaScript loops, its call
 * included (Node 26, x64: 25 ns for 128 bytes against 18 ns for the word loop
 * without its view, 27 against 35 ns at 256).
 */
const NATIVE_MIN = 128

/** Octet `index` mod 4 of a big-endian key. */
function keyByte (key: number, index: number): number {
  return (key >>> (24 - ((index & 3) << 3))) & 0xff
}

/** Below this many bytes a byte loop beats creating a 32-bit view. */
const WORD_LOOP_MIN = 64
/**
 * From this many bytes the SIMD routine, copies included, beats the word loop
 * (measured on Node 20, x64: even at 640 bytes, 1 KiB 0.84x the word loop's
 * time, 4 KiB 0.6x).
 */
const SIMD_MIN = 768

/**
 * The SIMD routine, assembled by hand from this WebAssembly text (105 bytes):
 *
 *   (module
 *     (memory (export "memory") 1)                      ;; one 64 KiB page
 *     (func (export "mask") (param $len i32) (param $key i32)
 *       (local $i i32) (local $end i32) (local $k v128)
 *       (local.set $k (i32x4.splat (local.get $key)))
 *       (local.set $end (i32.and (local.get $len) (i32.const -16)))
 *       (block $done (loop $next
 *         (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
 *         (v128.store (local.get $i) (v128.xor (v128.load (local.get $i)) (local.get $k)))
 *         (local.set $i (i32.add (local.get $i) (i32.const 16)))
 *         (br $next)))))
 *
 * `mask(len, key)` XORs bytes [0, len rounded down to 16) of its memory with
 * the little-endian key; callers pass len rounded up, since what lies past
 * their data in the page is never read back. Bytes are copied into the
 * memory, masked there and copied out to their destination: in place, or
 * into another buffer (`unmaskInto`).
 */
const SIMD_MASK_MODULE = Buffer.from(
  '0061736d01000000' + // magic, version 1
  '01060160027f7f00' + // type section: (i32, i32) -> ()
  '03020100' + // function section: function 0 has type 0
  '0503010001' + // memory section: one memory, at least 1 page
  '071102066d656d6f7279020004' + '6d61736b0000' + // export section: "memory" (memory 0), "mask" (function 0)
  '0a3b0139' + // code section: one body of 57 bytes
  '02027f017b' + // locals: 2 x i32, 1 x v128
  '2001fd112104' + // k = i32x4.splat(key)
  '2000417071210302400340' + // end = len & -16; block; loop
  '200220034f0d01' + // br_if done (i >= end)
  '20022002fd0004002004fd51fd0b0400' + // v128.store(i, v128.xor(v128.load(i), k))
  '200241106a21020c000b0b0b', // i += 16; br next; end end end
  'hex')

/** The part of the WebAssembly API used here; TypeScript declares it only in its DOM library. */
declare const WebAssembly: {
  validate (bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => { exports: Record<string, unknown> }
}

/** The SIMD routine, or null where WASM SIMD is missing. */
const simd = loadSimd()

/**
 * The SIMD routine bound to its memory: XORs `length` bytes of `source` from
 * `start` with the little-endian `key` into `target` from `targetStart`
 * (`target` may be `source`).
 */
interface SimdMask {
  xor (source: Uint8Array, start: number, length: number, key: number, target: Uint8Array, targetStart: number): void
}

function loadSimd (): SimdMask | null {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_MASK_MODULE)) return null
  let instance: { exports: Record<string, unknown> }
  try {
    instance = new WebAssembly.Instance(new WebAssembly.Module(SIMD_MASK_MODULE))
  } catch {
    // Compiling may be refused even for a valid module (--jitless, code-generation policies): use the word loop.
    return null
  }
  const memory = new Uint8Array((instance.exports.memory as { buffer: ArrayBuffer }).buffer)
  const mask = instance.exports.mask as (length: number, key: number) => void
  const page = memory.length
  return {
    xor (source, start, length, key, target, targetStart) {
      // Blocks of a page; each starts at a multiple of 4 bytes, so the key's phase holds.
      for (let done = 0; done < length; done += page) {
        const n = Math.min(page, length - done)
        memory.set(source.subarray(start + done, start + done + n), 0)
        mask((n + 15) & ~15, key)
        target.set(memory.subarray(0, n), targetStart + done)
      }
    }
  }
}
