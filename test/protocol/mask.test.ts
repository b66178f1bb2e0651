/**
 * lib/protocol/frame.ts masking (RFC 6455 §5.3) on its long paths: Node's
 * own routine from 128 bytes where Node has one (Node 26 and later);
 * elsewhere the word loop from 64 bytes and the WASM SIMD routine from 768
 * bytes (in 64 KiB blocks); each checked against a byte-by-byte XOR around every threshold, at
 * every byte offset and every position in the key; in place (`applyMask`)
 * and into another buffer (`unmaskInto`).
 */
import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import { applyMask, unmaskInto } from '../../lib/protocol/frame.js'
import { naiveMask } from './helpers.js'

const LENGTHS = [63, 64, 65, 127, 128, 129, 767, 768, 769, 771, 783, 4096, 4111, 65535, 65536, 65537, 65536 * 2 + 13]

test('long payloads unmask like a byte-by-byte XOR', async (t) => {
  const mask = Buffer.from([0x9a, 0xbc, 0xde, 0xf1])
  for (const length of LENGTHS) {
    for (let byteOffset = 0; byteOffset < 4; byteOffset++) {
      for (let maskOffset = 0; maskOffset < 4; maskOffset++) {
        const data = randomBytes(length + 4).subarray(byteOffset, byteOffset + length)
        const expected = naiveMask(data, mask, maskOffset)
        applyMask(data, mask, maskOffset)
        if (!data.equals(expected)) t.fail(`length ${length}, byte offset ${byteOffset}, mask offset ${maskOffset}`)
      }
    }
    t.pass(`length ${length}`)
  }
})

test('unmasking twice restores a long payload', async (t) => {
  const original = randomBytes(70000)
  const data = Buffer.from(original)
  const mask = randomBytes(4)
  applyMask(data, mask, 3)
  t.notOk(data.equals(original))
  applyMask(data, mask, 3)
  t.ok(data.equals(original))
})

test('unmaskInto writes the XOR into another buffer at any offset and leaves the source as it was', async (t) => {
  const mask = Buffer.from([0x9a, 0xbc, 0xde, 0xf1])
  const key = mask.readUInt32BE(0)
  for (const length of [0, 1, 5, ...LENGTHS]) {
    for (let targetOffset = 0; targetOffset < 4; targetOffset++) {
      for (let maskOffset = 0; maskOffset < 4; maskOffset++) {
        const source = randomBytes(length + 3).subarray(targetOffset, targetOffset + length)
        const before = Buffer.from(source)
        const target = Buffer.alloc(length + 8, 0xee)
        unmaskInto(source, target, targetOffset + 1, key, maskOffset)
        const wrong = !target.subarray(targetOffset + 1, targetOffset + 1 + length).equals(naiveMask(before, mask, maskOffset)) ||
          target[targetOffset] !== 0xee || target[targetOffset + 1 + length] !== 0xee || !source.equals(before)
        if (wrong) t.fail(`length ${length}, target offset ${targetOffset + 1}, mask offset ${maskOffset}`)
      }
    }
    t.pass(`length ${length}`)
  }
})
