/**
 * lib/protocol/utf8.ts (Utf8Validator): agrees with `buffer.isUtf8` on whole
 * inputs and on every split, and fails at the first byte that cannot start or
 * continue a well-formed sequence (Unicode Table 3-7, RFC 3629 §4).
 */
import { isUtf8 } from 'node:buffer'
import { test } from 'tap'
import { Utf8Validator } from '../../lib/protocol/utf8.js'

/** [name, bytes, index of the byte at which a byte-at-a-time push must return false (-1: never, only end() may)] */
type Case = [string, number[], number]

const hex = (s: string): number[] => [...Buffer.from(s, 'utf8')]

const VALID: Case[] = [
  ['empty', [], -1],
  ['ASCII', hex('Hello, world'), -1],
  ['2-byte é', [0xc3, 0xa9], -1],
  ['3-byte €', [0xe2, 0x82, 0xac], -1],
  ['4-byte emoji 😀', [0xf0, 0x9f, 0x98, 0x80], -1],
  ['U+0080, smallest 2-byte', [0xc2, 0x80], -1],
  ['U+07FF', [0xdf, 0xbf], -1],
  ['U+0800, smallest 3-byte', [0xe0, 0xa0, 0x80], -1],
  ['U+D7FF, below the surrogates', [0xed, 0x9f, 0xbf], -1],
  ['U+E000, above the surrogates', [0xee, 0x80, 0x80], -1],
  ['U+FFFF', [0xef, 0xbf, 0xbf], -1],
  ['U+10000, smallest 4-byte', [0xf0, 0x90, 0x80, 0x80], -1],
  ['U+10FFFF, largest', [0xf4, 0x8f, 0xbf, 0xbf], -1],
  ['mixed text', hex('κόσμε Hello € 😀 日本語 \u0000 end'), -1],
  ['emoji run', hex('😀😁😂🤣'), -1]
]

const INVALID: Case[] = [
  ['overlong C0 80', [0xc0, 0x80], 0],
  ['overlong C1 BF', [0xc1, 0xbf], 0],
  ['overlong E0 80 80', [0xe0, 0x80, 0x80], 1],
  ['overlong E0 9F BF', [0xe0, 0x9f, 0xbf], 1],
  ['overlong F0 80 80 80', [0xf0, 0x80, 0x80, 0x80], 1],
  ['overlong F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf], 1],
  ['surrogate ED A0 80 (U+D800)', [0xed, 0xa0, 0x80], 1],
  ['surrogate ED BF BF (U+DFFF)', [0xed, 0xbf, 0xbf], 1],
  ['over U+10FFFF: F4 90 80 80', [0xf4, 0x90, 0x80, 0x80], 1],
  ['lead F5', [0xf5, 0x80, 0x80, 0x80], 0],
  ['byte FE', [0xfe], 0],
  ['byte FF', [0xff], 0],
  ['lone continuation 80', [0x80], 0],
  ['lone continuation BF after ASCII', [0x61, 0xbf], 1],
  ['extra continuation after é', [0xc3, 0xa9, 0xa9], 2],
  ['truncated 2-byte C3', [0xc3], -1],
  ['truncated 3-byte E2 82', [0xe2, 0x82], -1],
  ['truncated 4-byte F0 9F 98', [0xf0, 0x9f, 0x98], -1],
  ['text then truncated F0 9F', [...hex('abc'), 0xf0, 0x9f], -1],
  ['truncated E2 82 then ASCII', [0xe2, 0x82, 0x41], 2],
  ['truncated F0 9F 98 then ASCII', [0xf0, 0x9f, 0x98, 0x41], 3],
  ['truncated C3 then a new lead', [0xc3, 0xc3, 0xa9], 1],
  ['valid text then a surrogate', [...hex('Hello € '), 0xed, 0xa0, 0x80, ...hex(' world')], 11],
  ['emoji then over U+10FFFF', [...hex('😀'), 0xf4, 0x90, 0x80, 0x80], 5]
]

/** Pushes each part in turn, then end(); false as soon as one returns false. */
function validate (parts: Uint8Array[]): boolean {
  const validator = new Utf8Validator()
  for (const part of parts) if (!validator.push(part)) return false
  return validator.end()
}

test('the case table agrees with buffer.isUtf8', async (t) => {
  for (const [name, data] of VALID) t.ok(isUtf8(Buffer.from(data)), `valid: ${name}`)
  for (const [name, data] of INVALID) t.notOk(isUtf8(Buffer.from(data)), `invalid: ${name}`)
})

test('whole inputs: push then end() agrees with buffer.isUtf8', async (t) => {
  for (const [name, data] of [...VALID, ...INVALID]) {
    const buffer = Buffer.from(data)
    t.equal(validate([buffer]), isUtf8(buffer), name)
  }
})

test('every split point: push both parts then end() agrees with buffer.isUtf8', async (t) => {
  for (const [name, data] of [...VALID, ...INVALID]) {
    const buffer = Buffer.from(data)
    const expected = isUtf8(buffer)
    const wrong: number[] = []
    for (let cut = 0; cut <= buffer.length; cut++) {
      if (validate([buffer.subarray(0, cut), buffer.subarray(cut)]) !== expected) wrong.push(cut)
    }
    t.same(wrong, [], `${name}: no split point disagrees`)
  }
})

test('every pair of split points (three parts) agrees with buffer.isUtf8', async (t) => {
  for (const [name, data] of [...VALID, ...INVALID]) {
    const buffer = Buffer.from(data)
    const expected = isUtf8(buffer)
    const wrong: string[] = []
    for (let a = 0; a <= buffer.length; a++) {
      for (let b = a; b <= buffer.length; b++) {
        if (validate([buffer.subarray(0, a), buffer.subarray(a, b), buffer.subarray(b)]) !== expected) wrong.push(`${a},${b}`)
      }
    }
    t.same(wrong, [], `${name}: no pair of split points disagrees`)
  }
})

test('one byte at a time: push fails at the first byte that cannot be part of valid UTF-8', async (t) => {
  for (const [name, data, failsAt] of [...VALID, ...INVALID]) {
    const validator = new Utf8Validator()
    let failedAt = -1
    for (let i = 0; i < data.length; i++) {
      if (!validator.push(Buffer.from([data[i]]))) {
        failedAt = i
        break
      }
    }
    t.equal(failedAt, failsAt, `${name}: push fails at byte ${failsAt}`)
    if (failsAt < 0) t.equal(validator.end(), isUtf8(Buffer.from(data)), `${name}: end() decides`)
  }
})

test('a piece ending in an invalid prefix fails at once, before the rest of the sequence', async (t) => {
  for (const prefix of [[0xf4, 0x90], [0xed, 0xa0], [0xe0, 0x80], [0xc0], [0xf0, 0x8f], [0xc1]]) {
    const validator = new Utf8Validator()
    t.equal(validator.push(Buffer.from([0x61, 0x62, ...prefix])), false, Buffer.from(prefix).toString('hex'))
  }
})

test('pieces may be views into a larger buffer (byteOffset not 0)', async (t) => {
  const backing = Buffer.from([0xff, ...hex('a€b'), 0xff])
  const validator = new Utf8Validator()
  t.ok(validator.push(backing.subarray(1, 3)), 'a + E2')
  t.ok(validator.push(backing.subarray(3, 6)), '82 AC + b')
  t.ok(validator.end())
})

test('end() resets the validator for the next message', async (t) => {
  const validator = new Utf8Validator()
  t.ok(validator.push(Buffer.from([0xe2, 0x82])))
  t.notOk(validator.end(), 'the message ended inside a sequence')
  t.ok(validator.push(Buffer.from('plain')), 'a new message starts clean')
  t.ok(validator.end())
  t.ok(validator.push(Buffer.from([0x82])) === false, 'and a continuation byte cannot start it')
})
