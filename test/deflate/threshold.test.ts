/**
 * When the server compresses (RFC 7692 §6: RSV1 on the first frame of a
 * compressed message): messages shorter than `threshold` bytes (default 1024)
 * go uncompressed, longer ones compressed, and `send(data, { compress })`
 * decides either way. Read off the wire by a raw client that negotiated
 * permessage-deflate.
 */
import { test } from 'tap'
import type { FastifyRfc6455Options } from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { ContextInflater, hex, inflateMessage, pseudoRandomBytes, pseudoRandomText, start, type RawClient, type RawFrame, type Teardown } from './helpers.js'

/**
 * A route that sends what the client asks for: a text command
 * "<text|binary> <size> <default|true|false>" gets a message of `size`
 * bytes, sent with { compress } when not "default"; "end" gets the text "end".
 */
async function sender (t: Teardown, options: FastifyRfc6455Options = { perMessageDeflate: true }): Promise<RawClient> {
  const harness = await start(t, options, (app) => {
    app.get('/send', { ws: true }, (socket) => {
      socket.on('message', (data) => {
        const [kind, size, compress] = data.toString().split(' ')
        if (kind === 'end') {
          socket.send('end', { compress: false })
          return
        }
        const payload = kind === 'text' ? pseudoRandomText(Number(size)) : pseudoRandomBytes(Number(size))
        socket.send(payload, compress === 'default' ? undefined : { compress: compress === 'true' })
      })
    })
  })
  return harness.rawWebSocket('/send', 'permessage-deflate')
}

/** Asks for one message and reads the frames up to the "end" marker that follows it. */
async function request (raw: RawClient, command: string): Promise<RawFrame[]> {
  raw.sendFrame(Opcode.Text, command)
  raw.sendFrame(Opcode.Text, 'end')
  const frames: RawFrame[] = []
  for (;;) {
    const frame = await raw.readFrame()
    if (hex(frame.bytes) === '81 03 65 6e 64') return frames
    frames.push(frame)
  }
}

test('default threshold 1024: 100 and 1023 bytes go uncompressed, 1024 and 2000 compressed', async (t) => {
  const raw = await sender(t)
  for (const size of [0, 100, 1023]) {
    const frames = await request(raw, `text ${size} default`)
    t.equal(frames.length, 1)
    const header = size < 126 ? `81 ${size.toString(16).padStart(2, '0')}` : `81 7e ${size.toString(16).padStart(4, '0').replace(/(..)(..)/, '$1 $2')}`
    t.equal(hex(frames[0].bytes.subarray(0, size < 126 ? 2 : 4)), header, `${size} bytes: FIN, RSV1 clear, opcode 1, length ${size}`)
    t.equal(frames[0].payload.toString(), pseudoRandomText(size), 'the text as is')
  }
  // The second compressed message may refer back into the first (context takeover).
  const inflater = new ContextInflater()
  for (const size of [1024, 2000]) {
    const frames = await request(raw, `text ${size} default`)
    t.equal(frames.length, 1, `${size} bytes: one frame`)
    const [frame] = frames
    t.equal(frame.bytes[0], 0xc1, 'FIN, RSV1 set, opcode 1')
    t.ok(frame.payload.length < size, `compressed: ${frame.payload.length} bytes on the wire`)
    t.equal(inflater.inflate(frame.payload).toString(), pseudoRandomText(size), 'inflates to the text')
  }
})

test('a compressed binary message: RSV1 on its only frame, opcode 2', async (t) => {
  const raw = await sender(t)
  const [frame, ...rest] = await request(raw, 'binary 5000 default')
  t.equal(rest.length, 0)
  t.equal(frame.bytes[0], 0xc2)
  t.ok(frame.rsv1 && frame.fin && !frame.rsv2 && !frame.rsv3)
  t.same(inflateMessage(frame.payload), pseudoRandomBytes(5000))
})

test('send(data, { compress }) overrides the threshold both ways', async (t) => {
  const raw = await sender(t)
  const [plain] = await request(raw, 'text 2000 false')
  t.equal(hex(plain.bytes.subarray(0, 4)), '81 7e 07 d0', '{ compress: false }: 2000 bytes uncompressed')
  t.equal(plain.payload.toString(), pseudoRandomText(2000))
  const inflater = new ContextInflater()
  const [small] = await request(raw, 'text 100 true')
  t.equal(small.bytes[0], 0xc1, '{ compress: true }: 100 bytes compressed')
  t.equal(inflater.inflate(small.payload).toString(), pseudoRandomText(100))
  const [binary] = await request(raw, 'binary 3 true')
  t.equal(binary.bytes[0], 0xc2, 'even 3 bytes, which grow when compressed')
  t.same(inflater.inflate(binary.payload), pseudoRandomBytes(3))
})

test('the threshold option: 10 bytes, and 0 (everything compressed, empty messages too)', async (t) => {
  const ten = await sender(t, { perMessageDeflate: { threshold: 10 } })
  t.equal((await request(ten, 'text 9 default'))[0].bytes[0], 0x81, '9 bytes: RSV1 clear')
  t.equal((await request(ten, 'text 10 default'))[0].bytes[0], 0xc1, '10 bytes: RSV1 set')
  const zero = await sender(t, { perMessageDeflate: { threshold: 0 } })
  t.equal(hex((await request(zero, 'text 0 default'))[0].bytes), 'c1 01 00', 'an empty message: 00 (RFC 7692 §7.2.3.6)')
  t.equal((await request(zero, 'binary 1 default'))[0].bytes[0], 0xc2)
})

test('compressed and uncompressed messages and pings leave in the order they were sent', async (t) => {
  const harness = await start(t, { perMessageDeflate: true }, (app) => {
    app.get('/burst', { ws: true }, (socket) => {
      socket.on('message', () => {
        socket.send(pseudoRandomText(3000))
        socket.send('small one')
        socket.ping('p1')
        socket.send(pseudoRandomBytes(4000, 1), { compress: true })
        socket.send(pseudoRandomBytes(50, 2))
        socket.pong('p2')
        socket.send(pseudoRandomText(2000, 3))
        socket.close(1000, 'done')
      })
    })
  })
  const raw = await harness.rawWebSocket('/burst', 'permessage-deflate')
  raw.sendFrame(Opcode.Text, 'go')
  const frames: RawFrame[] = []
  for (let i = 0; i < 8; i++) frames.push(await raw.readFrame())
  t.same(frames.map((frame) => frame.bytes[0].toString(16)), ['c1', '81', '89', 'c2', '82', '8a', 'c1', '88'], 'first bytes in send order')
  const inflater = new ContextInflater()
  t.equal(inflater.inflate(frames[0].payload).toString(), pseudoRandomText(3000))
  t.equal(frames[1].payload.toString(), 'small one')
  t.equal(frames[2].payload.toString(), 'p1')
  t.same(inflater.inflate(frames[3].payload), pseudoRandomBytes(4000, 1))
  t.same(frames[4].payload, pseudoRandomBytes(50, 2))
  t.equal(frames[5].payload.toString(), 'p2')
  t.equal(inflater.inflate(frames[6].payload).toString(), pseudoRandomText(2000, 3), 'on the window of the two before')
  t.equal(hex(frames[7].bytes), '88 06 03 e8 64 6f 6e 65', 'the close frame comes last')
})
