/**
 * lib/protocol/message.ts (MessageReader): large pieces (16 KiB and more) are
 * kept as views and copied once at the end, small ones are copied as they
 * come; a binary message's pieces are unmasked while they are copied; every
 * mix of the two must give back the message byte for byte.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { clientFrame, feed, newSession, splitAt } from './helpers.js'

const KiB = 1024

test('one frame in big and small pieces, in every order, is delivered whole', async (t) => {
  const payload = randomBytes(64 * KiB)
  const frame = clientFrame(Opcode.Binary, payload)
  const header = frame.length - payload.length
  const plans: Array<[string, number[]]> = [
    ['big then small', [header + 64 * KiB - 14]],
    ['small then big', [header + 10]],
    ['big, small, big', [header + 20 * KiB, header + 20 * KiB + 100]],
    ['small, big, small', [header + 100, header + 64 * KiB - 100]],
    ['many small then big', [header + 1, header + 2, header + 3, header + 4 * KiB]]
  ]
  for (const [name, cuts] of plans) {
    const { session, io } = newSession()
    feed(session, splitAt(frame, cuts))
    t.equal(io.messages.length, 1, `${name}: one message`)
    t.ok(io.messages[0]?.data.equals(payload), `${name}: byte for byte`)
  }
})

test('a fragmented text message mixing big and small fragments is delivered whole and validated', async (t) => {
  const text = 'é'.repeat(20 * KiB)
  const bytes = Buffer.from(text)
  const stream = Buffer.concat([
    clientFrame(Opcode.Text, bytes.subarray(0, 17 * KiB), { fin: false }),
    clientFrame(Opcode.Continuation, bytes.subarray(17 * KiB, 17 * KiB + 1), { fin: false }),
    clientFrame(Opcode.Continuation, bytes.subarray(17 * KiB + 1))
  ])
  const { session, io } = newSession()
  feed(session, [stream])
  t.equal(io.messages.length, 1)
  t.equal(io.messages[0]?.data.toString(), text)
  t.equal(io.messages[0]?.isBinary, false)
})

test('a fragmented binary message, each frame with its own masking key, cut at odd offsets, is delivered whole', async (t) => {
  const payload = randomBytes(100 * KiB + 7)
  const sizes = [3, 20 * KiB + 1, 5, 17 * KiB + 2, 1, 63 * KiB - 2]
  const frames: Buffer[] = []
  let from = 0
  sizes.forEach((size, i) => {
    const last = i === sizes.length - 1
    const piece = last ? payload.subarray(from) : payload.subarray(from, from + size)
    frames.push(clientFrame(i === 0 ? Opcode.Binary : Opcode.Continuation, piece, { fin: last, mask: randomBytes(4) }))
    from += piece.length
  })
  const stream = Buffer.concat(frames)
  for (const chunkSize of [64 * KiB, 16 * KiB + 3, 4097, 1021]) {
    const cuts: number[] = []
    for (let at = chunkSize; at < stream.length; at += chunkSize) cuts.push(at)
    const { session, io } = newSession()
    feed(session, splitAt(stream, cuts))
    t.equal(io.messages.length, 1, `chunks of ${chunkSize} bytes: one message`)
    t.ok(io.messages[0]?.data.equals(payload), `chunks of ${chunkSize} bytes: byte for byte`)
    t.equal(io.messages[0]?.isBinary, true)
  }
})

test('a binary message in one frame over several chunks leaves no masked byte behind', async (t) => {
  const payload = Buffer.alloc(200 * KiB, 0x5a)
  const frame = clientFrame(Opcode.Binary, payload, { mask: Buffer.from([1, 2, 3, 4]) })
  const { session, io } = newSession()
  feed(session, splitAt(frame, [10, 64 * KiB, 64 * KiB + 9, 128 * KiB + 1]))
  t.ok(io.messages[0]?.data.equals(payload))
})
