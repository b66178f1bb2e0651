/**
 * Autobahn section 7, Close Handling (the client starts the closing handshake):
 * - "If an endpoint receives a Close frame and did not previously send a
 *   Close frame, the endpoint MUST send a Close frame in response ... it
 *   typically echos the status code it received" (RFC 6455 §5.5.1); this
 *   server echoes the code and, for a close frame without a body, answers
 *   with a close frame without a body: 1005, 1006 and 1015 "MUST NOT be set
 *   as a status code in a Close control frame" (§7.4.1);
 * - "the server MUST close the underlying TCP connection" first (§7.1.1,
 *   §5.5.1): every case ends with the server's FIN;
 * - data after the close frame is ignored (7.1.2-7.1.5);
 * - a close body of 1 byte, over 125 bytes, with a code not allowed on the
 *   wire (§7.4.1, §7.4.2: 0-999 unused, 1004-1006, 1015, 1016-2999 reserved,
 *   5000+ not a code) fails with 1002; a reason that is not UTF-8 with 1007
 *   (§5.5.1: "the body ... MUST be UTF-8", §8.1).
 * Coalesced cases are also checked on the application side: it must see the
 * peer's code and reason, and nothing after the close frame.
 */
import t from 'tap'
import {
  close, closeAfter, connect, continuation, echoServerFor, expectServerCloses, frame, OP, ping, repeat, text
} from './client.js'

const server = await echoServerFor(t)

t.test('7.1.1: a message, then a close frame: echo, then a clean close with 1000', async (t) => {
  const client = await connect(t, server)
  await client.send(text('Hello World!'))
  await closeAfter(t, client, [{ text: 'Hello World!' }])
  const app = await server.appClosed(client.id)
  t.same(app.closed, { code: 1000, reason: '' }, 'the application sees the peer\'s close code')
})

/** [case, what follows the close 1000] */
const afterClose: Array<[string, string, Buffer[]]> = [
  ['7.1.2', 'a second close frame', [frame(OP.close)]],
  ['7.1.3', 'a ping', [ping()]],
  ['7.1.4', 'a text message', [text('Hello World!')]]
]

for (const [name, what, after] of afterClose) {
  for (const how of ['one write', 'frame by frame'] as const) {
    t.test(`${name}: close 1000, then ${what} (${how}): close 1000 echoed, the rest ignored`, async (t) => {
      const client = await connect(t, server)
      const frames = [close(1000), ...after]
      if (how === 'one write') await client.send(...frames)
      else await client.sendEach(frames)
      await expectServerCloses(t, client, [{ close: 1000 }])
      const app = await server.appClosed(client.id)
      t.same(app.closed, { code: 1000, reason: '' }, 'the application\'s close event has the first close frame\'s code')
      t.same(app.messages, [], 'the application got no message after the close frame')
      t.same(app.pings, [], 'the application got no ping after the close frame')
    })
  }
}

t.test('7.1.5: text fragment, close 1000, last fragment: close 1000 echoed, the message dropped', async (t) => {
  const client = await connect(t, server)
  await client.send(text('fragment1', { fin: false }), close(1000), continuation('fragment2'))
  await expectServerCloses(t, client, [{ close: 1000 }])
  const app = await server.appClosed(client.id)
  t.same(app.messages, [], 'the application got no message')
})

t.test('7.1.6: 256 KiB message, small message, close 1000, ping, back to back: both echoed, then close 1000, no pong', async (t) => {
  // Informational in Autobahn; this server handles frames in order, so the strict outcome is expected.
  const big = repeat('BAsd7&jh23', 256 * 1024)
  const client = await connect(t, server)
  await client.send(text(big), text('Hello World!'), close(1000), ping())
  await expectServerCloses(t, client, [{ text: big }, { text: 'Hello World!' }, { close: 1000 }], 10_000)
})

t.test('7.3.1: close frame without a body is answered with a close frame without a body', async (t) => {
  const client = await connect(t, server)
  await client.send(close())
  await expectServerCloses(t, client, [{ close: null }])
  const app = await server.appClosed(client.id)
  t.same(app.closed, { code: 1005, reason: '' }, 'the application sees 1005: no status code received (§7.1.5)')
})

t.test('7.3.2: close frame with a body of 1 byte fails with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(frame(OP.close, 'a'))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('7.3.3: close 1000 without a reason: close 1000 echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(close(1000))
  await expectServerCloses(t, client, [{ close: 1000 }])
})

t.test('7.3.4: close 1000 with a reason: close 1000 echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(close(1000, 'Hello World!'))
  await expectServerCloses(t, client, [{ close: 1000 }])
  const app = await server.appClosed(client.id)
  t.same(app.closed, { code: 1000, reason: 'Hello World!' }, 'the application sees the code and the reason')
})

t.test('7.3.5: close 1000 with a reason of 123 bytes (a body of 125): close 1000 echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(close(1000, repeat('*', 123)))
  await expectServerCloses(t, client, [{ close: 1000 }])
})

t.test('7.3.6: close 1000 with a reason of 124 bytes (a body of 126): 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(close(1000, repeat('*', 124)))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('7.5.1: close 1000 with a reason that is not UTF-8: 1007', async (t) => {
  const client = await connect(t, server)
  await client.send(close(1000, Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex')))
  await expectServerCloses(t, client, [{ close: 1007 }])
})

const validCodes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
validCodes.forEach((code, i) => {
  t.test(`7.7.${i + 1}: close with valid code ${code}: echoed`, async (t) => {
    const client = await connect(t, server)
    await client.send(close(code))
    await expectServerCloses(t, client, [{ close: code }])
  })
})

for (const code of [1012, 1013, 1014]) {
  t.test(`extra: close with registered code ${code} (IANA registry, §11.7): echoed`, async (t) => {
    const client = await connect(t, server)
    await client.send(close(code))
    await expectServerCloses(t, client, [{ close: code }])
  })
}

const invalidCodes = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]
invalidCodes.forEach((code, i) => {
  t.test(`7.9.${i + 1}: close with invalid code ${code}: 1002`, async (t) => {
    const client = await connect(t, server)
    await client.send(close(code))
    await expectServerCloses(t, client, [{ close: 1002 }])
  })
})

t.test('extra: close with code 1015 ("MUST NOT be set as a status code", §7.4.1): 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(close(1015))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

for (const [name, code] of [['7.13.1', 5000], ['7.13.2', 65535]] as Array<[string, number]>) {
  t.test(`${name}: close with code ${code}, outside every range of §7.4.2: 1002`, async (t) => {
    const client = await connect(t, server)
    await client.send(close(code))
    await expectServerCloses(t, client, [{ close: 1002 }])
  })
}

t.test('extra: close frame sent one byte at a time: echoed', async (t) => {
  const client = await connect(t, server)
  await client.sendOctets(close(1001, 'going away'))
  await expectServerCloses(t, client, [{ close: 1001 }])
})

t.test('extra: close frame with FIN clear (a fragmented control frame, §5.5): 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(frame(OP.close, Buffer.from([0x03, 0xe8]), { fin: false }), continuation(''))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('extra: close between 2 fragments of a binary message, one byte at a time: close echoed, nothing else', async (t) => {
  const client = await connect(t, server)
  await client.sendOctets(Buffer.concat([frame(OP.binary, 'fragment1', { fin: false }), close(3000), continuation('fragment2')]))
  await expectServerCloses(t, client, [{ close: 3000 }])
})
