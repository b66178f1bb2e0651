/**
 * lib/protocol/frame.ts: encodeHeader, encodeFrame, applyMask, isControl.
 * The parse direction of the same vectors is in parser.test.ts.
 */
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { applyMask, encodeFrame, encodeHeader, isControl } from '../../lib/protocol/frame.js'
import { bytes, naiveMask, RFC_MASK } from './helpers.js'

const HELLO = Buffer.from('Hello')

function encoded (opcode: number, payload: Uint8Array, options?: Parameters<typeof encodeFrame>[2]): Buffer {
  return Buffer.concat(encodeFrame(opcode, payload, options))
}

test('RFC 6455 §5.7 vectors, encode side', async (t) => {
  t.test('single-frame unmasked text "Hello"', async (t) => {
    t.same(encoded(Opcode.Text, HELLO), bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f))
  })
  t.test('single-frame masked text "Hello"', async (t) => {
    t.same(encoded(Opcode.Text, HELLO, { mask: RFC_MASK }),
      bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58))
  })
  t.test('fragmented unmasked text "Hel" + "lo"', async (t) => {
    t.same(encoded(Opcode.Text, Buffer.from('Hel'), { fin: false }), bytes(0x01, 0x03, 0x48, 0x65, 0x6c))
    t.same(encoded(Opcode.Continuation, Buffer.from('lo')), bytes(0x80, 0x02, 0x6c, 0x6f))
  })
  t.test('fragmented masked text "Hel" + "lo"', async (t) => {
    t.same(encoded(Opcode.Text, Buffer.from('Hel'), { fin: false, mask: RFC_MASK }),
      bytes(0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d))
    t.same(encoded(Opcode.Continuation, Buffer.from('lo'), { mask: RFC_MASK }),
      bytes(0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x95))
  })
  t.test('unmasked Ping "Hello"', async (t) => {
    t.same(encoded(Opcode.Ping, HELLO), bytes(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f))
  })
  t.test('masked Pong "Hello"', async (t) => {
    t.same(encoded(Opcode.Pong, HELLO, { mask: RFC_MASK }),
      bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58))
  })
  t.test('256 bytes binary in one unmasked frame: 16-bit payload length', async (t) => {
    const data = Buffer.alloc(256, 0xab)
    const [header, body] = encodeFrame(Opcode.Binary, data)
    t.same(header, bytes(0x82, 0x7e, 0x01, 0x00))
    t.same(body, data)
  })
  t.test('64 KiB binary in one unmasked frame: 64-bit payload length', async (t) => {
    const data = Buffer.alloc(65536, 0xcd)
    const [header, body] = encodeFrame(Opcode.Binary, data)
    t.same(header, bytes(0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00))
    t.same(body, data)
  })
})

test('encodeHeader uses the shortest payload length form (§5.2)', async (t) => {
  const cases: Array<[number, number[]]> = [
    [0, [0x82, 0x00]],
    [125, [0x82, 0x7d]],
    [126, [0x82, 0x7e, 0x00, 0x7e]],
    [65535, [0x82, 0x7e, 0xff, 0xff]],
    [65536, [0x82, 0x7f, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00]],
    [2 ** 32, [0x82, 0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0]],
    [2 ** 40 + 5, [0x82, 0x7f, 0, 0, 0x01, 0, 0, 0, 0, 0x05]],
    [Number.MAX_SAFE_INTEGER, [0x82, 0x7f, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]]
  ]
  for (const [length, expected] of cases) {
    t.same(encodeHeader(Opcode.Binary, length), Buffer.from(expected), `payload length ${length}`)
  }
})

test('encodeHeader: FIN, RSV1 and the masking key', async (t) => {
  t.same(encodeHeader(Opcode.Text, 3, { fin: false }), bytes(0x01, 0x03), 'FIN clear')
  t.same(encodeHeader(Opcode.Text, 3, { rsv1: true }), bytes(0xc1, 0x03), 'RSV1 set')
  t.same(encodeHeader(Opcode.Continuation, 3, { fin: false, rsv1: false }), bytes(0x00, 0x03), 'continuation, FIN clear')
  t.same(encodeHeader(Opcode.Binary, 300, { mask: RFC_MASK }),
    bytes(0x82, 0xfe, 0x01, 0x2c, 0x37, 0xfa, 0x21, 0x3d), 'masking key after the 16-bit length')
  t.same(encodeHeader(Opcode.Binary, 70000, { mask: RFC_MASK }),
    bytes(0x82, 0xff, 0, 0, 0, 0, 0x00, 0x01, 0x11, 0x70, 0x37, 0xfa, 0x21, 0x3d), 'masking key after the 64-bit length')
})

test('encodeFrame without a masking key returns the payload memory as is', async (t) => {
  const backing = Buffer.from('xxHelloxx')
  const payload = backing.subarray(2, 7)
  const [, body] = encodeFrame(Opcode.Text, payload)
  t.equal(body.buffer, payload.buffer, 'same ArrayBuffer')
  t.equal(body.byteOffset, payload.byteOffset)
  t.equal(body.length, 5)
  const [header, empty] = encodeFrame(Opcode.Close)
  t.same(header, bytes(0x88, 0x00), 'close frame with no payload')
  t.equal(empty.length, 0)
})

test('encodeFrame with a masking key copies: the input is untouched', async (t) => {
  const payload = Buffer.from('Hello')
  const plainUint8 = new Uint8Array([1, 2, 3, 4, 5, 6])
  const [, body] = encodeFrame(Opcode.Text, payload, { mask: RFC_MASK })
  t.same(payload, Buffer.from('Hello'), 'input unchanged')
  t.same(body, bytes(0x7f, 0x9f, 0x4d, 0x51, 0x58))
  const [, body2] = encodeFrame(Opcode.Binary, plainUint8, { mask: RFC_MASK })
  t.same(plainUint8, new Uint8Array([1, 2, 3, 4, 5, 6]), 'Uint8Array input unchanged')
  t.same(body2, naiveMask(plainUint8, RFC_MASK))
})

test('applyMask equals a byte-by-byte XOR for every length, alignment and key offset', async (t) => {
  const keys = [RFC_MASK, bytes(0xff, 0x80, 0x01, 0xfe), bytes(0, 0, 0, 0)]
  const backing = new Uint8Array(80)
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 37 + 11) & 0xff
  let checked = 0
  let mismatches = 0
  for (const key of keys) {
    for (let length = 0; length <= 70; length++) {
      for (let byteOffset = 0; byteOffset <= 3; byteOffset++) {
        for (let maskOffset = 0; maskOffset <= 3; maskOffset++) {
          const buffer = backing.slice()
          const data = buffer.subarray(byteOffset, byteOffset + length)
          const original = Buffer.from(data)
          const expected = naiveMask(original, key, maskOffset)
          applyMask(data, key, maskOffset)
          const once = Buffer.from(data)
          applyMask(data, key, maskOffset)
          const twice = Buffer.from(data)
          // Bytes around the view must not be touched.
          const outside = Buffer.compare(Buffer.from(buffer.subarray(0, byteOffset)), Buffer.from(backing.subarray(0, byteOffset))) === 0 &&
            Buffer.compare(Buffer.from(buffer.subarray(byteOffset + length)), Buffer.from(backing.subarray(byteOffset + length))) === 0
          checked++
          if (!once.equals(expected) || !twice.equals(original) || !outside) {
            mismatches++
            t.fail(`key ${Buffer.from(key).toString('hex')} length ${length} byteOffset ${byteOffset} maskOffset ${maskOffset}`, {
              found: once.toString('hex'), wanted: expected.toString('hex'), restored: twice.equals(original), outsideUntouched: outside
            })
          }
        }
      }
    }
  }
  t.equal(checked, 3 * 71 * 4 * 4)
  t.equal(mismatches, 0, 'every case equals the naive XOR, restores on a second pass, and stays inside its view')
})

test('applyMask on a Buffer from the shared pool (arbitrary byteOffset)', async (t) => {
  const data = Buffer.from('a pooled buffer of some length, long enough for words')
  const original = Buffer.from(data)
  applyMask(data, RFC_MASK, 2)
  t.same(data, naiveMask(original, RFC_MASK, 2))
})

test('isControl: 0x8-0xF are control opcodes (§5.5)', async (t) => {
  for (let opcode = 0; opcode < 16; opcode++) {
    t.equal(isControl(opcode), opcode >= 8, `opcode 0x${opcode.toString(16)}`)
  }
})
