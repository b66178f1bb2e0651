/**
 * lib/protocol/close.ts (close frame bodies, close codes, §5.5.1 and §7.4),
 * and the close frame rules driven through a Session.
 */
import { test } from 'tap'
import { CloseCode, Opcode } from '../../lib/protocol/constants.js'
import {
  encodeClosePayload, isValidWireCode, MAX_CLOSE_REASON, parseClosePayload
} from '../../lib/protocol/close.js'
import { ProtocolError } from '../../lib/protocol/errors.js'
import { assertFailedOnce, assertFails, bytes, chunkings, clientFrame, closeCodeOf, feed, newSession } from './helpers.js'

/** A close frame body: 2-byte big-endian close code then the reason bytes. */
function closeBody (code: number, reason: Uint8Array | string = ''): Buffer {
  const body = Buffer.alloc(2)
  body.writeUInt16BE(code)
  return Buffer.concat([body, typeof reason === 'string' ? Buffer.from(reason) : reason])
}

const INVALID_ON_WIRE = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
const VALID_ON_WIRE = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]

test('isValidWireCode: exactly 1000-1003, 1007-1014 and 3000-4999 (§7.4.1, §7.4.2)', async (t) => {
  const wrong: number[] = []
  for (let code = 0; code <= 0xffff; code++) {
    const expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
    if (isValidWireCode(code) !== expected) wrong.push(code)
  }
  t.same(wrong, [], 'all 65536 codes classified as the RFC says')
  for (const code of INVALID_ON_WIRE) t.notOk(isValidWireCode(code), `${code} invalid`)
  for (const code of VALID_ON_WIRE) t.ok(isValidWireCode(code), `${code} valid`)
})

test('parseClosePayload', async (t) => {
  t.same(parseClosePayload(bytes()), { code: 1005, reason: '' }, 'empty body: 1005, no reason (§7.1.5)')
  t.same(parseClosePayload(bytes(0x03, 0xe8)), { code: 1000, reason: '' }, 'code only')
  t.same(parseClosePayload(closeBody(4001, 'bye €')), { code: 4001, reason: 'bye €' }, 'code and UTF-8 reason')
  const oneByte = parseClosePayload(bytes(0x03))
  t.ok(oneByte instanceof ProtocolError, '1-byte body is an error')
  t.match(oneByte, { code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', closeCode: 1002 })
  for (const code of INVALID_ON_WIRE) {
    t.match(parseClosePayload(closeBody(code)), { code: 'WS_ERR_INVALID_CLOSE_CODE', closeCode: 1002 }, `code ${code}`)
  }
  t.match(parseClosePayload(closeBody(1000, bytes(0x61, 0xc0, 0x80))), { code: 'WS_ERR_INVALID_UTF8', closeCode: 1007 }, 'reason not UTF-8')
  t.match(parseClosePayload(closeBody(1000, bytes(0xe2, 0x82))), { code: 'WS_ERR_INVALID_UTF8', closeCode: 1007 }, 'reason cut inside a sequence')
  // A view into a larger buffer: the reason must come from the view only.
  const backing = Buffer.concat([Buffer.from('XX'), closeBody(3000, 'ok'), Buffer.from('YY')])
  t.same(parseClosePayload(backing.subarray(2, 6)), { code: 3000, reason: 'ok' }, 'body as a view with a byteOffset')
})

test('encodeClosePayload', async (t) => {
  t.same(encodeClosePayload(1000), bytes(0x03, 0xe8), 'code only')
  t.same(encodeClosePayload(1005), bytes(), '1005 means no body')
  t.same(encodeClosePayload(4000, 'é'), bytes(0x0f, 0xa0, 0xc3, 0xa9), 'UTF-8 reason from a string')
  t.same(encodeClosePayload(1001, bytes(0x61)), bytes(0x03, 0xe9, 0x61), 'reason from bytes')
  t.equal(MAX_CLOSE_REASON, 123)
  const longest = encodeClosePayload(1000, 'r'.repeat(MAX_CLOSE_REASON))
  t.equal(longest.length, 125, 'the longest close body fits a control frame')
  t.same(parseClosePayload(longest), { code: 1000, reason: 'r'.repeat(123) }, 'round trip')
})

// Close frame rules through a Session.

test('a close frame with a 1-byte body fails with 1002 (§5.5.1)', async (t) => {
  assertFails(t, clientFrame(Opcode.Close, bytes(0x03)), 1002, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH')
})

test('close codes invalid on the wire fail with 1002 (§7.4)', async (t) => {
  for (const code of INVALID_ON_WIRE) {
    t.test(`close code ${code}`, async (t) => assertFails(t, clientFrame(Opcode.Close, closeBody(code)), 1002, 'WS_ERR_INVALID_CLOSE_CODE'))
  }
})

test('valid close codes are echoed and the TCP connection ended (§5.5.1)', async (t) => {
  for (const code of VALID_ON_WIRE) {
    for (const [how, chunks] of chunkings(clientFrame(Opcode.Close, closeBody(code, 'reason')))) {
      const { session, io } = newSession()
      feed(session, chunks)
      t.same(io.failures, [], `${code} ${how}: no failure`)
      t.same(io.frames, [{ fin: true, rsv1: false, opcode: Opcode.Close, payload: closeBody(code) }], `${code} ${how}: echoed, code only`)
      t.equal(io.ends, 1, `${code} ${how}: end() once`)
      t.equal(session.closeCode, code, `${code} ${how}: closeCode`)
      t.equal(session.closeReason, 'reason', `${code} ${how}: closeReason`)
    }
  }
})

test('a close frame with no body is answered with an empty close frame; closeCode is 1005', async (t) => {
  const { session, io } = newSession()
  session.receive(clientFrame(Opcode.Close))
  t.same(io.frames, [{ fin: true, rsv1: false, opcode: Opcode.Close, payload: bytes() }])
  t.equal(session.closeCode, CloseCode.NoStatusReceived)
  t.equal(io.ends, 1)
})

test('a close reason that is not UTF-8 fails with 1007 (§8.1)', async (t) => {
  assertFails(t, clientFrame(Opcode.Close, closeBody(1000, bytes(0x6f, 0x6b, 0xff))), 1007, 'WS_ERR_INVALID_UTF8')
  assertFails(t, clientFrame(Opcode.Close, closeBody(1000, bytes(0xed, 0xa0, 0x80))), 1007, 'WS_ERR_INVALID_UTF8')
})

test('the close frame the server fails with carries a reason of at most 123 bytes', async (t) => {
  const { session, io } = newSession()
  session.receive(clientFrame(Opcode.Continuation, 'x'))
  assertFailedOnce(t, io, 1002, 'WS_ERR_INVALID_OPCODE')
  const [close] = io.frames
  t.ok(close.payload.length <= 125, 'fits a control frame')
  t.equal(closeCodeOf(close), 1002)
  t.equal(close.payload.subarray(2).toString(), io.failures[0].message, 'reason is the error message')
})
