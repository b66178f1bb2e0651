/**
 * Autobahn section 2, Pings/Pongs. "Upon receipt of a Ping frame, an endpoint
 * MUST send a Pong frame in response ... The Pong frame sent in response to a
 * Ping frame must have identical Application data" (RFC 6455 §5.5.2); "A
 * Pong frame MAY be sent unsolicited ... A response to an unsolicited Pong
 * frame is not expected" (§5.5.3); "All control frames MUST have a payload
 * length of 125 bytes or less" (§5.5).
 *
 * A case expecting no answer sends its close frame right behind: the server
 * handles frames in order, so anything it sent in reply would come before
 * the echo of the close.
 */
import t from 'tap'
import { closeAfter, connect, echoServerFor, expectServerCloses, ping, pong, repeat } from './client.js'

const server = await echoServerFor(t)

const smallBinary = Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff])

t.test('2.1: ping without payload gets a pong without payload', async (t) => {
  const client = await connect(t, server)
  await client.send(ping())
  await closeAfter(t, client, [{ pong: '' }])
})

t.test('2.2: ping with a small text payload gets it back in the pong', async (t) => {
  const client = await connect(t, server)
  await client.send(ping('Hello, world!'))
  await closeAfter(t, client, [{ pong: 'Hello, world!' }])
})

t.test('2.3: ping with a small binary (non UTF-8) payload gets it back in the pong', async (t) => {
  const client = await connect(t, server)
  await client.send(ping(smallBinary))
  await closeAfter(t, client, [{ pong: smallBinary }])
})

t.test('2.4: ping with 125 bytes of payload gets it back in the pong', async (t) => {
  const payload = repeat(Buffer.from([0xfe]), 125)
  const client = await connect(t, server)
  await client.send(ping(payload))
  await closeAfter(t, client, [{ pong: payload }])
})

t.test('2.5: ping with 126 bytes of payload fails the connection with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(ping(repeat(Buffer.from([0xfe]), 126)))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('2.6: ping with 125 bytes of payload sent one byte at a time gets its pong', async (t) => {
  const payload = repeat(Buffer.from([0xfe]), 125)
  const client = await connect(t, server)
  await client.sendOctets(ping(payload))
  await closeAfter(t, client, [{ pong: payload }])
})

t.test('2.7: an unsolicited pong without payload gets no answer', async (t) => {
  const client = await connect(t, server)
  await client.send(pong())
  await closeAfter(t, client, [])
})

t.test('2.8: an unsolicited pong with payload gets no answer', async (t) => {
  const client = await connect(t, server)
  await client.send(pong('unsolicited pong payload'))
  await closeAfter(t, client, [])
})

t.test('2.9: unsolicited pong then ping: only the ping is answered', async (t) => {
  const client = await connect(t, server)
  await client.send(pong('unsolicited pong payload'))
  await client.send(ping('ping payload'))
  await closeAfter(t, client, [{ pong: 'ping payload' }])
})

const payloads = Array.from({ length: 10 }, (_, i) => `payload-${i}`)

t.test('2.10: 10 pings, each answered with its own payload, in order', async (t) => {
  const client = await connect(t, server)
  await client.sendEach(payloads.map((p) => ping(p)))
  await closeAfter(t, client, payloads.map((p) => ({ pong: p })))
})

t.test('2.11: 10 pings sent one byte at a time, each answered, in order', async (t) => {
  const client = await connect(t, server)
  await client.sendOctets(Buffer.concat(payloads.map((p) => ping(p))))
  await closeAfter(t, client, payloads.map((p) => ({ pong: p })))
})

t.test('extra: 10 pings coalesced in one write, each answered, in order', async (t) => {
  const client = await connect(t, server)
  await client.send(...payloads.map((p) => ping(p)))
  await closeAfter(t, client, payloads.map((p) => ({ pong: p })))
})

t.test('extra: the 126-byte ping fails before its payload arrives', async (t) => {
  const client = await connect(t, server)
  // Only the header: the declared payload length alone breaks §5.5.
  const bytes = ping(repeat(Buffer.from([0xfe]), 126))
  await client.send(bytes.subarray(0, 8))
  await expectServerCloses(t, client, [{ close: 1002 }])
})
