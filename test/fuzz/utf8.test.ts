/**
 * Property suite for the streaming UTF-8 check (lib/protocol/utf8.ts) and for
 * text messages through a Session: same verdict as `buffer.isUtf8` however
 * the bytes are split, and failure at the first byte no valid text can
 * continue (§8.1 fail-fast), checked against a brute-force oracle.
 */
import { isUtf8 } from 'node:buffer'
import fc from 'fast-check'
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { Utf8Validator } from '../../lib/protocol/utf8.js'
import { applyPlan, checkProperty, chunkPlanArb, clientFrame, feed, newSession, splitAt, streamOf } from '../protocol/helpers.js'

/** Bytes around every boundary of Unicode Table 3-7, so that random bytes often almost form UTF-8. */
const INTERESTING = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xfe, 0xff]

/** Text-like byte strings: valid UTF-8, valid with a few bytes changed or cut, or built from boundary bytes. */
const textBytesArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 24 }).map((s) => Buffer.from(s, 'utf8')),
  fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }), fc.array(fc.tuple(fc.nat(), fc.constantFrom(...INTERESTING)), { minLength: 1, maxLength: 3 }))
    .map(([s, edits]) => {
      const b = Buffer.from(s, 'utf8')
      for (const [at, value] of edits) b[at % b.length] = value
      return b
    }),
  fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }), fc.nat())
    .map(([s, cut]) => {
      const b = Buffer.from(s, 'utf8')
      return b.subarray(0, cut % (b.length + 1))
    }),
  fc.array(fc.constantFrom(...INTERESTING), { maxLength: 16 }).map((a) => Buffer.from(a))
)

const cutsArb = fc.array(fc.nat(), { maxLength: 6 })

function pieces (data: Buffer, cuts: number[]): Buffer[] {
  return splitAt(data, [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b))
}

/** Representatives of every continuation byte range of Table 3-7 (80-8F, 90-9F, A0-BF). */
const CONTINUATIONS = [0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf]

/** Whether some continuation makes `prefix` valid UTF-8 (brute force: a cut sequence needs at most 3 more bytes). */
function isValidPrefix (prefix: Buffer): boolean {
  if (isUtf8(prefix)) return true
  let tails: number[][] = [[]]
  for (let n = 1; n <= 3; n++) {
    tails = tails.flatMap((tail) => CONTINUATIONS.map((c) => [...tail, c]))
    for (const tail of tails) if (isUtf8(Buffer.concat([prefix, Buffer.from(tail)]))) return true
  }
  return false
}

test('Utf8Validator agrees with buffer.isUtf8 for any split of the input', async (t) => {
  checkProperty(t, 'split-invariant verdict', fc.property(textBytesArb, cutsArb, (data, cuts) => {
    const validator = new Utf8Validator()
    let ok = true
    for (const piece of pieces(data, cuts)) {
      if (!validator.push(piece)) {
        ok = false
        break
      }
    }
    if (ok) ok = validator.end()
    if (ok !== isUtf8(data)) throw new Error(`validator says ${ok}, isUtf8 says ${!ok} for ${data.toString('hex')}`)
  }))
})

test('Utf8Validator fails at the first byte that no valid text can continue', async (t) => {
  checkProperty(t, 'fail-fast, byte by byte', fc.property(textBytesArb, (data) => {
    let expected = -1
    for (let k = 1; k <= data.length && expected < 0; k++) if (!isValidPrefix(data.subarray(0, k))) expected = k - 1
    const validator = new Utf8Validator()
    let failedAt = -1
    for (let i = 0; i < data.length && failedAt < 0; i++) if (!validator.push(data.subarray(i, i + 1))) failedAt = i
    if (failedAt !== expected) throw new Error(`push failed at byte ${failedAt}, the first bad byte is ${expected}: ${data.toString('hex')}`)
  }))
})

test('a text message through a Session: delivered if and only if it is UTF-8, else 1007, however fragmented and chunked', async (t) => {
  checkProperty(t, 'text message verdict', fc.property(textBytesArb, cutsArb, chunkPlanArb, (data, fragmentCuts, plan) => {
    const fragments = pieces(data, fragmentCuts)
    const stream = streamOf(fragments.map((fragment, i) =>
      clientFrame(i === 0 ? Opcode.Text : Opcode.Continuation, fragment, { fin: i === fragments.length - 1 })), fragments.map((f) => f.length))
    const { session, io } = newSession()
    feed(session, applyPlan(stream, plan))
    if (isUtf8(data)) {
      if (io.failures.length !== 0 || io.messages.length !== 1 || !io.messages[0].data.equals(data)) {
        throw new Error(`valid text ${data.toString('hex')} not delivered: ${io.failures.map((f) => f.code).join()}`)
      }
    } else if (io.messages.length !== 0 || io.failures.length !== 1 || io.failures[0].closeCode !== 1007) {
      throw new Error(`invalid text ${data.toString('hex')}: ${io.messages.length} delivered, failures ${io.failures.map((f) => f.closeCode).join()}`)
    }
  }))
})
