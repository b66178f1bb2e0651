/**
 * Compressed fan-out deflated once (RFC 7692 §7.1.1.1): subscribers whose
 * compressor starts every message empty (server_no_context_takeover, asked
 * for by the route or offered by the client) with the same settings share
 * one compression of a published message; a subscriber with context
 * takeover, or with other settings, compresses on its own. Counted as
 * node:zlib contexts created (ZlibProbe): without sharing, each
 * no-context-takeover subscriber creates one per message. Every subscriber
 * still gets every message, byte-exact once inflated, in order.
 */
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { ContextInflater, inflateMessage, start, type RawClient, ZlibProbe } from './helpers.js'

const TOPIC = 'room'

/** A chat-like message of about 4 KiB: JSON records with varying fields. */
function chatMessage (i: number): string {
  const records = Array.from({ length: 40 }, (_, r) =>
    `{"type":"message","room":"lobby","from":"user-${(i + r) % 13}","seq":${i * 40 + r},"text":"hello ${r * 7 % 31} from ${i}"}`)
  return `[${records.join(',')}]`.padEnd(4096, ' ')
}

/** Reads `count` frames, checks each is a compressed text frame, and returns their payloads. */
async function readCompressed (client: RawClient, count: number): Promise<Buffer[]> {
  const payloads: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const frame = await client.readFrame()
    if (frame.opcode !== Opcode.Text || !frame.rsv1 || !frame.fin) throw new Error(`frame ${i}: opcode ${frame.opcode}, rsv1 ${frame.rsv1}`)
    payloads.push(frame.payload)
  }
  return payloads
}

test('no-context-takeover subscribers with the same settings share one compression per publish', async (t) => {
  const h = await start(t, { perMessageDeflate: true }, (app) => {
    // The route asks for server_no_context_takeover (a route that mostly publishes).
    app.get('/shared', { ws: { perMessageDeflate: { serverNoContextTakeover: true } } }, (socket) => { socket.subscribe(TOPIC) })
    // Same option, another compression level: another shared compression.
    app.get('/level9', { ws: { perMessageDeflate: { serverNoContextTakeover: true, level: 9 } } }, (socket) => { socket.subscribe(TOPIC) })
    // Context takeover: its own compressor, kept between messages.
    app.get('/own', { ws: true }, (socket) => { socket.subscribe(TOPIC) })
  })
  const shared = await Promise.all([1, 2, 3, 4].map(() => h.rawWebSocket('/shared', 'permessage-deflate')))
  // A client may offer server_no_context_takeover itself on a route that does not ask for it.
  const offered = await h.rawWebSocket('/own', 'permessage-deflate; server_no_context_takeover')
  const level9 = await Promise.all([1, 2].map(() => h.rawWebSocket('/level9', 'permessage-deflate')))
  const own = await h.rawWebSocket('/own', 'permessage-deflate')
  t.match(shared[0].response?.headers['sec-websocket-extensions'], /server_no_context_takeover/, 'the route asked for server_no_context_takeover')
  t.notMatch(own.response?.headers['sec-websocket-extensions'], /server_no_context_takeover/, 'the other route did not')
  await new Promise((resolve) => setImmediate(resolve))

  const count = 5
  const probe = new ZlibProbe().enable()
  t.teardown(() => probe.disable())
  for (let i = 0; i < count; i++) t.equal(h.app.websocket.publish(TOPIC, chatMessage(i)), 8, `publish ${i} reached every subscriber`)
  const received = await Promise.all([...shared, offered, ...level9, own].map(async (client) => await readCompressed(client, count)))
  probe.disable()
  // Per publish: one for the 5 subscribers at level 1 (4 asked by the route, 1 offered), one for the 2 at level 9;
  // plus the context-takeover subscriber's own compressor, created once and kept.
  t.equal(probe.created, 2 * count + 1, 'zlib contexts: one per settings per publish, plus the context-takeover socket\'s own')

  for (const [index, payloads] of received.slice(0, 7).entries()) {
    const texts = payloads.map((payload) => inflateMessage(payload).toString())
    t.same(texts, Array.from({ length: count }, (_, i) => chatMessage(i)), `no-context-takeover subscriber ${index}: every message, in order, each inflating alone`)
  }
  for (let i = 0; i < count; i++) {
    t.ok(received.slice(1, 5).every((payloads) => payloads[i].equals(received[0][i])), `message ${i}: the same compressed bytes on every level-1 subscriber`)
  }
  const inflater = new ContextInflater()
  t.same(received[7].map((payload) => inflater.inflate(payload).toString()), Array.from({ length: count }, (_, i) => chatMessage(i)),
    'the context-takeover subscriber: every message, in order')
})

test('a subscriber that closes while the shared compression runs leaves the others their message', async (t) => {
  const h = await start(t, { perMessageDeflate: { serverNoContextTakeover: true } }, (app) => {
    app.get('/shared', { ws: true }, (socket) => { socket.subscribe(TOPIC) })
  })
  const clients = await Promise.all([1, 2, 3].map(() => h.rawWebSocket('/shared', 'permessage-deflate')))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(h.app.websocket.publish(TOPIC, chatMessage(1)), 3)
  // The first subscriber (whose settings started the compression) goes away before it is done.
  clients[0].reset()
  t.equal(h.app.websocket.publish(TOPIC, chatMessage(2)), 3, 'the closing socket is still OPEN on the server for the second publish')
  for (const client of clients.slice(1)) {
    const payloads = await readCompressed(client, 2)
    t.same(payloads.map((payload) => inflateMessage(payload).toString()), [chatMessage(1), chatMessage(2)], 'both messages, in order')
  }
})

test('a message over the threshold for some subscribers and sent uncompressed to others', async (t) => {
  const h = await start(t, { perMessageDeflate: { serverNoContextTakeover: true } }, (app) => {
    app.get('/shared', { ws: true }, (socket) => { socket.subscribe(TOPIC) })
  })
  const compressing = await h.rawWebSocket('/shared', 'permessage-deflate')
  const plain = await h.rawWebSocket('/shared')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(h.app.websocket.publish(TOPIC, chatMessage(3)), 2)
  t.equal(inflateMessage((await readCompressed(compressing, 1))[0]).toString(), chatMessage(3), 'compressed where negotiated')
  const frame = await plain.readFrame()
  t.same([frame.opcode, frame.rsv1, frame.payload.toString()], [Opcode.Text, false, chatMessage(3)], 'as it is where not')
})
