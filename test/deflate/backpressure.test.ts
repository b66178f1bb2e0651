/**
 * Backpressure with compression: messages waiting for the compressor are
 * unsent backlog like any other. `send()` must return false past
 * highWaterMark, `bufferedAmount` must count them, and past maxBackpressure a
 * further `send()` must fail the connection with 1008, whether or not the
 * messages are compressed (the options' contract, lib/options.ts).
 * Compared side by side with the same messages sent uncompressed.
 */
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { pseudoRandomBytes, start, withTimeout, type RawClient, type Teardown } from './helpers.js'

const KiB = 1024

/** Size of each message: the first fits under the default highWaterMark of 64 KiB, the second does not. */
const SIZE = 48 * KiB
const COUNT = 32

/** What the server saw while sending 32 messages of 48 KiB in one synchronous loop. */
interface Burst {
  results: boolean[]
  bufferedAmount: number
  /** Resolves on the socket's `drain` event. */
  drained: Promise<void>
}

/**
 * An app whose route, on the client's first message, sends 32 pseudo-random
 * (incompressible) 48 KiB messages in one loop, compressed or not per the
 * query, and reports the send() results and bufferedAmount.
 */
async function burst (t: Teardown, compress: boolean, maxBackpressure = 16 * 1024 * KiB): Promise<{ burst: Burst, raw: RawClient }> {
  let resolveBurst: (burst: Burst) => void = () => {}
  const seen = new Promise<Burst>((resolve) => { resolveBurst = resolve })
  const harness = await start(t, { perMessageDeflate: true, maxBackpressure }, (app) => {
    app.get('/burst', { ws: true }, (socket) => {
      socket.on('message', () => {
        const results: boolean[] = []
        for (let i = 0; i < COUNT; i++) results.push(socket.send(pseudoRandomBytes(SIZE, i + 1), { compress }))
        const drained = new Promise<void>((resolve) => socket.once('drain', resolve))
        resolveBurst({ results, bufferedAmount: socket.bufferedAmount, drained })
      })
    })
  })
  const raw = await harness.rawWebSocket('/burst', 'permessage-deflate')
  raw.sendFrame(Opcode.Text, 'go')
  return { burst: await seen, raw }
}

/** Reads the 32 messages of the burst. */
async function readAll (raw: RawClient): Promise<void> {
  for (let i = 0; i < COUNT; i++) await raw.readFrame()
}

test('uncompressed, for reference: send() returns false past highWaterMark, bufferedAmount counts the backlog, drain follows', async (t) => {
  const { burst: { results, bufferedAmount, drained }, raw } = await burst(t, false)
  t.equal(results.indexOf(false), 1, 'the second 48 KiB message is past the 64 KiB highWaterMark')
  t.ok(bufferedAmount >= COUNT * SIZE, `bufferedAmount ${bufferedAmount} right after the loop`)
  await readAll(raw)
  // 'drain' follows a send() that returned false (none did, if the first assertion failed).
  if (results.includes(false)) await withTimeout(drained, 'the drain event')
})

test('compressed: send() returns false past highWaterMark, bufferedAmount counts the messages waiting for the compressor, drain follows', async (t) => {
  const { burst: { results, bufferedAmount, drained }, raw } = await burst(t, true)
  t.equal(results.indexOf(false), 1, 'the second 48 KiB message is past the 64 KiB highWaterMark')
  t.ok(bufferedAmount >= (COUNT - 1) * SIZE, `bufferedAmount ${bufferedAmount} right after the loop (31 messages wait for the compressor)`)
  await readAll(raw)
  // 'drain' follows a send() that returned false (none did, if the first assertion failed).
  if (results.includes(false)) await withTimeout(drained, 'the drain event')
})

/** Reads frames until a close frame (its code) or all 32 messages (null: no close frame came first). */
async function closeCodeOrAllMessages (raw: RawClient): Promise<number | null> {
  let messages = 0
  while (messages < COUNT) {
    const frame = await raw.readFrame()
    if (frame.opcode === Opcode.Close) return frame.payload.readUInt16BE(0)
    messages++
  }
  return null
}

test('maxBackpressure 1 MiB: the 1.5 MiB burst fails the connection with 1008, compressed or not', async (t) => {
  for (const compress of [false, true]) {
    const { raw } = await burst(t, compress, 1024 * KiB)
    t.equal(await closeCodeOrAllMessages(raw), 1008, compress ? 'compressed' : 'uncompressed')
  }
})
