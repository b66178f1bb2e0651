/**
 * lib/protocol/message.ts (MessageReader), driven through a Session: message
 * reassembly (§5.4), the rules that span frames, maxPayload (§10.4) and
 * fail-fast UTF-8 (§8.1).
 */
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import type { FrameParser } from '../../lib/protocol/parser.js'
import {
  assertAccepted, assertFailedOnce, assertFails, bytes, byteChunks, clientFrame, feed, newSession, rawHeader, readerOf
} from './helpers.js'

test('a fragmented message is reassembled in order', async (t) => {
  const stream = Buffer.concat([
    clientFrame(Opcode.Binary, bytes(1, 2, 3), { fin: false }),
    clientFrame(Opcode.Continuation, bytes(), { fin: false }),
    clientFrame(Opcode.Continuation, bytes(4, 5), { fin: false, mask: bytes(0xde, 0xad, 0xbe, 0xef) }),
    clientFrame(Opcode.Continuation, bytes(6))
  ])
  for (const io of assertAccepted(t, stream)) {
    t.same(io.messages, [{ data: bytes(1, 2, 3, 4, 5, 6), isBinary: true }])
  }
})

test('empty messages: a zero-length text frame, a zero-length fragmented binary message', async (t) => {
  const stream = Buffer.concat([
    clientFrame(Opcode.Text, ''),
    clientFrame(Opcode.Binary, '', { fin: false }),
    clientFrame(Opcode.Continuation, '')
  ])
  for (const io of assertAccepted(t, stream)) {
    t.same(io.messages, [{ data: Buffer.alloc(0), isBinary: false }, { data: Buffer.alloc(0), isBinary: true }])
  }
})

test('a continuation frame with no message to continue fails with 1002 (§5.4)', async (t) => {
  assertFails(t, clientFrame(Opcode.Continuation, 'x'), 1002, 'WS_ERR_INVALID_OPCODE')
  // Also right after a complete message.
  const { session, io } = newSession()
  session.receive(Buffer.concat([clientFrame(Opcode.Text, 'done'), clientFrame(Opcode.Continuation, 'x', { fin: false })]))
  assertFailedOnce(t, io, 1002, 'WS_ERR_INVALID_OPCODE', 'after a complete message', 1)
  t.same(io.messages, [{ data: Buffer.from('done'), isBinary: false }])
})

test('a new Text or Binary frame inside a fragmented message fails with 1002 (§5.4)', async (t) => {
  for (const [first, second] of [[Opcode.Text, Opcode.Text], [Opcode.Text, Opcode.Binary], [Opcode.Binary, Opcode.Text], [Opcode.Binary, Opcode.Binary]]) {
    t.test(`opcode ${second} inside opcode ${first}`, async (t) => {
      const stream = Buffer.concat([clientFrame(first, 'ab', { fin: false }), clientFrame(second, 'cd')])
      assertFails(t, stream, 1002, 'WS_ERR_INVALID_OPCODE')
    })
  }
})

test('control frames between fragments are delivered at once and the message is still reassembled (§5.4)', async (t) => {
  const stream = Buffer.concat([
    clientFrame(Opcode.Text, 'Hel', { fin: false }),
    clientFrame(Opcode.Ping, 'p1'),
    clientFrame(Opcode.Continuation, 'l', { fin: false }),
    clientFrame(Opcode.Pong, 'p2'),
    clientFrame(Opcode.Ping, ''),
    clientFrame(Opcode.Continuation, 'o')
  ])
  for (const io of assertAccepted(t, stream)) {
    t.same(io.deliveries, [
      `ping:${Buffer.from('p1').toString('hex')}`,
      `pong:${Buffer.from('p2').toString('hex')}`,
      'ping:',
      `text:${Buffer.from('Hello').toString('hex')}`
    ], 'pings and pong first, in wire order, then the message')
    t.same(io.frames.map((f) => [f.opcode, f.payload.toString()]), [[Opcode.Pong, 'p1'], [Opcode.Pong, '']], 'each ping answered')
  }
  // Delivered at once: the ping comes out before the message's last fragment arrives.
  const { session, io } = newSession()
  feed(session, [clientFrame(Opcode.Text, 'Hel', { fin: false }), clientFrame(Opcode.Ping, 'p1')])
  t.same(io.deliveries, [`ping:${Buffer.from('p1').toString('hex')}`], 'ping delivered while the message is open')
})

test('a control frame between fragments may itself be cut across chunks', async (t) => {
  const ping = clientFrame(Opcode.Ping, 'a ping in pieces')
  const { session, io } = newSession()
  feed(session, [clientFrame(Opcode.Binary, 'ab', { fin: false }), ping.subarray(0, 9), ping.subarray(9, 15), ping.subarray(15),
    clientFrame(Opcode.Continuation, 'cd')])
  t.same(io.deliveries, [`ping:${Buffer.from('a ping in pieces').toString('hex')}`, `binary:${Buffer.from('abcd').toString('hex')}`])
})

test('maxPayload: a message over it fails with 1009 at the header, before any payload (§10.4)', async (t) => {
  const maxPayload = 16
  t.test('exactly maxPayload is accepted', async (t) => {
    for (const io of assertAccepted(t, clientFrame(Opcode.Binary, Buffer.alloc(16, 7)), maxPayload)) {
      t.same(io.messages, [{ data: Buffer.alloc(16, 7), isBinary: true }])
    }
  })
  t.test('one byte over fails on the header alone', async (t) => {
    // Only the header (2 bytes + masking key) is fed: no payload byte at all.
    assertFails(t, rawHeader(0x82, 17n), 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', maxPayload)
  })
  t.test('a declared length of 2^40 with no payload bytes fails at once', async (t) => {
    assertFails(t, rawHeader(0x82, 2n ** 40n), 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1 << 20)
    const { session, io } = newSession(1 << 20)
    session.receive(rawHeader(0x81, 2n ** 40n))
    assertFailedOnce(t, io, 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
    t.ok((readerOf(session)?.['buffer']?.length ?? 0) === 0, 'no message buffer allocated')
  })
  t.test('the limit counts the reassembled message across fragments', async (t) => {
    const { session, io } = newSession(maxPayload)
    session.receive(clientFrame(Opcode.Text, 'a'.repeat(10), { fin: false }))
    session.receive(clientFrame(Opcode.Continuation, 'b'.repeat(6), { fin: false }))
    t.same(io.failures, [], '16 bytes so far: fine')
    session.receive(rawHeader(0x00, 1n))
    assertFailedOnce(t, io, 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'the header of a 1-byte 3rd fragment')
    const fragments = Buffer.concat([
      clientFrame(Opcode.Text, 'a'.repeat(10), { fin: false }), clientFrame(Opcode.Continuation, 'b'.repeat(7))
    ])
    assertFails(t, fragments, 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', maxPayload)
    for (const io of assertAccepted(t, Buffer.concat([
      clientFrame(Opcode.Text, 'a'.repeat(10), { fin: false }), clientFrame(Opcode.Continuation, 'b'.repeat(6))
    ]), maxPayload)) t.same(io.messages, [{ data: Buffer.from('a'.repeat(10) + 'b'.repeat(6)), isBinary: false }])
  })
  t.test('the limit is per message, not per connection', async (t) => {
    const stream = Buffer.concat([clientFrame(Opcode.Binary, Buffer.alloc(16)), clientFrame(Opcode.Binary, Buffer.alloc(16))])
    for (const io of assertAccepted(t, stream, maxPayload)) t.equal(io.messages.length, 2)
  })
  t.test('control frames do not count against maxPayload', async (t) => {
    const stream = Buffer.concat([clientFrame(Opcode.Binary, 'ab', { fin: false }), clientFrame(Opcode.Ping, Buffer.alloc(100)),
      clientFrame(Opcode.Continuation, 'cd')])
    for (const io of assertAccepted(t, stream, 4)) t.equal(io.messages.length, 1)
  })
})

// UTF-8 (§8.1): fail on the first bad fragment, not at the end of the message.

test('invalid UTF-8 in the 2nd of 3 fragments fails with 1007 when the 2nd fragment arrives', async (t) => {
  const first = clientFrame(Opcode.Text, 'ok ', { fin: false })
  const second = clientFrame(Opcode.Continuation, bytes(0xf4, 0x90, 0x80, 0x80), { fin: false })
  const third = clientFrame(Opcode.Continuation, 'end')
  const { session, io } = newSession()
  session.receive(first)
  t.same(io.failures, [], 'the 1st fragment is fine')
  session.receive(second)
  assertFailedOnce(t, io, 1007, 'WS_ERR_INVALID_UTF8', 'after the 2nd fragment')
  session.receive(third)
  t.equal(io.failures.length, 1, 'the 3rd fragment is ignored')
  assertFails(t, Buffer.concat([first, second, third]), 1007, 'WS_ERR_INVALID_UTF8')
})

test('a fragment ending in an invalid prefix fails with 1007 before the rest arrives', async (t) => {
  const prefixes: Array<[string, number[]]> = [
    ['F4 90 (over U+10FFFF)', [0xf4, 0x90]],
    ['ED A0 (surrogate)', [0xed, 0xa0]],
    ['E0 80 (overlong)', [0xe0, 0x80]],
    ['C0 (overlong lead)', [0xc0]],
    ['F0 80 (overlong)', [0xf0, 0x80]],
    ['F5 (no such lead)', [0xf5]]
  ]
  for (const [name, prefix] of prefixes) {
    t.test(name, async (t) => {
      const { session, io } = newSession()
      session.receive(clientFrame(Opcode.Text, Buffer.concat([Buffer.from('ab'), Buffer.from(prefix)]), { fin: false }))
      assertFailedOnce(t, io, 1007, 'WS_ERR_INVALID_UTF8', 'fragment with FIN clear, nothing after it')
    })
  }
})

test('an unfragmented text frame fails with 1007 as soon as the bad prefix arrives', async (t) => {
  // One frame, payload "ab" F4 90 80 80 "cd", fed one byte at a time: the
  // failure must come at the 0x90 byte, before the frame's end.
  const frame = clientFrame(Opcode.Text, Buffer.concat([Buffer.from('ab'), bytes(0xf4, 0x90, 0x80, 0x80), Buffer.from('cd')]))
  const headerLength = 6
  const { session, io } = newSession()
  let fedWhenFailed = -1
  byteChunks(frame).forEach((chunk, i) => {
    session.receive(chunk)
    if (fedWhenFailed < 0 && io.failures.length > 0) fedWhenFailed = i + 1
  })
  t.equal(fedWhenFailed, headerLength + 4, 'failed on the 4th payload byte (0x90)')
  assertFailedOnce(t, io, 1007, 'WS_ERR_INVALID_UTF8')
})

test('a text message ending inside a UTF-8 sequence fails with 1007', async (t) => {
  t.test('unfragmented: "a" E2 82 (a cut "€")', async (t) => {
    assertFails(t, clientFrame(Opcode.Text, bytes(0x61, 0xe2, 0x82)), 1007, 'WS_ERR_INVALID_UTF8')
  })
  t.test('fragmented: "a" E2 | 82 with FIN', async (t) => {
    const stream = Buffer.concat([clientFrame(Opcode.Text, bytes(0x61, 0xe2), { fin: false }), clientFrame(Opcode.Continuation, bytes(0x82))])
    assertFails(t, stream, 1007, 'WS_ERR_INVALID_UTF8')
  })
  t.test('fragmented: E2 82 then an empty final fragment', async (t) => {
    const stream = Buffer.concat([clientFrame(Opcode.Text, bytes(0xe2, 0x82), { fin: false }), clientFrame(Opcode.Continuation, '')])
    assertFails(t, stream, 1007, 'WS_ERR_INVALID_UTF8')
  })
})

test('a UTF-8 sequence split across fragments is accepted', async (t) => {
  const text = 'é€😀'
  const data = Buffer.from(text)
  for (let cut = 1; cut < data.length; cut++) {
    const stream = Buffer.concat([clientFrame(Opcode.Text, data.subarray(0, cut), { fin: false }), clientFrame(Opcode.Continuation, data.subarray(cut))])
    const { session, io } = newSession()
    feed(session, [stream])
    t.same(io.messages, [{ data, isBinary: false }], `cut at byte ${cut}`)
  }
})

test('invalid UTF-8 in one unfragmented text frame fails with 1007, however it is chunked', async (t) => {
  const frame = clientFrame(Opcode.Text, bytes(0x61, 0xff, 0x62))
  assertFails(t, frame, 1007, 'WS_ERR_INVALID_UTF8')
  // Header in one chunk, payload in the next (as a client writing them apart sends it).
  const { session, io } = newSession()
  feed(session, [frame.subarray(0, 6), frame.subarray(6)])
  t.same(io.messages, [], 'header, then payload: the invalid text is not delivered')
  assertFailedOnce(t, io, 1007, 'WS_ERR_INVALID_UTF8', 'header, then payload')
})

test('binary messages are not UTF-8 checked', async (t) => {
  for (const io of assertAccepted(t, clientFrame(Opcode.Binary, bytes(0xff, 0xf4, 0x90, 0xc0)))) {
    t.same(io.messages, [{ data: bytes(0xff, 0xf4, 0x90, 0xc0), isBinary: true }])
  }
})

test('RSV1 on a control or continuation frame fails with 1002 even with permessage-deflate allowed (RFC 7692 §6)', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['ping with RSV1', clientFrame(Opcode.Ping, 'x', { rsv1: true })],
    ['continuation with RSV1', Buffer.concat([clientFrame(Opcode.Binary, 'a', { fin: false }), clientFrame(Opcode.Continuation, 'b', { rsv1: true })])]
  ]
  for (const [name, stream] of cases) {
    const { session, io } = newSession()
    // The parser is created by the first bytes received.
    session.receive(Buffer.alloc(0))
    ;(session.parser as FrameParser).allowRsv1 = true
    session.receive(stream)
    assertFailedOnce(t, io, 1002, 'WS_ERR_UNEXPECTED_RSV_1', name)
  }
})
