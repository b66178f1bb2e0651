/**
 * lib/protocol/session.ts: the Session state machine without I/O — pings and
 * pongs (§5.5.2, §5.5.3), the closing handshake (§5.5.1, §7.1), failing the
 * connection (§7.1.7) and what is sent after a close frame. The SessionIO is a
 * RecordingIO: every call the Session makes, in order.
 */
import { test } from 'tap'
import { CloseCode, Opcode } from '../../lib/protocol/constants.js'
import { ProtocolError } from '../../lib/protocol/errors.js'
import { ReadyState, toProtocolError } from '../../lib/protocol/session.js'
import { bytes, chunkings, clientFrame, closeCodeOf, feed, newSession } from './helpers.js'

const closeBody = (code: number, reason = ''): Buffer => Buffer.concat([bytes(code >> 8, code & 0xff), Buffer.from(reason)])

/** The IO calls as short strings, for asserting their order. */
function calls (io: ReturnType<typeof newSession>['io']): string[] {
  return io.events.map((e) => {
    switch (e.type) {
      case 'write': {
        const opcode = e.header[0] & 0x0f
        return opcode === Opcode.Close ? `write close ${e.payload.length >= 2 ? e.payload.readUInt16BE(0) : 1005}` : `write opcode ${opcode}`
      }
      case 'failed': return `failed ${e.error.closeCode}`
      case 'hold': return `hold ${e.on}`
      default: return e.type
    }
  })
}

test('a new session is OPEN and its peer close code is 1006 until a close frame arrives', async (t) => {
  const { session, io } = newSession()
  t.equal(session.readyState, ReadyState.OPEN)
  t.equal(session.closeCode, CloseCode.AbnormalClosure)
  t.equal(session.closeReason, '')
  t.same(io.events, [], 'nothing written on creation')
})

test('sendMessage writes one unmasked frame: the §5.7 "Hello" from the server side', async (t) => {
  const { session, io } = newSession()
  t.equal(session.sendMessage(Opcode.Text, Buffer.from('Hello'), false), true)
  t.equal(session.sendMessage(Opcode.Binary, Buffer.alloc(256, 1), true), true, 'compress is ignored without permessage-deflate')
  const writes = io.events.flatMap((e) => e.type === 'write' ? [Buffer.concat([e.header, e.payload])] : [])
  t.same(writes, [bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), Buffer.concat([bytes(0x82, 0x7e, 0x01, 0x00), Buffer.alloc(256, 1)])])
})

test('a ping is answered with a pong carrying the same payload (§5.5.2)', async (t) => {
  for (const payload of [Buffer.alloc(0), Buffer.from('Hello'), Buffer.alloc(125, 0xa5)]) {
    for (const [how, chunks] of chunkings(clientFrame(Opcode.Ping, payload))) {
      const { session, io } = newSession()
      feed(session, chunks)
      t.same(io.frames, [{ fin: true, rsv1: false, opcode: Opcode.Pong, payload }], `${payload.length} bytes ${how}: pong written`)
      t.same(io.events.filter((e) => e.type === 'ping'), [{ type: 'ping', data: payload }], `${payload.length} bytes ${how}: ping delivered`)
      t.same(calls(io), [`write opcode ${Opcode.Pong}`, 'ping'], `${payload.length} bytes ${how}: pong queued before the ping is delivered`)
    }
  }
})

test('a pong is delivered and not answered (§5.5.3)', async (t) => {
  const { session, io } = newSession()
  session.receive(clientFrame(Opcode.Pong, 'unsolicited'))
  t.same(io.events, [{ type: 'pong', data: Buffer.from('unsolicited') }])
})

test('the peer\'s close frame: the session echoes the close code and calls end() (§5.5.1, §7.1.1)', async (t) => {
  const { session, io } = newSession()
  session.receive(clientFrame(Opcode.Close, closeBody(4000, 'done')))
  t.same(calls(io), ['write close 4000', 'end'], 'echo then end, once each')
  t.same(io.frames[0].payload, closeBody(4000), 'the echo carries the close code, not the reason')
  t.equal(session.readyState, ReadyState.CLOSING)
  t.equal(session.closeCode, 4000)
  t.equal(session.closeReason, 'done')
})

test('after a close frame is received, further bytes are ignored', async (t) => {
  const { session, io } = newSession()
  session.receive(Buffer.concat([clientFrame(Opcode.Close, closeBody(1000)), clientFrame(Opcode.Text, 'late')]))
  session.receive(clientFrame(Opcode.Ping, 'late ping'))
  session.receive(bytes(0x00, 0x00, 0xff)) // not even a valid frame
  session.receive(clientFrame(Opcode.Close, closeBody(1001)))
  t.same(calls(io), ['write close 1000', 'end'], 'no delivery, no pong, no failure, no second close')
  t.equal(session.closeCode, 1000)
})

test('after the server sends close, no data frame is sent: sendMessage and sendControl return false (§5.5.1)', async (t) => {
  const { session, io } = newSession()
  session.close(1000, 'bye')
  t.equal(session.readyState, ReadyState.CLOSING)
  t.same(io.frames, [{ fin: true, rsv1: false, opcode: Opcode.Close, payload: closeBody(1000, 'bye') }])
  t.equal(io.ends, 0, 'the TCP connection stays open for the peer\'s close frame')
  t.equal(session.sendMessage(Opcode.Text, Buffer.from('x'), false), false, 'sendMessage dropped')
  t.equal(session.sendMessage(Opcode.Binary, Buffer.from('x'), true), false, 'compressed sendMessage dropped')
  t.equal(session.sendControl(Opcode.Ping, Buffer.from('x')), false, 'sendControl dropped')
  session.close(1001)
  t.equal(io.frames.length, 1, 'a second close() does nothing')
})

test('after the server sends close, a ping is delivered but not answered', async (t) => {
  const { session, io } = newSession()
  session.close(1000)
  session.receive(clientFrame(Opcode.Ping, 'p'))
  t.same(calls(io), ['write close 1000', 'ping'])
})

test('server-initiated close: data still arrives until the peer\'s close, which ends the TCP connection (§7.1.2)', async (t) => {
  const { session, io } = newSession()
  session.close(4001)
  session.receive(clientFrame(Opcode.Text, 'in flight'))
  session.receive(clientFrame(Opcode.Close, closeBody(4001)))
  t.same(calls(io), ['write close 4001', 'message', 'end'], 'no second close frame is written')
  t.same(io.messages, [{ data: Buffer.from('in flight'), isBinary: false }])
  t.equal(session.closeCode, 4001)
})

test('close(1005) sends a close frame with no body', async (t) => {
  const { session, io } = newSession()
  session.close(CloseCode.NoStatusReceived)
  t.same(io.frames, [{ fin: true, rsv1: false, opcode: Opcode.Close, payload: bytes() }])
})

test('failing the connection writes one close frame, then failed() once, then end() once (§7.1.7)', async (t) => {
  const { session, io } = newSession()
  session.receive(clientFrame(Opcode.Continuation, 'x'))
  t.same(calls(io), ['write close 1002', 'failed 1002', 'end'])
  t.equal(session.readyState, ReadyState.CLOSING)
})

test('after a failure, further input is ignored', async (t) => {
  const { session, io } = newSession()
  session.receive(bytes(0x81, 0x05)) // unmasked
  const before = io.events.length
  session.receive(clientFrame(Opcode.Text, 'late'))
  session.receive(clientFrame(Opcode.Close, closeBody(1000)))
  t.equal(io.events.length, before, 'nothing more happens')
  t.equal(io.failures.length, 1)
})

test('a failure after the server sent close: no second close frame, failed() and end() once each', async (t) => {
  const { session, io } = newSession()
  session.close(1000)
  session.receive(clientFrame(Opcode.Ping, Buffer.alloc(126)))
  t.same(calls(io), ['write close 1000', 'failed 1002', 'end'])
})

test('fail() with an unexpected error closes with 1011 and sends no internals', async (t) => {
  const { session, io } = newSession()
  session.fail(new Error('secret internal detail'))
  t.same(io.frames.map((f) => [f.opcode, closeCodeOf(f), f.payload.length]), [[Opcode.Close, 1011, 2]], 'close frame 1011 without a reason')
  t.equal(io.failures.length, 1)
  t.match(io.failures[0], { code: 'WS_ERR_INTERNAL', closeCode: 1011, message: 'secret internal detail' })
  t.ok(io.ends >= 1, 'end() called')
})

test('toProtocolError keeps ProtocolErrors and maps anything else to 1011', async (t) => {
  const original = new ProtocolError('WS_ERR_X', 1008, 'policy')
  t.equal(toProtocolError(original), original)
  const cause = new TypeError('boom')
  const mapped = toProtocolError(cause)
  t.match(mapped, { code: 'WS_ERR_INTERNAL', closeCode: 1011, message: 'boom' })
  t.equal(mapped.cause, cause)
  t.match(toProtocolError('a string'), { code: 'WS_ERR_INTERNAL', closeCode: 1011, message: 'a string' })
})

test('transportClosed: CLOSED, nothing more is read or sent', async (t) => {
  const { session, io } = newSession()
  session.transportClosed()
  t.equal(session.readyState, ReadyState.CLOSED)
  session.receive(clientFrame(Opcode.Text, 'x'))
  t.equal(session.sendMessage(Opcode.Text, Buffer.from('x'), false), false)
  t.equal(session.sendControl(Opcode.Pong, Buffer.from('x')), false)
  session.close(1000)
  session.fail(new ProtocolError('WS_ERR_X', 1002, 'late'))
  t.same(io.events, [], 'no IO call at all')
})
