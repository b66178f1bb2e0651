/**
 * lib/protocol/parser.ts: the RFC 6455 §5.7 vectors parsed (whole and one
 * byte at a time), and the frame-level rules, each driven through a Session
 * and asserting the close code the connection fails with.
 */
import { test, type Test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { ProtocolError } from '../../lib/protocol/errors.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { FrameParser, type FrameSink } from '../../lib/protocol/parser.js'
import { assertAccepted, assertFails, bytes, chunkings, clientFrame, naiveMask, rawHeader, RFC_MASK } from './helpers.js'

interface ParsedFrame {
  fin: boolean
  rsv1: boolean
  opcode: number
  payloadLength: number
  payload: Buffer
  /** Pieces handed to framePayload for this frame. */
  pieces: number
}

/** A FrameSink that collects whole frames and checks the piece protocol. */
class FrameCollector implements FrameSink {
  readonly frames: ParsedFrame[] = []
  private current: { frame: ParsedFrame, parts: Buffer[] } | null = null

  frameStart (fin: boolean, rsv1: boolean, opcode: number, payloadLength: number): void {
    if (this.current !== null) throw new Error('frameStart before the previous frame ended')
    this.current = { frame: { fin, rsv1, opcode, payloadLength, payload: Buffer.alloc(0), pieces: 0 }, parts: [] }
  }

  framePayload (data: Buffer, frameEnd: boolean): void {
    const current = this.current
    if (current === null) throw new Error('framePayload outside a frame')
    current.parts.push(Buffer.from(data))
    current.frame.pieces++
    if (frameEnd) {
      current.frame.payload = Buffer.concat(current.parts)
      this.frames.push(current.frame)
      this.current = null
    }
  }

  get inFrame (): boolean {
    return this.current !== null
  }
}

/** Parses `data` with a fresh FrameParser, whole and one byte at a time; returns both results. */
function parseBoth (data: Uint8Array): Array<[string, FrameCollector]> {
  return chunkings(data).map(([how, chunks]) => {
    const sink = new FrameCollector()
    const parser = new FrameParser(sink)
    for (const chunk of chunks) parser.push(chunk)
    return [how, sink]
  })
}

function assertParses (t: Test, data: Uint8Array, expected: Array<Omit<ParsedFrame, 'pieces'>>): void {
  for (const [how, sink] of parseBoth(data)) {
    t.same(sink.frames.map(({ pieces: _, ...rest }) => rest), expected, `${how}: frames`)
    t.notOk(sink.inFrame, `${how}: no frame left open`)
  }
}

const HELLO = Buffer.from('Hello')

test('RFC 6455 §5.7 vectors, parse side', async (t) => {
  t.test('single-frame unmasked text "Hello" is rejected: a server requires masking (§5.1)', async (t) => {
    const vector = bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f)
    for (const [how, chunks] of chunkings(vector)) {
      const parser = new FrameParser(new FrameCollector())
      const error = (() => {
        try {
          for (const chunk of chunks) parser.push(chunk)
        } catch (e) {
          return e
        }
        return null
      })()
      t.ok(error instanceof ProtocolError, `${how}: ProtocolError thrown`)
      t.match(error, { code: 'WS_ERR_EXPECTED_MASK', closeCode: 1002 }, `${how}: 1002`)
    }
    assertFails(t, vector, 1002, 'WS_ERR_EXPECTED_MASK')
  })

  t.test('single-frame masked text "Hello"', async (t) => {
    const vector = bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58)
    assertParses(t, vector, [{ fin: true, rsv1: false, opcode: Opcode.Text, payloadLength: 5, payload: HELLO }])
    for (const io of assertAccepted(t, vector)) t.same(io.messages, [{ data: HELLO, isBinary: false }])
  })

  t.test('fragmented text "Hel" + "lo", masked', async (t) => {
    const vector = bytes(0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
      0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x95)
    assertParses(t, vector, [
      { fin: false, rsv1: false, opcode: Opcode.Text, payloadLength: 3, payload: Buffer.from('Hel') },
      { fin: true, rsv1: false, opcode: Opcode.Continuation, payloadLength: 2, payload: Buffer.from('lo') }
    ])
    for (const io of assertAccepted(t, vector)) t.same(io.messages, [{ data: HELLO, isBinary: false }])
  })

  t.test('masked Ping "Hello" (the unmasked §5.7 Ping, masked as a client sends it)', async (t) => {
    const vector = Buffer.concat(encodeFrame(Opcode.Ping, HELLO, { mask: RFC_MASK }))
    t.same(vector, bytes(0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58))
    assertParses(t, vector, [{ fin: true, rsv1: false, opcode: Opcode.Ping, payloadLength: 5, payload: HELLO }])
  })

  t.test('masked Pong "Hello"', async (t) => {
    const vector = bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58)
    assertParses(t, vector, [{ fin: true, rsv1: false, opcode: Opcode.Pong, payloadLength: 5, payload: HELLO }])
    for (const io of assertAccepted(t, vector)) {
      t.same(io.events.filter((e) => e.type === 'pong'), [{ type: 'pong', data: HELLO }], 'pong delivered')
      t.same(io.frames, [], 'nothing written back for a pong')
    }
  })

  t.test('256 bytes binary, masked: 16-bit payload length', async (t) => {
    const data = Buffer.alloc(256)
    for (let i = 0; i < 256; i++) data[i] = i
    const vector = Buffer.concat([bytes(0x82, 0xfe, 0x01, 0x00, 0x37, 0xfa, 0x21, 0x3d), naiveMask(data, RFC_MASK)])
    t.same(vector, clientFrame(Opcode.Binary, data), 'encodeFrame agrees')
    assertParses(t, vector, [{ fin: true, rsv1: false, opcode: Opcode.Binary, payloadLength: 256, payload: data }])
  })

  t.test('64 KiB binary, masked: 64-bit payload length', async (t) => {
    const data = Buffer.alloc(65536)
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff
    const vector = Buffer.concat([
      bytes(0x82, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x37, 0xfa, 0x21, 0x3d),
      naiveMask(data, RFC_MASK)
    ])
    t.same(vector, clientFrame(Opcode.Binary, data), 'encodeFrame agrees')
    assertParses(t, vector, [{ fin: true, rsv1: false, opcode: Opcode.Binary, payloadLength: 65536, payload: data }])
    for (const io of assertAccepted(t, vector)) t.same(io.messages, [{ data, isBinary: true }])
  })
})

test('a frame with no payload gets exactly one empty piece', async (t) => {
  for (const [how, sink] of parseBoth(Buffer.concat([clientFrame(Opcode.Text, ''), clientFrame(Opcode.Ping, '')]))) {
    t.same(sink.frames.map((f) => [f.opcode, f.payloadLength, f.pieces, f.payload.length]),
      [[Opcode.Text, 0, 1, 0], [Opcode.Ping, 0, 1, 0]], how)
  }
})

test('payload is handed on as it arrives: one piece per chunk, none empty, no buffering', async (t) => {
  const sink = new FrameCollector()
  const parser = new FrameParser(sink)
  const frame = clientFrame(Opcode.Binary, Buffer.alloc(300, 1))
  parser.push(frame.subarray(0, 8)) // the whole header: 2 + 2 + 4 bytes
  parser.push(frame.subarray(8, 108))
  t.ok(sink.inFrame, 'frame still open after 100 of 300 bytes')
  parser.push(frame.subarray(108))
  t.equal(sink.frames.length, 1)
  // The header ended exactly at the end of the first chunk: that must not make an
  // empty piece (MessageReader takes a frame's pieces as its payload in order).
  t.equal(sink.frames[0].pieces, 2, 'two pieces, one per payload chunk, no empty piece after the header')
  t.same(sink.frames[0].payload, Buffer.alloc(300, 1))
})

test('a header cut at every possible point, with the next frame in the same chunk', async (t) => {
  const stream = Buffer.concat([
    clientFrame(Opcode.Binary, Buffer.alloc(70000, 2), { mask: bytes(1, 2, 3, 4) }),
    clientFrame(Opcode.Text, 'after', { mask: bytes(9, 8, 7, 6) })
  ])
  for (let cut = 1; cut < 14; cut++) {
    const sink = new FrameCollector()
    const parser = new FrameParser(sink)
    parser.push(Buffer.from(stream.subarray(0, cut)))
    parser.push(Buffer.from(stream.subarray(cut)))
    t.same(sink.frames.map((f) => [f.opcode, f.payload.length, f.payload[0], f.payload[69999]]),
      [[Opcode.Binary, 70000, 2, 2], [Opcode.Text, 5, 0x61, undefined]], `cut after ${cut} header bytes`)
    t.same(sink.frames[1].payload, Buffer.from('after'))
  }
})

// Frame-level rules (§5.1, §5.2, §5.5), each failing the connection with 1002.

test('unmasked client frame fails with 1002 (§5.1)', async (t) => {
  assertFails(t, bytes(0x82, 0x03, 1, 2, 3), 1002, 'WS_ERR_EXPECTED_MASK')
  assertFails(t, bytes(0x88, 0x00), 1002, 'WS_ERR_EXPECTED_MASK')
})

test('RSV1, RSV2 or RSV3 set without a negotiated extension fails with 1002 (§5.2)', async (t) => {
  for (const [name, bit, code] of [['RSV1', 0x40, 'WS_ERR_UNEXPECTED_RSV_1'], ['RSV2', 0x20, 'WS_ERR_UNEXPECTED_RSV_2_3'], ['RSV3', 0x10, 'WS_ERR_UNEXPECTED_RSV_2_3']] as const) {
    const frame = clientFrame(Opcode.Text, 'x')
    frame[0] |= bit
    t.test(name, async (t) => assertFails(t, frame, 1002, code))
  }
})

test('RSV2 and RSV3 fail even when RSV1 is allowed (permessage-deflate negotiated)', async (t) => {
  for (const bit of [0x20, 0x10]) {
    const sink = new FrameCollector()
    const parser = new FrameParser(sink)
    parser.allowRsv1 = true
    const frame = clientFrame(Opcode.Binary, 'x')
    frame[0] |= bit
    t.throws(() => parser.push(frame), { code: 'WS_ERR_UNEXPECTED_RSV_2_3', closeCode: 1002 }, `bit 0x${bit.toString(16)}`)
  }
  const sink = new FrameCollector()
  const parser = new FrameParser(sink)
  parser.allowRsv1 = true
  parser.push(clientFrame(Opcode.Binary, 'x', { rsv1: true }))
  t.same(sink.frames.map((f) => [f.rsv1, f.opcode]), [[true, Opcode.Binary]], 'RSV1 passed on to the sink')
})

test('reserved opcodes 0x3-0x7 and 0xB-0xF fail with 1002 (§5.2)', async (t) => {
  for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    t.test(`opcode 0x${opcode.toString(16)}`, async (t) => {
      assertFails(t, Buffer.concat([rawHeader(0x80 | opcode, 1n), naiveMask(bytes(0x41), RFC_MASK)]), 1002, 'WS_ERR_INVALID_OPCODE')
    })
  }
})

test('a control frame with payload length 126 fails with 1002; 125 is accepted (§5.5)', async (t) => {
  // 126 bytes, declared in the 16-bit form as the shortest encoding requires.
  assertFails(t, clientFrame(Opcode.Ping, Buffer.alloc(126, 0x61)), 1002, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')
  assertFails(t, clientFrame(Opcode.Close, Buffer.concat([bytes(0x03, 0xe8), Buffer.alloc(124, 0x61)])), 1002, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')
  const payload = Buffer.alloc(125, 0x62)
  for (const io of assertAccepted(t, clientFrame(Opcode.Ping, payload))) {
    t.same(io.events.filter((e) => e.type === 'ping'), [{ type: 'ping', data: payload }], 'ping of 125 bytes delivered')
    t.same(io.frames, [{ fin: true, rsv1: false, opcode: Opcode.Pong, payload }], 'answered with a pong of the same 125 bytes')
  }
})

test('a control frame declaring its length in the 16-bit form fails with 1002, whole or one byte at a time', async (t) => {
  // The 16-bit form is minimal only from 126 up (§5.2: "the minimal number of
  // bytes MUST be used"), so a control frame using it is over 125 or malformed.
  // One byte at a time, the parser fails it at the second byte (0x7E); the
  // verdict must not depend on how the bytes were chunked.
  for (const length of [0n, 5n, 125n]) {
    const frame = Buffer.concat([rawHeader(0x89, length, { form: 16 }), naiveMask(Buffer.alloc(Number(length), 0x41), RFC_MASK)])
    t.test(`ping with 16-bit payload length ${length}`, async (t) => assertFails(t, frame, 1002, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'))
  }
  const frame = Buffer.concat([rawHeader(0x88, 2n, { form: 64 }), naiveMask(bytes(0x03, 0xe8), RFC_MASK)])
  t.test('close with 64-bit payload length 2', async (t) => assertFails(t, frame, 1002, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'))
})

test('a fragmented control frame (FIN clear) fails with 1002 (§5.5)', async (t) => {
  for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
    assertFails(t, clientFrame(opcode, '', { fin: false }), 1002, 'WS_ERR_EXPECTED_FIN')
  }
})

test('a 64-bit payload length with its most significant bit set fails with 1002 (§5.2)', async (t) => {
  assertFails(t, rawHeader(0x82, 0x8000000000000000n, { form: 64 }), 1002, 'WS_ERR_INVALID_LENGTH')
  assertFails(t, rawHeader(0x82, 0xffffffffffffffffn, { form: 64 }), 1002, 'WS_ERR_INVALID_LENGTH')
  // The largest legal length is still only too big (1009), not malformed.
  assertFails(t, rawHeader(0x82, 0x7fffffffffffffffn, { form: 64 }), 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
})

test('a bad first byte fails before the rest of the header arrives', async (t) => {
  const cases: Array<[string, number, string]> = [
    ['RSV2', 0x20 | 0x81, 'WS_ERR_UNEXPECTED_RSV_2_3'],
    ['reserved opcode 0x3', 0x83, 'WS_ERR_INVALID_OPCODE'],
    ['fragmented ping', 0x09, 'WS_ERR_EXPECTED_FIN']
  ]
  for (const [name, b0, code] of cases) {
    const parser = new FrameParser(new FrameCollector())
    t.throws(() => parser.push(bytes(b0)), { code, closeCode: 1002 }, `${name}: 1 byte is enough`)
  }
  // A control frame declaring the 16-bit form is over 125 whatever follows.
  const parser = new FrameParser(new FrameCollector())
  t.throws(() => parser.push(bytes(0x89, 0xfe)), { code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', closeCode: 1002 }, 'control frame with 126 marker: 2 bytes')
})
