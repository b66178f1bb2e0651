/**
 * lib/protocol/message.ts (MessageReader): large pieces (16 KiB and more) are
 * kept as views and copied once at the end, small ones are copied as they
 * come; every mix of the two must give back the message byte for byte.
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
