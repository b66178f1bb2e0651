/**
 * Autobahn section 10, Auto-Fragmentation: a text message of 65536 bytes that
 * the client fragments automatically into frames of 1300 payload bytes
 * (65536 = 50 * 1300 + 536: one text frame and 50 continuation frames, FIN
 * on the last), echoed as one message (RFC 6455 §5.4: "the receiver ...
 * MUST ... buffer ... the fragments" of a message, which is delivered whole).
 */
import t from 'tap'
import { closeAfter, connect, echoServerFor, fragments, OP, repeat } from './client.js'

const server = await echoServerFor(t)

t.test('10.1.1: text message of 65536 bytes auto-fragmented into frames of 1300 bytes is echoed', async (t) => {
  const payload = repeat('*', 65536)
  const frames = fragments(OP.text, payload, 1300)
  // What Autobahn counts on its side: 1 text frame, 50 continuation frames.
  t.equal(frames.filter((f) => (f[0] & 0x0f) === OP.text).length, 1, 'one text frame')
  t.equal(frames.filter((f) => (f[0] & 0x0f) === OP.continuation).length, 50, '50 continuation frames')
  t.equal(frames.filter((f) => (f[0] & 0x80) !== 0).length, 1, 'FIN on one frame only')
  t.ok((frames[frames.length - 1][0] & 0x80) !== 0, 'FIN on the last frame')
  const client = await connect(t, server)
  await client.send(...frames)
  await closeAfter(t, client, [{ text: payload }])
})

t.test('extra: the same frames in TCP chops of 1300 bytes, across frame boundaries, are echoed', async (t) => {
  const payload = repeat('*', 65536)
  const client = await connect(t, server)
  await client.sendChopped(Buffer.concat(fragments(OP.text, payload, 1300)), 1300)
  await closeAfter(t, client, [{ text: payload }])
})
