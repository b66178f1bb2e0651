/**
 * Autobahn section 5, Fragmentation (RFC 6455 §5.4):
 * - "Control frames (see Section 5.5) MAY be injected in the middle of a
 *   fragmented message" and "Control frames themselves MUST NOT be
 *   fragmented" (5.1, 5.2, 5.6-5.8, 5.19, 5.20);
 * - a message is "a single frame with the FIN bit clear and an opcode other
 *   than 0, followed by zero or more frames with the FIN bit clear and the
 *   opcode set to 0, and terminated by a single frame with the FIN bit set and
 *   an opcode of 0": a continuation frame with nothing to continue, or a new
 *   data frame inside a message, fails the connection with 1002 (5.9-5.18).
 * Each case is sent in one write, frame by frame, or one byte at a time, as
 * Autobahn does.
 */
import t from 'tap'
import {
  closeAfter, connect, continuation, echoServerFor, expectServerCloses, frame, OP, ping, type RawClient, text
} from './client.js'

const server = await echoServerFor(t)

type How = 'one write' | 'frame by frame' | 'one byte at a time'

async function sendAs (client: RawClient, frames: Buffer[], how: How): Promise<void> {
  if (how === 'one write') await client.send(...frames)
  else if (how === 'frame by frame') await client.sendEach(frames)
  else await client.sendOctets(Buffer.concat(frames))
}

t.test('5.1: ping fragmented into 2 fragments fails with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(frame(OP.ping, 'fragment1', { fin: false }), continuation('fragment2'))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('5.2: pong fragmented into 2 fragments fails with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(frame(OP.pong, 'fragment1', { fin: false }), continuation('fragment2'))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

const twoFragments = (): Buffer[] => [text('fragment1', { fin: false }), continuation('fragment2')]
const withPing = (): Buffer[] => [text('fragment1', { fin: false }), ping('ping payload'), continuation('fragment2')]

for (const [name, how] of [['5.3', 'one write'], ['5.4', 'frame by frame'], ['5.5', 'one byte at a time']] as Array<[string, How]>) {
  t.test(`${name}: text message in 2 fragments, ${how}, is echoed`, async (t) => {
    const client = await connect(t, server)
    await sendAs(client, twoFragments(), how)
    await closeAfter(t, client, [{ text: 'fragment1fragment2' }])
  })
}

for (const [name, how] of [['5.6', 'one write'], ['5.7', 'frame by frame'], ['5.8', 'one byte at a time']] as Array<[string, How]>) {
  t.test(`${name}: text message in 2 fragments with a ping between, ${how}: pong, then the echo`, async (t) => {
    const client = await connect(t, server)
    await sendAs(client, withPing(), how)
    await closeAfter(t, client, [{ pong: 'ping payload' }, { text: 'fragment1fragment2' }])
  })
}

for (const [name, fin, how] of [
  ['5.9', true, 'one write'], ['5.10', true, 'frame by frame'], ['5.11', true, 'one byte at a time'],
  ['5.12', false, 'one write'], ['5.13', false, 'frame by frame'], ['5.14', false, 'one byte at a time']
] as Array<[string, boolean, How]>) {
  t.test(`${name}: continuation frame with FIN ${fin ? 'set' : 'clear'} and nothing to continue, then a text message, ${how}: 1002`, async (t) => {
    const client = await connect(t, server)
    await sendAs(client, [continuation('non-continuation payload', { fin }), text('Hello, world!')], how)
    await expectServerCloses(t, client, [{ close: 1002 }])
  })
}

t.test('5.15: a 2-fragment message, then a continuation with nothing to continue: echo, then 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(
    text('fragment1', { fin: false }), continuation('fragment2'),
    continuation('fragment3', { fin: false }), text('fragment4'))
  await expectServerCloses(t, client, [{ text: 'fragment1fragment2' }, { close: 1002 }])
})

t.test('5.16: twice (continuation with FIN clear and nothing to continue, then a 2-fragment message): 1002', async (t) => {
  const client = await connect(t, server)
  const round = (): Buffer[] => [continuation('fragment1', { fin: false }), text('fragment2', { fin: false }), continuation('fragment3')]
  await client.send(...round(), ...round())
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('5.17: twice (continuation with FIN set and nothing to continue, then a 2-fragment message): 1002', async (t) => {
  const client = await connect(t, server)
  const round = (): Buffer[] => [continuation('fragment1'), text('fragment2', { fin: false }), continuation('fragment3')]
  await client.send(...round(), ...round())
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('5.18: text message in 2 fragments whose second frame has opcode text: 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(text('fragment1', { fin: false }), text('fragment2'))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

for (const [name, how] of [['5.19', 'one write'], ['5.20', 'frame by frame']] as Array<[string, How]>) {
  t.test(`${name}: 5 fragments with 2 pings between, ${how}: the first pong comes before the message is complete`, async (t) => {
    const client = await connect(t, server)
    await sendAs(client, [text('fragment1', { fin: false }), continuation('fragment2', { fin: false }), ping('pongme 1!')], how)
    // The message is incomplete: the pong must come now (Autobahn waits 1 s here before going on).
    const [first] = await client.waitForFrames(1)
    t.equal(first.opcode, OP.pong, 'the ping between fragments is answered before the message ends')
    await sendAs(client, [
      continuation('fragment3', { fin: false }), continuation('fragment4', { fin: false }),
      ping('pongme 2!'), continuation('fragment5')
    ], how)
    await closeAfter(t, client, [
      { pong: 'pongme 1!' }, { pong: 'pongme 2!' }, { text: 'fragment1fragment2fragment3fragment4fragment5' }
    ])
  })
}

t.test('extra: binary message in 2 fragments with a pong and a ping between is echoed as binary', async (t) => {
  const client = await connect(t, server)
  await client.send(
    frame(OP.binary, Buffer.from([1, 2, 3]), { fin: false }), frame(OP.pong, 'x'),
    ping('between'), continuation(Buffer.from([4, 5])))
  await closeAfter(t, client, [{ pong: 'between' }, { binary: Buffer.from([1, 2, 3, 4, 5]) }])
})

t.test('extra: a binary frame inside a fragmented text message fails with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(text('fragment1', { fin: false }), frame(OP.binary, 'fragment2'))
  await expectServerCloses(t, client, [{ close: 1002 }])
})
