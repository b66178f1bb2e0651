/**
 * The FrameParser configured for a client (`masked` false), as the injected
 * client uses it: server frames are unmasked, and "A client MUST close a
 * connection if it detects a masked frame" (RFC 6455 §5.1).
 */
import { test } from 'tap'
import { FrameParser, type FrameSink } from '../../lib/protocol/parser.js'

function collect (): FrameSink & { frames: Array<{ opcode: number, fin: boolean, payload: string }> } {
  const frames: Array<{ opcode: number, fin: boolean, payload: string }> = []
  let current: { opcode: number, fin: boolean, payload: string } | null = null
  return {
    frames,
    frameStart (fin, _rsv1, opcode) {
      current = { opcode, fin, payload: '' }
    },
    framePayload (data, frameEnd) {
      if (current === null) throw new Error('payload before a header')
      current.payload += data.toString('latin1')
      if (frameEnd) frames.push(current)
    }
  }
}

test('a client parser reads the unmasked "Hello" of RFC 6455 §5.7, one byte at a time too', async (t) => {
  const frame = Buffer.from('810548656c6c6f', 'hex')
  const whole = collect()
  new FrameParser(whole, false).push(frame)
  t.same(whole.frames, [{ opcode: 1, fin: true, payload: 'Hello' }])
  const bytewise = collect()
  const parser = new FrameParser(bytewise, false)
  for (const byte of frame) parser.push(Buffer.from([byte]))
  t.same(bytewise.frames, [{ opcode: 1, fin: true, payload: 'Hello' }])
  const long = collect()
  new FrameParser(long, false).push(Buffer.concat([Buffer.from('827e0100', 'hex'), Buffer.alloc(256, 0x61)]))
  t.same(long.frames, [{ opcode: 2, fin: true, payload: 'a'.repeat(256) }], '16-bit length form')
})

test('a client parser refuses the masked "Hello" of §5.7 with 1002; a server parser refuses the unmasked one', async (t) => {
  t.throws(() => new FrameParser(collect(), false).push(Buffer.from('818537fa213d7f9f4d5158', 'hex')),
    { code: 'WS_ERR_UNEXPECTED_MASK', closeCode: 1002 })
  t.throws(() => new FrameParser(collect()).push(Buffer.from('810548656c6c6f', 'hex')),
    { code: 'WS_ERR_EXPECTED_MASK', closeCode: 1002 })
  const server = collect()
  new FrameParser(server).push(Buffer.from('818537fa213d7f9f4d5158', 'hex'))
  t.same(server.frames, [{ opcode: 1, fin: true, payload: 'Hello' }], 'the server parser unmasks it')
})
