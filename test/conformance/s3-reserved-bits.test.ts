/**
 * Autobahn section 3, Reserved Bits. RSV1, RSV2, RSV3 "MUST be 0 unless an
 * extension is negotiated that defines meanings for non-zero values. If a
 * nonzero value is received and none of the negotiated extensions defines the
 * meaning of such a nonzero value, the receiving endpoint MUST _Fail the
 * WebSocket Connection_" (RFC 6455 §5.2). No extension is negotiated here.
 *
 * Where a valid message precedes the bad frame, its echo must come first
 * (Autobahn's strict outcome), and the ping after the bad frame must not be
 * answered.
 */
import t from 'tap'
import { binary, close, connect, echoServerFor, expectServerCloses, frame, OP, ping, text } from './client.js'

const server = await echoServerFor(t)

const hello = 'Hello, world!'

t.test('3.1: text message with RSV = 1 fails the connection with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(text(hello, { rsv: 1 }))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('3.2: text, text with RSV = 2, ping: echo, then 1002, no pong', async (t) => {
  const client = await connect(t, server)
  await client.send(text(hello), text(hello, { rsv: 2 }), ping())
  await expectServerCloses(t, client, [{ text: hello }, { close: 1002 }])
})

t.test('3.3: text, text with RSV = 3, ping, frame by frame: echo, then 1002, no pong', async (t) => {
  const client = await connect(t, server)
  await client.sendEach([text(hello), text(hello, { rsv: 3 }), ping()], { ms: 5 })
  await expectServerCloses(t, client, [{ text: hello }, { close: 1002 }])
})

t.test('3.4: text, text with RSV = 4, ping, one byte at a time: echo, then 1002, no pong', async (t) => {
  const client = await connect(t, server)
  await client.sendOctets(Buffer.concat([text(hello), text(hello, { rsv: 4 }), ping()]))
  await expectServerCloses(t, client, [{ text: hello }, { close: 1002 }])
})

t.test('3.5: binary message with RSV = 5 fails the connection with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(binary(Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]), { rsv: 5 }))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('3.6: ping with RSV = 6 fails the connection with 1002', async (t) => {
  // Autobahn's description says Ping; its code sends opcode 2. Both are covered.
  for (const opcode of [OP.ping, OP.binary]) {
    await t.test(`opcode ${opcode}`, async (t) => {
      const client = await connect(t, server)
      await client.send(frame(opcode, hello, { rsv: 6 }))
      await expectServerCloses(t, client, [{ close: 1002 }])
    })
  }
})

t.test('3.7: close with RSV = 7 fails the connection with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(close(undefined, undefined, { rsv: 7 }))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('extra: every nonzero RSV value on every opcode fails with 1002, even as the first byte alone', async (t) => {
  for (const opcode of [OP.text, OP.binary, OP.continuation, OP.ping, OP.pong, OP.close]) {
    for (let rsv = 1; rsv <= 7; rsv++) {
      await t.test(`opcode ${opcode}, RSV = ${rsv}`, async (t) => {
        const client = await connect(t, server)
        // Only the first byte: RSV is in it, the connection can fail at once.
        await client.send(frame(opcode, hello, { rsv }).subarray(0, 1))
        await expectServerCloses(t, client, [{ close: 1002 }])
      })
    }
  }
})
