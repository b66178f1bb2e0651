/**
 * The examples of RFC 7692 §7.2.3, both ways, on the wire: a raw client sends
 * each example payload in a masked frame (whole, then one byte per TCP
 * segment) and the server echoes the inflated text uncompressed; and the
 * server's own compression of "Hello" is compared with the RFC's bytes.
 *
 * The examples are server-to-client frames (unmasked); a client sends the
 * same payload masked, with the MASK bit and a masking key in the header.
 */
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { bytes, clientFrame, echoRoute, hex, inflateMessage, start, TAIL, type Harness, type RawClient, type Teardown } from './helpers.js'

/** §7.2.3.1: "Hello" compressed in one DEFLATE block (BFINAL 0, fixed Huffman codes). */
const HELLO = bytes('f2 48 cd c9 c9 07 00')
/** §7.2.3.2: the second "Hello" on the same LZ77 window: one match of length 5, distance 5. */
const HELLO_AGAIN = bytes('f2 00 11 00 00')
/** §7.2.3.3: "Hello" in a DEFLATE block with no compression (BTYPE 00, LEN 5, NLEN ~5). */
const HELLO_STORED = bytes('00 05 00 fa ff 48 65 6c 6c 6f 00')
/** §7.2.3.4: "Hello" in a block with BFINAL set to 1, then 0x00 (header bits of an empty stored block). */
const HELLO_BFINAL = bytes('f3 48 cd c9 c9 07 00 00')
/** §7.2.3.5: "He" and "llo" in two DEFLATE blocks of one message (a sync flush between them). */
const HELLO_TWO_BLOCKS = bytes('f2 48 05 00 00 00 ff ff ca c9 c9 07 00')
/** §7.2.3.6: an empty message compressed: one stored block header, BFINAL 0, no LEN yet. */
const EMPTY = bytes('00')

/** The uncompressed text frame "Hello" the echo route sends back (RFC 6455 §5.7). */
const HELLO_FRAME = bytes('81 05 48 65 6c 6c 6f')

/** An echo app with permessage-deflate on; echoes go back uncompressed unless `?compress=always`. */
async function deflateEcho (t: Teardown): Promise<Harness> {
  return start(t, { perMessageDeflate: true }, (app) => echoRoute(app))
}

/** A raw client on the echo route (echoes uncompressed) that negotiated plain permessage-deflate. */
async function rawEcho (harness: Harness, mode = 'never'): Promise<RawClient> {
  return harness.rawWebSocket(`/echo?compress=${mode}`, 'permessage-deflate')
}

test('§7.2.3.1: the masked frame c1 87 + masking key + masked f2 48 cd c9 c9 07 00 is the text "Hello"', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  t.equal(raw.response?.headers['sec-websocket-extensions'], 'permessage-deflate')
  const frame = clientFrame(Opcode.Text, HELLO, { rsv1: true })
  t.equal(hex(frame.subarray(0, 6)), 'c1 87 37 fa 21 3d', 'FIN, RSV1, opcode 1; MASK and payload length 7; the masking key')
  raw.write(frame)
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'echoed as the uncompressed text frame "Hello"')
})

test('§7.2.3.1: the same frame written one byte per TCP segment', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  await raw.writeBytewise(clientFrame(Opcode.Text, HELLO, { rsv1: true }))
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME))
  // And the server's side of the connection still works afterwards.
  raw.sendFrame(Opcode.Text, HELLO_AGAIN, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'the next message inflates on the same window')
})

test('§7.2.3.1: the fragmented form, 41 03 f2 48 cd then 80 04 c9 c9 07 00 (RSV1 on the first frame only)', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  const first = clientFrame(Opcode.Text, HELLO.subarray(0, 3), { fin: false, rsv1: true })
  const second = clientFrame(Opcode.Continuation, HELLO.subarray(3))
  t.equal(first[0], 0x41, 'first frame: FIN clear, RSV1 set, opcode 1')
  t.equal(second[0], 0x80, 'continuation frame: FIN set, RSV1 clear, opcode 0')
  raw.write(first)
  raw.write(second)
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME))
  // Fragmented and fed one byte at a time.
  await raw.writeBytewise(Buffer.concat([
    clientFrame(Opcode.Text, HELLO_AGAIN.subarray(0, 2), { fin: false, rsv1: true }),
    clientFrame(Opcode.Continuation, HELLO_AGAIN.subarray(2, 3), { fin: false }),
    clientFrame(Opcode.Continuation, HELLO_AGAIN.subarray(3))
  ]))
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'three fragments of §7.2.3.2, byte by byte')
})

test('§7.2.3.1: the server compressing "Hello" first on a context sends exactly c1 07 f2 48 cd c9 c9 07 00', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness, 'always')
  raw.sendFrame(Opcode.Text, 'Hello')
  const frame = await raw.readFrame()
  t.equal(hex(frame.bytes), 'c1 07 ' + hex(HELLO))
  t.equal(inflateMessage(frame.payload).toString(), 'Hello', 'and a fresh zlib inflater reads it back')
})

test('§7.2.3.2: with context takeover the second "Hello" the server compresses is c1 05 f2 00 11 00 00', async (t) => {
  // zlib at the plugin's level 1 (deflate_fast) finds the same match of
  // length 5 at distance 5 as the RFC's example, and Z_SYNC_FLUSH emits
  // the same blocks: so the RFC's bytes are asserted, not just a round trip.
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness, 'always')
  raw.sendFrame(Opcode.Text, 'Hello')
  raw.sendFrame(Opcode.Text, 'Hello')
  t.equal(hex((await raw.readFrame()).bytes), 'c1 07 ' + hex(HELLO))
  t.equal(hex((await raw.readFrame()).bytes), 'c1 05 ' + hex(HELLO_AGAIN), 'the second message refers back into the first')
})

test('§7.2.3.2: a client sharing its LZ77 window across messages: f2 48 cd c9 c9 07 00 then f2 00 11 00 00', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  raw.write(Buffer.concat([
    clientFrame(Opcode.Text, HELLO, { rsv1: true }),
    clientFrame(Opcode.Text, HELLO_AGAIN, { rsv1: true })
  ]))
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME))
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'the match at distance 5 resolves into the previous message')
})

test('§7.2.3.2 negated: with server_no_context_takeover each "Hello" is compressed on an empty window', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await harness.rawWebSocket('/echo?compress=always', 'permessage-deflate; server_no_context_takeover')
  t.equal(raw.response?.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover')
  raw.sendFrame(Opcode.Text, 'Hello')
  raw.sendFrame(Opcode.Text, 'Hello')
  t.equal(hex((await raw.readFrame()).bytes), 'c1 07 ' + hex(HELLO))
  t.equal(hex((await raw.readFrame()).bytes), 'c1 07 ' + hex(HELLO), 'the same 7 bytes again: no reference to the first message')
})

test('a message with RSV1 clear is not inflated: "Hello" uncompressed on a deflate connection is echoed as is', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  raw.sendFrame(Opcode.Text, 'Hello')
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME))
  // Bytes that happen to be a DEFLATE stream stay bytes without RSV1.
  raw.sendFrame(Opcode.Binary, HELLO)
  t.equal(hex((await raw.readFrame()).bytes), '82 07 ' + hex(HELLO), 'a binary message with RSV1 clear is delivered byte for byte')
})

test('§7.2.3.3: "Hello" in a DEFLATE block with no compression (00 05 00 fa ff 48 65 6c 6c 6f 00)', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  raw.sendFrame(Opcode.Text, HELLO_STORED, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME))
  await raw.writeBytewise(clientFrame(Opcode.Text, HELLO_STORED, { rsv1: true }))
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'and one byte per segment')
})

test('§7.2.3.4: "Hello" in a block with BFINAL set (f3 48 cd c9 c9 07 00 00)', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  raw.sendFrame(Opcode.Text, HELLO_BFINAL, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME))
})

test('§7.2.3.4: after a message with BFINAL set, the next messages inflate too', async (t) => {
  // A block with BFINAL set ends the DEFLATE stream. §7.2.3.4 offers this
  // form to senders whose library cannot flush with an empty stored block,
  // so every message of such a sender ends so, and each must inflate.
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  raw.sendFrame(Opcode.Text, HELLO_BFINAL, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'a first BFINAL message')
  raw.sendFrame(Opcode.Text, HELLO_BFINAL, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'a second BFINAL message')
  raw.sendFrame(Opcode.Text, HELLO, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'then a §7.2.3.1 message')
  // The same three messages in one TCP write: the next message is parsed as soon as one is inflated.
  raw.write(Buffer.concat([
    clientFrame(Opcode.Text, HELLO_BFINAL, { rsv1: true }),
    clientFrame(Opcode.Text, HELLO_BFINAL, { rsv1: true }),
    clientFrame(Opcode.Text, HELLO, { rsv1: true })
  ]))
  for (let i = 1; i <= 3; i++) t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), `message ${i} of one write`)
})

test('§7.2.3.5: two DEFLATE blocks in one message (f2 48 05 00 00 00 ff ff ca c9 c9 07 00)', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness)
  raw.sendFrame(Opcode.Text, HELLO_TWO_BLOCKS, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME))
  await raw.writeBytewise(clientFrame(Opcode.Text, HELLO_TWO_BLOCKS, { rsv1: true }))
  t.equal(hex((await raw.readFrame()).bytes), hex(HELLO_FRAME), 'and one byte per segment')
})

test('§7.2.3.6: an empty message compressed is the single byte 00, both ways', async (t) => {
  const harness = await deflateEcho(t)
  const raw = await rawEcho(harness, 'always')
  raw.sendFrame(Opcode.Text, '')
  t.equal(hex((await raw.readFrame()).bytes), 'c1 01 00', 'the server compresses an empty text message to 00')
  raw.sendFrame(Opcode.Text, EMPTY, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), 'c1 01 00', 'the server inflates 00 to an empty message (and echoes it compressed)')
  raw.sendFrame(Opcode.Binary, EMPTY, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), 'c2 01 00', 'the same for a binary message')
  raw.sendFrame(Opcode.Text, 'Hello')
  const frame = await raw.readFrame()
  t.equal(frame.bytes[0], 0xc1)
  // Replays the server's compression context: three empty messages, each with its tail back, then this one.
  const stream = Buffer.concat([EMPTY, TAIL, EMPTY, TAIL, EMPTY, TAIL, frame.payload])
  t.equal(inflateMessage(stream).toString(), 'Hello', 'the context carries on after empty messages')
})
