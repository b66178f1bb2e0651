/**
 * Shared helpers for the protocol unit tests (test/protocol) and the property
 * suite (test/fuzz). Bytes only: no sockets, no mocks. The Session is sans-I/O
 * by design, so `RecordingIO` is simply the SessionIO a test owns.
 */
import fc from 'fast-check'
import type { Test } from 'tap'
import type { ProtocolError } from '../../lib/protocol/errors.js'
import type { MessageReader } from '../../lib/protocol/message.js'
import { Session, type SessionIO } from '../../lib/protocol/session.js'
import { MASKING_KEY as RFC_MASK } from '../support/frames.js'

/** The masking key of the RFC 6455 §5.7 examples (RFC_MASK), and one masked client frame as bytes (§5.3). */
export { clientFrame, MASKING_KEY as RFC_MASK } from '../support/frames.js'

/** `Buffer.from` for a list of byte values, so vectors read like the RFC. */
export function bytes (...values: number[]): Buffer {
  return Buffer.from(values)
}

/**
 * A client frame header written field by field, for headers encodeFrame
 * cannot produce (RSV2/RSV3, reserved opcodes, the 64-bit length's top bit,
 * non-minimal lengths). `length` is the payload length field value; `form`
 * picks the 7-bit, 16-bit or 64-bit encoding.
 */
export function rawHeader (b0: number, length: bigint, options: { masked?: boolean, form?: 7 | 16 | 64, mask?: Uint8Array } = {}): Buffer {
  const masked = options.masked ?? true
  const form = options.form ?? (length < 126n ? 7 : length < 65536n ? 16 : 64)
  const parts: Buffer[] = []
  const maskBit = masked ? 0x80 : 0
  if (form === 7) {
    parts.push(bytes(b0, maskBit | Number(length)))
  } else if (form === 16) {
    const b = Buffer.alloc(4)
    b[0] = b0
    b[1] = maskBit | 126
    b.writeUInt16BE(Number(length), 2)
    parts.push(b)
  } else {
    const b = Buffer.alloc(10)
    b[0] = b0
    b[1] = maskBit | 127
    b.writeBigUInt64BE(length, 2)
    parts.push(b)
  }
  if (masked) parts.push(Buffer.from(options.mask ?? RFC_MASK))
  return Buffer.concat(parts)
}

/** `data` XORed with `mask` from key index 0, computed byte by byte (RFC 6455 §5.3). */
export function naiveMask (data: Uint8Array, mask: Uint8Array, maskOffset = 0): Buffer {
  const out = Buffer.alloc(data.length)
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ mask[(maskOffset + i) % 4]
  return out
}

/** A frame the server wrote, decoded from the `write(header, payload)` call. */
export interface ServerFrame {
  fin: boolean
  rsv1: boolean
  opcode: number
  payload: Buffer
}

export type SessionEvent =
  | { type: 'write', header: Buffer, payload: Buffer }
  | { type: 'end' }
  | { type: 'hold', on: boolean }
  | { type: 'message', data: Buffer, isBinary: boolean }
  | { type: 'ping', data: Buffer }
  | { type: 'pong', data: Buffer }
  | { type: 'failed', error: ProtocolError }

/**
 * The SessionIO of a test: records every call, in order. Buffers are copied
 * because the Session hands out views of the chunks it was given.
 */
export class RecordingIO implements SessionIO {
  readonly events: SessionEvent[] = []

  write (header: Buffer, payload: Buffer): void {
    this.events.push({ type: 'write', header: Buffer.from(header), payload: Buffer.from(payload) })
  }

  end (): void {
    this.events.push({ type: 'end' })
  }

  hold (on: boolean): void {
    this.events.push({ type: 'hold', on })
  }

  message (data: Buffer, isBinary: boolean): void {
    this.events.push({ type: 'message', data: Buffer.from(data), isBinary })
  }

  ping (data: Buffer): void {
    this.events.push({ type: 'ping', data: Buffer.from(data) })
  }

  pong (data: Buffer): void {
    this.events.push({ type: 'pong', data: Buffer.from(data) })
  }

  failed (error: ProtocolError): void {
    this.events.push({ type: 'failed', error })
  }

  get failures (): ProtocolError[] {
    return this.events.flatMap((e) => e.type === 'failed' ? [e.error] : [])
  }

  get messages (): Array<{ data: Buffer, isBinary: boolean }> {
    return this.events.flatMap((e) => e.type === 'message' ? [{ data: e.data, isBinary: e.isBinary }] : [])
  }

  get ends (): number {
    return this.events.filter((e) => e.type === 'end').length
  }

  /** The frames written, decoded; throws if a header is malformed for a server frame. */
  get frames (): ServerFrame[] {
    return this.events.flatMap((e) => e.type === 'write' ? [decodeServerFrame(e.header, e.payload)] : [])
  }

  /** Deliveries to the application (message, ping, pong), in order, as comparable values. */
  get deliveries (): string[] {
    return this.events.flatMap((e) => {
      if (e.type === 'message') return [`${e.isBinary ? 'binary' : 'text'}:${e.data.toString('hex')}`]
      if (e.type === 'ping' || e.type === 'pong') return [`${e.type}:${e.data.toString('hex')}`]
      return []
    })
  }
}

/**
 * Decodes one server frame from its header and payload, checking the header
 * is what RFC 6455 §5.1/§5.2 requires of a server: no masking key, RSV2/RSV3
 * clear, the minimal payload length form, matching the payload given.
 */
export function decodeServerFrame (header: Buffer, payload: Buffer): ServerFrame {
  if (header.length < 2) throw new Error(`server header of ${header.length} bytes`)
  if ((header[1] & 0x80) !== 0) throw new Error('server frame is masked')
  if ((header[0] & 0x30) !== 0) throw new Error('server frame has RSV2/RSV3 set')
  let length = header[1] & 0x7f
  let headerLength = 2
  if (length === 126) {
    length = header.readUInt16BE(2)
    headerLength = 4
    if (length < 126) throw new Error('non-minimal 16-bit payload length')
  } else if (length === 127) {
    length = Number(header.readBigUInt64BE(2))
    headerLength = 10
    if (length < 65536) throw new Error('non-minimal 64-bit payload length')
  }
  if (header.length !== headerLength) throw new Error(`header is ${header.length} bytes, expected ${headerLength}`)
  if (length !== payload.length) throw new Error(`header declares ${length} bytes, payload has ${payload.length}`)
  return { fin: (header[0] & 0x80) !== 0, rsv1: (header[0] & 0x40) !== 0, opcode: header[0] & 0x0f, payload }
}

/** White-box: the message reader behind a session's parser (its frame sink); null before the first bytes. */
export function readerOf (session: Session): MessageReader | null {
  return (session.parser?.['sink'] ?? null) as MessageReader | null
}

/** The close code of a written close frame, 1005 for an empty body. */
export function closeCodeOf (frame: ServerFrame): number {
  return frame.payload.length === 0 ? 1005 : frame.payload.readUInt16BE(0)
}

export function newSession (maxPayload = 1 << 20): { session: Session, io: RecordingIO } {
  const io = new RecordingIO()
  return { session: new Session(io, maxPayload), io }
}

/**
 * Feeds chunks to a Session, each a fresh copy (the parser unmasks in place,
 * so a vector must never be handed over twice).
 */
export function feed (session: Session, chunks: Iterable<Uint8Array>): void {
  for (const chunk of chunks) session.receive(Buffer.from(chunk))
}

/** `data` one byte at a time. */
export function byteChunks (data: Uint8Array): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < data.length; i++) out.push(Buffer.from(data.subarray(i, i + 1)))
  return out
}

/** `data` cut at the given (sorted, in-range) offsets. */
export function splitAt (data: Uint8Array, offsets: number[]): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  for (const at of offsets) {
    out.push(Buffer.from(data.subarray(from, at)))
    from = at
  }
  out.push(Buffer.from(data.subarray(from)))
  return out
}

/** The two ways every vector is fed: whole, and one byte at a time. */
export function chunkings (data: Uint8Array): Array<[string, Buffer[]]> {
  return [['whole', [Buffer.from(data)]], ['one byte at a time', byteChunks(data)]]
}

/**
 * Asserts that feeding `data` (whole, then one byte at a time) fails the
 * connection exactly once with `closeCode` and `code`: one `failed` call, a
 * close frame carrying the close code written, TCP ended, and no delivery.
 */
export function assertFails (t: Test, data: Uint8Array, closeCode: number, code: string, maxPayload?: number): void {
  for (const [how, chunks] of chunkings(data)) {
    const { session, io } = newSession(maxPayload)
    feed(session, chunks)
    assertFailedOnce(t, io, closeCode, code, how)
  }
}

/**
 * The assertions of `assertFails` on a session already fed; `messagesBefore`
 * is how many messages were rightly delivered before the failure.
 */
export function assertFailedOnce (t: Test, io: RecordingIO, closeCode: number, code: string, how = '', messagesBefore = 0): void {
  const prefix = how === '' ? '' : `${how}: `
  const failures = io.failures
  t.equal(failures.length, 1, `${prefix}exactly one failed() call`)
  if (failures.length !== 1) return
  t.equal(failures[0].closeCode, closeCode, `${prefix}close code ${closeCode}`)
  t.equal(failures[0].code, code, `${prefix}error code ${code}`)
  const closes = io.frames.filter((f) => f.opcode === 0x8)
  t.equal(closes.length, 1, `${prefix}one close frame written`)
  if (closes.length === 1) t.equal(closeCodeOf(closes[0]), closeCode, `${prefix}close frame carries ${closeCode}`)
  t.ok(io.ends >= 1, `${prefix}end() called`)
  t.equal(io.messages.length, messagesBefore, `${prefix}${messagesBefore} message(s) delivered, none after the failure`)
}

/** Asserts that feeding `data` (whole, then one byte at a time) raises no failure. */
export function assertAccepted (t: Test, data: Uint8Array, maxPayload?: number): RecordingIO[] {
  const ios: RecordingIO[] = []
  for (const [how, chunks] of chunkings(data)) {
    const { session, io } = newSession(maxPayload)
    feed(session, chunks)
    t.same(io.failures.map((e) => `${e.code} ${e.message}`), [], `${how}: no failure`)
    ios.push(io)
  }
  return ios
}

/** Property-test parameters: FUZZ_RUNS and FUZZ_SEED override the defaults. */
export function fuzzParams (defaultRuns = 300): { numRuns: number, seed: number } {
  const runs = Number(process.env.FUZZ_RUNS ?? defaultRuns)
  const seed = Number(process.env.FUZZ_SEED ?? 6455)
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be a positive integer, got ${process.env.FUZZ_RUNS}`)
  if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${process.env.FUZZ_SEED}`)
  return { numRuns: runs, seed }
}

/**
 * Runs a fast-check property with `fuzzParams()` and reports it as one tap
 * assertion; a failure carries fast-check's report (seed, path, shrunk counterexample).
 */
export function checkProperty<Ts> (t: Test, name: string, property: fc.IProperty<Ts>, defaultRuns?: number): void {
  const params = fuzzParams(defaultRuns)
  const details = fc.check(property, params)
  if (details.failed) {
    const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
    t.fail(`${name}\n${fc.defaultReportMessage(details) ?? ''}\nError: ${error}`)
  } else {
    t.pass(`${name}: ${details.numRuns} runs, seed ${params.seed}`)
  }
}

// Chunking plans for the property suite (test/fuzz).

/**
 * How a byte stream is cut into chunks: random cut points, a fixed small
 * chunk size, or cuts right after every frame header and frame end (plus a
 * few random ones), the way a client writing header and payload apart sends them.
 */
export type ChunkPlan = { cuts: number[] } | { size: number } | { boundaries: true, cuts: number[] }

export const chunkPlanArb: fc.Arbitrary<ChunkPlan> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ cuts: fc.array(fc.nat(), { maxLength: 24 }) }) },
  { weight: 1, arbitrary: fc.record({ size: fc.integer({ min: 1, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ boundaries: fc.constant(true as const), cuts: fc.array(fc.nat(), { maxLength: 4 }) }) }
)

/** A byte stream and the offsets where its frames' headers and frames end. */
export interface Stream { bytes: Buffer, boundaries: number[] }

export function applyPlan (stream: Stream, plan: ChunkPlan): Buffer[] {
  const data = stream.bytes
  if ('size' in plan) {
    const out: Buffer[] = []
    for (let i = 0; i < data.length; i += plan.size) out.push(Buffer.from(data.subarray(i, i + plan.size)))
    return out.length === 0 ? [Buffer.alloc(0)] : out
  }
  const all = 'boundaries' in plan ? [...plan.cuts, ...stream.boundaries] : plan.cuts
  const cuts = [...new Set(all.map((c) => c % (data.length + 1)))].sort((a, b) => a - b)
  return splitAt(data, cuts)
}

/** Frames concatenated into a Stream; `payloadLengths[i]` tells where frame i's header ends. */
export function streamOf (frames: Buffer[], payloadLengths: number[]): Stream {
  const boundaries: number[] = []
  let offset = 0
  frames.forEach((frame, i) => {
    boundaries.push(offset + frame.length - payloadLengths[i], offset + frame.length)
    offset += frame.length
  })
  return { bytes: Buffer.concat(frames), boundaries }
}
