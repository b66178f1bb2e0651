/**
 * Property and fuzz suite for the frame parser, the message reader and the
 * Session (fast-check, fixed seed). FUZZ_RUNS sets the runs per property,
 * FUZZ_SEED the seed; a failure prints both and the shrunk counterexample.
 */
import { isUtf8 } from 'node:buffer'
import fc from 'fast-check'
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { FrameParser, type FrameSink } from '../../lib/protocol/parser.js'
import type { Session } from '../../lib/protocol/session.js'
import {
  applyPlan, byteChunks, checkProperty, chunkPlanArb, clientFrame, closeCodeOf, newSession, rawHeader, type RecordingIO,
  readerOf, splitAt, type Stream, streamOf
} from '../protocol/helpers.js'

// ---------------------------------------------------------------------------
// Arbitraries

const maskArb = fc.uint8Array({ minLength: 4, maxLength: 4 })

/** Payload bytes, occasionally long enough for the 64-bit payload length (filled from a seed, cheap to generate). */
function payloadArb (maxLength: number, allowHuge: boolean): fc.Arbitrary<Uint8Array> {
  const small = fc.uint8Array({ maxLength })
  if (!allowHuge) return small
  const huge = fc.tuple(fc.integer({ min: 65536, max: 70000 }), fc.integer({ min: 0, max: 255 }))
    .map(([length, seed]) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff))
  return fc.oneof({ weight: 30, arbitrary: small }, { weight: 1, arbitrary: huge })
}

interface FrameDesc {
  opcode: number
  fin: boolean
  rsv1: boolean
  payload: Uint8Array
  mask: Uint8Array
}

/** Any frame the frame-level rules accept; RSV1 set at random (the parser is told it is allowed). */
const frameArb: fc.Arbitrary<FrameDesc> = fc.oneof(
  fc.record({
    opcode: fc.constantFrom(Opcode.Continuation, Opcode.Text, Opcode.Binary),
    fin: fc.boolean(),
    rsv1: fc.boolean(),
    payload: payloadArb(4096, true),
    mask: maskArb
  }),
  fc.record({
    opcode: fc.constantFrom(Opcode.Close, Opcode.Ping, Opcode.Pong),
    fin: fc.constant(true),
    rsv1: fc.boolean(),
    payload: fc.uint8Array({ maxLength: 125 }),
    mask: maskArb
  })
)

function encodeClient (frame: FrameDesc): Buffer {
  return Buffer.concat(encodeFrame(frame.opcode, frame.payload, { fin: frame.fin, rsv1: frame.rsv1, mask: frame.mask }))
}

type Control = { opcode: typeof Opcode.Ping | typeof Opcode.Pong, payload: Uint8Array, mask: Uint8Array }

const controlArb: fc.Arbitrary<Control> = fc.record({
  opcode: fc.constantFrom(Opcode.Ping, Opcode.Pong),
  payload: fc.uint8Array({ maxLength: 125 }),
  mask: maskArb
})

/** A data message: fragmented at random, with pings and pongs between its fragments. */
interface MessageDesc {
  isBinary: boolean
  payload: Uint8Array
  cuts: number[]
  interleaved: Array<{ at: number, control: Control }>
  masks: Uint8Array[]
}

function messageArb (maxLength: number): fc.Arbitrary<MessageDesc> {
  return fc.record({
    isBinary: fc.boolean(),
    text: fc.string({ unit: 'binary', maxLength: Math.floor(maxLength / 4) }),
    binary: fc.uint8Array({ maxLength }),
    cuts: fc.array(fc.nat(), { maxLength: 4 }),
    interleaved: fc.array(fc.record({ at: fc.nat(), control: controlArb }), { maxLength: 3 }),
    masks: fc.array(maskArb, { minLength: 5, maxLength: 5 })
  }).map(({ isBinary, text, binary, cuts, interleaved, masks }) => ({
    isBinary, payload: isBinary ? binary : Buffer.from(text, 'utf8'), cuts, interleaved, masks
  }))
}

const closeArb = fc.record({
  code: fc.oneof(fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014), fc.integer({ min: 3000, max: 4999 })),
  reason: fc.string({ maxLength: 30 }),
  mask: maskArb
})

type Item = { message: MessageDesc } | { control: Control }

interface Conversation {
  items: Item[]
  close: { code: number, reason: string, mask: Uint8Array } | null
  /** Frames the client sends after its close frame: a server must discard them (§1.4). */
  trailing: Item[]
}

function itemsArb (maxLength: number, maxItems: number): fc.Arbitrary<Item[]> {
  return fc.array(fc.oneof(
    { weight: 3, arbitrary: messageArb(maxLength).map((message) => ({ message })) },
    { weight: 1, arbitrary: controlArb.map((control) => ({ control })) }
  ), { maxLength: maxItems })
}

/** A conversation: messages and lone control frames, then maybe the client's close frame and more frames. */
function conversationArb (maxLength: number): fc.Arbitrary<Conversation> {
  return fc.record({
    items: itemsArb(maxLength, 6),
    close: fc.option(closeArb, { freq: 3 }),
    trailing: itemsArb(200, 2)
  })
}

const hex = (data: Uint8Array): string => Buffer.from(data).toString('hex')
const deliveryOf = (control: Control): string => `${control.opcode === Opcode.Ping ? 'ping' : 'pong'}:${hex(control.payload)}`

/**
 * The bytes of a conversation and what a Session must make of them: the
 * deliveries in order and the pongs it must write. Nothing after the close
 * frame counts: "after receiving a control frame indicating the connection
 * should be closed, a peer discards any further data received" (§1.4).
 */
function build (conversation: Conversation): { stream: Stream, deliveries: string[], pongs: string[], closeCode: number | null } {
  const frames: Buffer[] = []
  const payloadLengths: number[] = []
  const deliveries: string[] = []
  const pongs: string[] = []
  let closed = false
  const push = (frame: Buffer, payloadLength: number): void => {
    frames.push(frame)
    payloadLengths.push(payloadLength)
  }
  const control = (c: Control): void => {
    push(clientFrame(c.opcode, c.payload, { mask: c.mask }), c.payload.length)
    if (closed) return
    deliveries.push(deliveryOf(c))
    if (c.opcode === Opcode.Ping) pongs.push(hex(c.payload))
  }
  const items = (list: Item[]): void => {
    for (const item of list) {
      if ('control' in item) {
        control(item.control)
        continue
      }
      const m = item.message
      const cuts = [...new Set(m.cuts.map((c) => c % (m.payload.length + 1)))].sort((a, b) => a - b)
      const fragments = splitAt(m.payload, cuts)
      fragments.forEach((fragment, i) => {
        const opcode = i === 0 ? (m.isBinary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation
        const last = i === fragments.length - 1
        push(clientFrame(opcode, fragment, { fin: last, mask: m.masks[i % m.masks.length] }), fragment.length)
        if (last) {
          if (!closed) deliveries.push(`${m.isBinary ? 'binary' : 'text'}:${hex(m.payload)}`)
        } else {
          for (const { control: c } of m.interleaved.filter((x) => x.at % (fragments.length - 1) === i)) control(c)
        }
      })
      if (fragments.length === 1) for (const { control: c } of m.interleaved) control(c)
    }
  }
  items(conversation.items)
  let closeCode: number | null = null
  if (conversation.close !== null) {
    // An ASCII reason of at most 30 bytes: the body stays within 125 bytes.
    const body = Buffer.concat([Buffer.from([conversation.close.code >> 8, conversation.close.code & 0xff]), Buffer.from(conversation.close.reason)])
    push(clientFrame(Opcode.Close, body, { mask: conversation.close.mask }), body.length)
    closeCode = conversation.close.code
    closed = true
    items(conversation.trailing)
  }
  return { stream: streamOf(frames, payloadLengths), deliveries, pongs, closeCode }
}

/** Collects frames from a FrameParser, checking the sink protocol as it goes. */
class CollectingSink implements FrameSink {
  readonly frames: Array<{ fin: boolean, rsv1: boolean, opcode: number, payloadLength: number, payload: string }> = []
  private parts: Buffer[] | null = null
  private header: { fin: boolean, rsv1: boolean, opcode: number, payloadLength: number } | null = null

  frameStart (fin: boolean, rsv1: boolean, opcode: number, payloadLength: number): void {
    if (this.parts !== null) throw new Error('frameStart inside a frame')
    this.header = { fin, rsv1, opcode, payloadLength }
    this.parts = []
  }

  framePayload (data: Buffer, frameEnd: boolean): void {
    if (this.parts === null || this.header === null) throw new Error('framePayload outside a frame')
    this.parts.push(Buffer.from(data))
    if (frameEnd) {
      this.frames.push({ ...this.header, payload: Buffer.concat(this.parts).toString('hex') })
      this.parts = null
    }
  }
}

/** Feeds a copy of each chunk (the parser unmasks in place); Session.receive must never throw. */
function feedAll (session: Session, chunks: Buffer[], afterEach?: () => void): void {
  for (const chunk of chunks) {
    try {
      session.receive(Buffer.from(chunk))
    } catch (error) {
      throw new Error(`Session.receive threw: ${String(error)}`)
    }
    afterEach?.()
  }
}

// ---------------------------------------------------------------------------
// Round trips

test('random frames, encoded with a masking key and cut at random, parse back to the originals', async (t) => {
  checkProperty(t, 'FrameParser round trip', fc.property(
    fc.array(frameArb, { minLength: 1, maxLength: 8 }), chunkPlanArb,
    (frames, plan) => {
      const originals = frames.map((f) => ({ ...f, payload: Buffer.from(f.payload) }))
      const stream = streamOf(frames.map(encodeClient), frames.map((f) => f.payload.length))
      frames.forEach((f, i) => {
        if (!Buffer.from(f.payload).equals(originals[i].payload)) throw new Error('encodeFrame changed its input')
      })
      const sink = new CollectingSink()
      const parser = new FrameParser(sink)
      parser.allowRsv1 = true
      for (const chunk of applyPlan(stream, plan)) parser.push(chunk)
      const expected = originals.map((f) => ({ fin: f.fin, rsv1: f.rsv1, opcode: f.opcode, payloadLength: f.payload.length, payload: hex(f.payload) }))
      if (JSON.stringify(sink.frames) !== JSON.stringify(expected)) {
        throw new Error(`parsed ${sink.frames.length} frames, expected ${expected.length}; first difference at frame ${sink.frames.findIndex((f, i) => JSON.stringify(f) !== JSON.stringify(expected[i]))}`)
      }
    }
  ))
})

test('random conversations through a Session, cut at random, are delivered exactly', async (t) => {
  checkProperty(t, 'Session round trip', fc.property(conversationArb(4096), chunkPlanArb, (conversation, plan) => {
    const { stream, deliveries, pongs, closeCode } = build(conversation)
    const { session, io } = newSession(1 << 20)
    feedAll(session, applyPlan(stream, plan))
    if (io.failures.length > 0) throw new Error(`failed: ${io.failures[0].code} ${io.failures[0].message}`)
    const got = io.deliveries
    if (JSON.stringify(got) !== JSON.stringify(deliveries)) throw new Error(`deliveries differ:\n got ${JSON.stringify(got).slice(0, 400)}\nwant ${JSON.stringify(deliveries).slice(0, 400)}`)
    const frames = io.frames
    const written = frames.filter((f) => f.opcode === Opcode.Pong).map((f) => hex(f.payload))
    if (JSON.stringify(written) !== JSON.stringify(pongs)) throw new Error('pongs differ from the pings')
    const closes = frames.filter((f) => f.opcode === Opcode.Close)
    if (closeCode === null) {
      if (closes.length !== 0 || io.ends !== 0) throw new Error('closed without a close frame')
    } else {
      if (closes.length !== 1 || closeCodeOf(closes[0]) !== closeCode) throw new Error('close frame not echoed with its code')
      if (io.ends !== 1) throw new Error(`end() called ${io.ends} times`)
      if (session.closeCode !== closeCode) throw new Error('closeCode not recorded')
    }
  }))
})

// ---------------------------------------------------------------------------
// Hostile input

const MAX_PAYLOAD = 1024

/** A first byte: usually a valid FIN/opcode combination, sometimes anything. */
const firstByteArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ fin: fc.boolean(), opcode: fc.constantFrom(0, 1, 2, 8, 9, 10) }).map(({ fin, opcode }) => (fin ? 0x80 : 0) | opcode) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }
)

const lengthArb: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 130 }).map(BigInt) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 1500 }).map(BigInt) },
  { weight: 2, arbitrary: fc.constantFrom(125n, 126n, 127n, 1023n, 1024n, 1025n, 65535n, 65536n, 2n ** 40n, 2n ** 63n - 1n, 2n ** 63n) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }
)

/** Payload bytes for a wild frame: random, valid UTF-8, or UTF-8 with one byte changed. */
const wildPayloadArb = fc.oneof(
  fc.uint8Array({ maxLength: 1500 }),
  fc.string({ unit: 'binary', maxLength: 300 }).map((s) => Buffer.from(s, 'utf8')),
  fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }), fc.nat(), fc.integer({ min: 0, max: 255 }))
    .map(([s, at, value]) => {
      const b = Buffer.from(s, 'utf8')
      b[at % b.length] = value
      return b
    })
)

/** A frame header with any fields, then up to its declared length of payload (masked). */
const wildFrameArb = fc.record({
  b0: firstByteArb,
  length: lengthArb,
  masked: fc.oneof({ weight: 15, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  nonMinimal: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(16 as const, 64 as const) }),
  payload: wildPayloadArb,
  mask: maskArb
}).map(({ b0, length, masked, nonMinimal, payload, mask }) => {
  const form = nonMinimal !== null && length < (nonMinimal === 16 ? 65536n : 2n ** 64n) ? nonMinimal : undefined
  const header = rawHeader(b0, length, { masked, form, mask })
  const body = Buffer.from(payload.subarray(0, Number(length < 100000n ? length : 100000n)))
  if (masked) for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3]
  return { frame: Buffer.concat([header, body]), payloadLength: body.length }
})

interface Mutation { kind: 'flip' | 'set' | 'insert' | 'delete' | 'truncate', at: number, value: number }

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('flip' as const, 'set' as const, 'insert' as const, 'delete' as const, 'truncate' as const),
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 })
})

/** Applies mutations; the boundaries are kept (they shift by a byte or so, which is fine for chunking). */
function mutate (stream: Stream, mutations: Mutation[]): Stream {
  let out = Buffer.from(stream.bytes)
  for (const m of mutations) {
    if (out.length === 0) break
    const at = m.at % out.length
    if (m.kind === 'flip') out[at] ^= 1 << (m.value & 7)
    else if (m.kind === 'set') out[at] = m.value
    else if (m.kind === 'insert') out = Buffer.concat([out.subarray(0, at), Buffer.from([m.value]), out.subarray(at)])
    else if (m.kind === 'delete') out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)])
    else out = out.subarray(0, at)
  }
  return { bytes: out, boundaries: stream.boundaries }
}

/** Hostile streams of three kinds: random bytes, wild frames, mutated valid conversations. */
const hostileStreamArb: fc.Arbitrary<Stream> = fc.oneof(
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => ({ bytes: Buffer.from(b), boundaries: [] })) },
  {
    weight: 3,
    arbitrary: fc.array(wildFrameArb, { minLength: 1, maxLength: 6 })
      .map((frames) => streamOf(frames.map((f) => f.frame), frames.map((f) => f.payloadLength)))
  },
  {
    weight: 3,
    arbitrary: fc.tuple(conversationArb(3000), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
      .map(([conversation, mutations]) => mutate(build(conversation).stream, mutations))
  }
)

/**
 * What a Session made of a stream, for comparing chunkings: deliveries, the
 * failure's close code, the close frames written and whether the TCP
 * connection was ended. Checks the per-run invariants on the way.
 */
function outcome (io: RecordingIO): string {
  const failures = io.failures
  if (failures.length > 1) throw new Error(`${failures.length} failed() calls`)
  const closes = io.frames.filter((f) => f.opcode === Opcode.Close).map(closeCodeOf)
  if (failures.length === 1) {
    const error = failures[0]
    if (![1002, 1007, 1009].includes(error.closeCode)) throw new Error(`close code ${error.closeCode} (${error.code})`)
    if (!error.code.startsWith('WS_ERR_')) throw new Error(`error code ${error.code}`)
    const after = io.events.slice(io.events.findIndex((e) => e.type === 'failed') + 1)
    if (after.some((e) => e.type !== 'end')) throw new Error(`after failed(): ${after.map((e) => e.type).join(', ')}`)
    if (closes.length !== 1 || closes[0] !== error.closeCode) throw new Error(`close frames written: ${JSON.stringify(closes)}, failed with ${error.closeCode}`)
    if (io.ends < 1) throw new Error('failed without end()')
  } else if (closes.length > 1) {
    throw new Error(`${closes.length} close frames written`)
  }
  for (const m of io.messages) {
    if (m.data.length > MAX_PAYLOAD) throw new Error(`delivered a message of ${m.data.length} bytes over maxPayload ${MAX_PAYLOAD}`)
    if (!m.isBinary && !isUtf8(m.data)) throw new Error(`delivered text that is not UTF-8: ${hex(m.data).slice(0, 200)}`)
  }
  for (const e of io.events) {
    if ((e.type === 'ping' || e.type === 'pong') && e.data.length > 125) throw new Error(`${e.type} of ${e.data.length} bytes`)
  }
  // Nothing is delivered or written once the TCP connection is being ended.
  // (The order of end() and failed() is checked in test/protocol/session.test.ts.)
  const endAt = io.events.findIndex((e) => e.type === 'end')
  const late = endAt < 0 ? [] : io.events.slice(endAt).filter((e) => e.type !== 'end' && e.type !== 'failed')
  if (late.length > 0) throw new Error(`calls after end(): ${late.map((e) => e.type).join(', ')}`)
  return JSON.stringify({
    deliveries: io.deliveries,
    failed: failures.length === 1 ? failures[0].closeCode : null,
    closes,
    ended: io.ends > 0
  })
}

/** Feeds `chunks` to a fresh Session, checking its memory stays bounded after every chunk; returns the outcome. */
function run (chunks: Buffer[]): string {
  const { session, io } = newSession(MAX_PAYLOAD)
  feedAll(session, chunks, () => {
    // White-box: the message buffer never exceeds maxPayload, a control payload never exceeds 125 bytes.
    const buffered = readerOf(session)?.['buffer']?.length ?? 0
    if (buffered > MAX_PAYLOAD) throw new Error(`message buffer of ${buffered} bytes`)
    const control = readerOf(session)?.['control']?.length ?? 0
    if (control > 125) throw new Error(`control buffer of ${control} bytes`)
  })
  return outcome(io)
}

test('hostile streams: receive never throws, fails at most once with 1002/1007/1009, never delivers over maxPayload', async (t) => {
  checkProperty(t, 'invariants under random chunking', fc.property(hostileStreamArb, chunkPlanArb, (stream, plan) => {
    run(applyPlan(stream, plan))
  }))
})

test('hostile streams: the outcome does not depend on how the bytes are chunked', async (t) => {
  checkProperty(t, 'whole = random chunks = one byte at a time', fc.property(hostileStreamArb, chunkPlanArb, (stream, plan) => {
    const whole = run([Buffer.from(stream.bytes)])
    const chunked = run(applyPlan(stream, plan))
    if (chunked !== whole) throw new Error(`random chunks differ from whole:\n whole ${whole.slice(0, 600)}\nchunks ${chunked.slice(0, 600)}`)
    if (stream.bytes.length <= 4096) {
      const bytewise = run(byteChunks(stream.bytes))
      if (bytewise !== whole) throw new Error(`one byte at a time differs from whole:\n    whole ${whole.slice(0, 600)}\nbytewise ${bytewise.slice(0, 600)}`)
    }
  }))
})

test('a control frame gets the same verdict whole and one byte at a time, whatever its payload length form', async (t) => {
  checkProperty(t, 'control frame length forms', fc.property(
    fc.constantFrom(Opcode.Ping, Opcode.Pong, Opcode.Close), fc.integer({ min: 0, max: 130 }), fc.constantFrom(7 as const, 16 as const, 64 as const), maskArb,
    (opcode, length, form, mask) => {
      if (form === 7 && length > 125) return
      const payload = opcode === Opcode.Close ? Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(Math.max(0, length - 2), 0x61)]).subarray(0, length) : Buffer.alloc(length, 0x61)
      const masked = Buffer.from(payload)
      for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i & 3]
      const frame = Buffer.concat([rawHeader(0x80 | opcode, BigInt(length), { form, mask }), masked])
      const whole = run([frame])
      const bytewise = run(byteChunks(frame))
      if (whole !== bytewise) throw new Error(`opcode ${opcode}, length ${length} in the ${form}-bit form:\n    whole ${whole}\nbytewise ${bytewise}`)
    }
  ))
})

// ---------------------------------------------------------------------------
// maxPayload

test('maxPayload: a message fails with 1009 at the header of the frame that crosses the limit, never later', async (t) => {
  checkProperty(t, 'fail at the crossing header', fc.property(
    fc.array(fc.integer({ min: 0, max: 700 }), { minLength: 1, maxLength: 6 }),
    fc.integer({ min: 0, max: 3000 }),
    maskArb,
    (fragmentLengths, maxPayload, mask) => {
      const { session, io } = newSession(maxPayload)
      let total = 0
      for (let i = 0; i < fragmentLengths.length; i++) {
        const length = fragmentLengths[i]
        const frame = clientFrame(i === 0 ? Opcode.Binary : Opcode.Continuation, Buffer.alloc(length, i), { fin: i === fragmentLengths.length - 1, mask })
        const headerLength = frame.length - length
        total += length
        session.receive(frame.subarray(0, headerLength))
        if (total > maxPayload) {
          // The header alone must have failed it: no payload byte of this frame was fed.
          if (io.failures.length !== 1 || io.failures[0].closeCode !== 1009) throw new Error(`no 1009 after the header taking the message to ${total} > ${maxPayload}`)
          if (io.messages.length !== 0) throw new Error('delivered')
          return
        }
        if (io.failures.length !== 0) throw new Error(`failed at ${total} <= ${maxPayload}: ${io.failures[0].code}`)
        session.receive(frame.subarray(headerLength))
      }
      if (io.messages.length !== 1 || io.messages[0].data.length !== total) throw new Error(`message of ${total} <= ${maxPayload} bytes not delivered`)
    }
  ))
})

test('any declared 64-bit length over maxPayload fails on the header alone: 1009, or 1002 with the top bit set', async (t) => {
  checkProperty(t, 'declared length', fc.property(
    fc.bigInt({ min: BigInt(MAX_PAYLOAD) + 1n, max: 2n ** 64n - 1n }), fc.constantFrom(0x81, 0x82, 0x01, 0x02), maskArb,
    (length, b0, mask) => {
      const { session, io } = newSession(MAX_PAYLOAD)
      session.receive(rawHeader(b0, length, { form: 64, mask }))
      const expected = length >= 2n ** 63n ? 1002 : 1009
      if (io.failures.length !== 1 || io.failures[0].closeCode !== expected) throw new Error(`length ${length}: ${JSON.stringify(io.failures.map((f) => f.code))}, expected ${expected}`)
    }
  ))
})
