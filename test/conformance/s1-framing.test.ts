/**
 * Autobahn section 1, Framing: text (1.1.x) and binary (1.2.x) messages of
 * every payload length form (RFC 6455 §5.2: 7-bit up to 125, 16-bit up to
 * 65535, 64-bit above), echoed with the exact header the server must send,
 * then a clean close with 1000 that the server ends by closing TCP.
 * Also: the masked "Hello" of RFC 6455 §5.7 as literal bytes, frames
 * coalesced in one write, headers split at every byte, and two framing
 * errors Autobahn's client cannot produce (an unmasked frame, §5.1, and a
 * 64-bit payload length with its most significant bit set, §5.2).
 */
import t from 'tap'
import {
  binary, closeAfter, connect, echoServerFor, expectServerCloses, OP, repeat, serverHeader, text
} from './client.js'

const server = await echoServerFor(t)

const lengths: Array<[string, number, number?]> = [
  ['1', 0], ['2', 125], ['3', 126], ['4', 127], ['5', 128], ['6', 65535], ['7', 65536], ['8', 65536, 997]
]

for (const [n, length, chopSize] of lengths) {
  const how = chopSize === undefined ? '' : `, sent in chops of ${chopSize} bytes`
  t.test(`1.1.${n}: text message of ${length} bytes${how} is echoed`, async (t) => {
    const payload = repeat('*', length)
    const client = await connect(t, server)
    if (chopSize === undefined) await client.send(text(payload))
    else await client.sendChopped(text(payload), chopSize)
    await closeAfter(t, client, [{ text: payload }])
  })
  t.test(`1.2.${n}: binary message of ${length} bytes${how} is echoed`, async (t) => {
    const payload = repeat(Buffer.from([0xfe]), length)
    const client = await connect(t, server)
    if (chopSize === undefined) await client.send(binary(payload))
    else await client.sendChopped(binary(payload), chopSize)
    await closeAfter(t, client, [{ binary: payload }])
  })
}

t.test('extra: RFC 6455 §5.7 "a single-frame masked text message" as literal bytes', async (t) => {
  const client = await connect(t, server)
  await client.send(Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]))
  const [echo] = await client.waitForFrames(1)
  // §5.7: "A single-frame unmasked text message 0x81 0x05 0x48 0x65 0x6c 0x6c 0x6f (contains "Hello")".
  t.equal(Buffer.concat([echo.header, echo.payload]).toString('hex'), '810548656c6c6f')
  await closeAfter(t, client, [{ text: 'Hello' }])
})

t.test('extra: the header oracle of these tests uses the shortest payload length form (§5.2)', async (t) => {
  // Every echo above is compared with serverHeader(); here it is pinned byte by byte at the boundaries.
  t.equal(serverHeader(OP.text, 125).toString('hex'), '817d')
  t.equal(serverHeader(OP.text, 126).toString('hex'), '817e007e')
  t.equal(serverHeader(OP.text, 65535).toString('hex'), '817effff')
  t.equal(serverHeader(OP.text, 65536).toString('hex'), '817f0000000000010000')
})

t.test('extra: messages of every length form coalesced in one write are echoed in order', async (t) => {
  const payloads = [0, 125, 126, 127, 128, 65535, 65536].map((length) => repeat('*', length))
  const client = await connect(t, server)
  await client.send(...payloads.map((p, i) => i % 2 === 0 ? text(p) : binary(p)))
  await closeAfter(t, client, payloads.map((p, i) => i % 2 === 0 ? { text: p } : { binary: p }))
})

t.test('extra: headers of every length form split at every byte', async (t) => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536]) {
    await t.test(`payload length ${length}`, async (t) => {
      const payload = repeat('BAsd7&jh23', length)
      const bytes = text(payload)
      const headerLength = length < 126 ? 6 : length < 65536 ? 8 : 14
      const client = await connect(t, server)
      // The header and the first payload byte one byte per write, then the rest at once.
      await client.sendOctets(bytes.subarray(0, Math.min(bytes.length, headerLength + 1)))
      await client.send(bytes.subarray(headerLength + 1))
      await closeAfter(t, client, [{ text: payload }])
    })
  }
})

t.test('extra: small frames split at every byte are echoed', async (t) => {
  const client = await connect(t, server)
  const payloads = ['', 'Hello, world!', repeat('*', 125).toString(), repeat('*', 128).toString()]
  await client.sendOctets(Buffer.concat(payloads.map((p) => text(p))))
  await closeAfter(t, client, payloads.map((p) => ({ text: p })))
})

t.test('extra: an unmasked client frame fails the connection with 1002 (§5.1)', async (t) => {
  const client = await connect(t, server)
  // "The server MUST close the connection upon receiving a frame that is not masked" (§5.1).
  await client.send(Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]))
  await expectServerCloses(t, client, [{ close: 1002 }])
})

t.test('extra: a 64-bit payload length with its most significant bit set fails with 1002 (§5.2)', async (t) => {
  const client = await connect(t, server)
  // "the most significant bit MUST be 0" (§5.2).
  await client.send(Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0x11, 0x22, 0x33, 0x44]))
  await expectServerCloses(t, client, [{ close: 1002 }])
})
