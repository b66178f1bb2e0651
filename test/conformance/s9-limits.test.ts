/**
 * Autobahn section 9, Limits/Performance, against an echo app whose
 * maxPayload is 16 MiB: every message up to that size must come back byte for
 * byte, whole (RFC 6455 §5.4: fragments are reassembled into one message),
 * however it was cut: one frame (9.1, 9.2), fragments of 64 B to 4 MiB
 * (9.3, 9.4), one frame in TCP chops of 64 B to 2 KiB (9.5, 9.6), and 1000
 * round trips in a row (9.7, 9.8). Times are not asserted, every wait is
 * bounded.
 */
import t from 'tap'
import {
  binary, close, closeAfter, connect, echoServerFor, expectFrame, expectServerCloses, fragments, frame, MAX_PAYLOAD,
  nextMask, OP, repeat, serverHeader, text
} from './client.js'

const server = await echoServerFor(t, { maxPayload: MAX_PAYLOAD })

const KiB = 1024
const MiB = 1024 * 1024
/** Bound of one large exchange: generous for a 2-core machine, still bounded. */
const LONG = 20_000

const TEXT_PATTERN = 'BAsd7&jh23'
const BINARY_PATTERN = Buffer.from([0x00, 0xfe, 0x23, 0xfa, 0xf0])
const sizeName = (n: number): string => n >= MiB ? `${n / MiB} MiB` : n >= KiB ? `${n / KiB} KiB` : `${n} B`

const sizes = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB]

sizes.forEach((size, i) => {
  t.test(`9.1.${i + 1}: text message of ${sizeName(size)} is echoed`, async (t) => {
    const payload = repeat(TEXT_PATTERN, size)
    const client = await connect(t, server)
    await client.send(text(payload))
    await closeAfter(t, client, [{ text: payload }], LONG)
  })
})

sizes.forEach((size, i) => {
  t.test(`9.2.${i + 1}: binary message of ${sizeName(size)} is echoed`, async (t) => {
    const payload = repeat(BINARY_PATTERN, size)
    const client = await connect(t, server)
    await client.send(binary(payload))
    await closeAfter(t, client, [{ binary: payload }], LONG)
  })
})

const chopSizes = [64, 128, 256, 512, 1024, 2048]

chopSizes.forEach((chopSize, i) => {
  t.test(`9.5.${i + 1}: text message of 1 MiB sent in chops of ${chopSize} bytes is echoed`, async (t) => {
    const payload = repeat(TEXT_PATTERN, 1 * MiB)
    const client = await connect(t, server)
    await client.sendChopped(text(payload), chopSize)
    await closeAfter(t, client, [{ text: payload }], LONG)
  })
})

chopSizes.forEach((chopSize, i) => {
  t.test(`9.6.${i + 1}: binary message of 1 MiB sent in chops of ${chopSize} bytes is echoed`, async (t) => {
    const payload = repeat(BINARY_PATTERN, 1 * MiB)
    const client = await connect(t, server)
    await client.sendChopped(binary(payload), chopSize)
    await closeAfter(t, client, [{ binary: payload }], LONG)
  })
})

const roundTripSizes = [0, 16, 64, 256, 1024, 4096]

for (const [section, opcode, pattern] of [['9.7', OP.text, Buffer.from('*')], ['9.8', OP.binary, Buffer.from([0xfe])]] as const) {
  roundTripSizes.forEach((size, i) => {
    t.test(`${section}.${i + 1}: 1000 ${opcode === OP.text ? 'text' : 'binary'} messages of ${size} bytes, one after the echo of the other`, async (t) => {
      const payload = repeat(pattern, size)
      const expected = Buffer.concat([serverHeader(opcode, size), payload])
      const client = await connect(t, server)
      let wrong = 0
      for (let n = 1; n <= 1000; n++) {
        await client.send(frame(opcode, payload))
        const echo = (await client.waitForFrames(n))[n - 1]
        if (!Buffer.concat([echo.header, echo.payload]).equals(expected)) wrong++
      }
      t.equal(wrong, 0, '1000 echoes, each byte for byte the message sent')
      await client.send(close(1000))
      await client.waitForServerClose()
      t.equal(client.frames.length, 1001, '1000 echoes and the close')
      expectFrame(t, client.frames[1000], { close: 1000 }, 'the last frame')
    })
  })
}

t.test('extra: a message of maxPayload + 1 bytes fails with 1009 before its payload arrives (§7.4.1)', async (t) => {
  const client = await connect(t, server)
  // Only the header, with a 64-bit payload length of 16 MiB + 1 and a masking key:
  // 1009 "a message that is too big for it to process" (§7.4.1).
  const header = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x01, ...nextMask()])
  t.equal(header.readUInt32BE(6), MAX_PAYLOAD + 1, 'the declared payload length')
  await client.send(header)
  await expectServerCloses(t, client, [{ close: 1009 }])
  t.equal(client.bytesSent, 14, 'the close came with no payload byte sent')
})

/*
 * 9.3 and 9.4 run last, largest fragments first, text and binary in turn:
 * should reassembly cost grow with the number of fragments, the echo app
 * (in this process) stalls on the 64 B cases, and every other case has
 * reported by then.
 */
const fragmentSizes = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB]

for (let i = fragmentSizes.length - 1; i >= 0; i--) {
  const fragmentSize = fragmentSizes[i]
  t.test(`9.3.${i + 1}: text message of 4 MiB in fragments of ${sizeName(fragmentSize)} is echoed`, async (t) => {
    const payload = repeat('*', 4 * MiB)
    const client = await connect(t, server)
    await client.send(...fragments(OP.text, payload, fragmentSize))
    await closeAfter(t, client, [{ text: payload }], LONG)
  })
  t.test(`9.4.${i + 1}: binary message of 4 MiB in fragments of ${sizeName(fragmentSize)} is echoed`, async (t) => {
    const payload = repeat(Buffer.from([0xfe]), 4 * MiB)
    const client = await connect(t, server)
    await client.send(...fragments(OP.binary, payload, fragmentSize))
    await closeAfter(t, client, [{ binary: payload }], LONG)
  })
}
