/**
 * The RSV1 bit and the failures of a compressed message (RFC 7692 §6, §6.2;
 * RFC 6455 §5.2, §7.4.1): RSV1 marks the first frame of a compressed
 * data message and nothing else; data that does not inflate fails the
 * connection with 1007. Raw client, exact close codes.
 */
import { test } from 'tap'
import type { ProtocolError } from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { bytes, clientFrame, compressMessage, hex, start, type Harness, type Teardown } from './helpers.js'

const HELLO = bytes('f2 48 cd c9 c9 07 00')

/** An echo app with permessage-deflate on; the server's `error` events are collected. */
async function app (t: Teardown, errors: ProtocolError[]): Promise<Harness> {
  return start(t, { perMessageDeflate: true }, (instance) => {
    instance.get('/echo', { ws: true }, (socket) => {
      socket.on('error', (error) => errors.push(error))
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString(), { compress: false }))
    })
  })
}

test('RFC 7692 §6: RSV1 on a control frame fails the connection with 1002', async (t) => {
  const errors: ProtocolError[] = []
  const harness = await app(t, errors)
  for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
    const raw = await harness.rawWebSocket('/echo', 'permessage-deflate')
    const payload = opcode === Opcode.Close ? bytes('03 e8') : Buffer.from('x')
    raw.sendFrame(opcode, payload, { rsv1: true })
    t.equal(await raw.readCloseCode(), 1002, `opcode ${opcode} with RSV1`)
  }
  t.same(errors.map((error) => [error.code, error.closeCode]), Array(3).fill(['WS_ERR_UNEXPECTED_RSV_1', 1002]))
})

test('RFC 7692 §6: RSV1 on a continuation frame fails the connection with 1002', async (t) => {
  const errors: ProtocolError[] = []
  const harness = await app(t, errors)
  const compressed = await harness.rawWebSocket('/echo', 'permessage-deflate')
  compressed.write(Buffer.concat([
    clientFrame(Opcode.Text, HELLO.subarray(0, 3), { fin: false, rsv1: true }),
    clientFrame(Opcode.Continuation, HELLO.subarray(3), { rsv1: true })
  ]))
  t.equal(await compressed.readCloseCode(), 1002, 'in a compressed message')
  const plain = await harness.rawWebSocket('/echo', 'permessage-deflate')
  plain.write(Buffer.concat([
    clientFrame(Opcode.Text, 'He', { fin: false }),
    clientFrame(Opcode.Continuation, 'llo', { rsv1: true })
  ]))
  t.equal(await plain.readCloseCode(), 1002, 'in an uncompressed message')
  t.same(errors.map((error) => error.code), ['WS_ERR_UNEXPECTED_RSV_1', 'WS_ERR_UNEXPECTED_RSV_1'])
})

test('RFC 6455 §5.2: RSV1 when permessage-deflate was not negotiated fails the connection with 1002', async (t) => {
  const errors: ProtocolError[] = []
  const harness = await app(t, errors)
  const raw = await harness.rawWebSocket('/echo')
  t.equal(raw.response?.headers['sec-websocket-extensions'], undefined, 'the client offered nothing')
  raw.sendFrame(Opcode.Text, HELLO, { rsv1: true })
  t.equal(await raw.readCloseCode(), 1002)
  t.same(errors.map((error) => error.code), ['WS_ERR_UNEXPECTED_RSV_1'])
})

test('RSV2 and RSV3 stay reserved with permessage-deflate: 1002', async (t) => {
  const harness = await app(t, [])
  for (const bit of [0x20, 0x10]) {
    const raw = await harness.rawWebSocket('/echo', 'permessage-deflate')
    const frame = clientFrame(Opcode.Text, HELLO, { rsv1: true })
    frame[0] |= bit
    raw.write(frame)
    t.equal(await raw.readCloseCode(), 1002, `first byte ${frame[0].toString(16)}`)
  }
})

test('RFC 6455 §7.4.1: a compressed message whose data does not inflate fails with 1007', async (t) => {
  const errors: ProtocolError[] = []
  const harness = await app(t, errors)
  const cases: Array<[string, Buffer]> = [
    ['a block with the reserved BTYPE 11', bytes('ff ff ff')],
    ['a stored block whose NLEN is not the complement of LEN', bytes('00 05 00 00 00 48 65 6c 6c 6f 00')],
    ['a distance past the start of the window', bytes('f2 00 11 00 00')]
  ]
  for (const [label, payload] of cases) {
    const raw = await harness.rawWebSocket('/echo', 'permessage-deflate')
    raw.sendFrame(Opcode.Binary, payload, { rsv1: true })
    t.equal(await raw.readCloseCode(), 1007, label)
  }
  t.same(errors.map((error) => [error.code, error.closeCode]), Array(3).fill(['WS_ERR_INVALID_COMPRESSED_DATA', 1007]))
  // A connection that fails does not disturb the next one.
  const raw = await harness.rawWebSocket('/echo', 'permessage-deflate')
  raw.sendFrame(Opcode.Text, HELLO, { rsv1: true })
  t.equal(hex((await raw.readFrame()).bytes), '81 05 48 65 6c 6c 6f')
})

test('a compressed text message that inflates to invalid UTF-8 fails with 1007; as binary it is delivered', async (t) => {
  const errors: ProtocolError[] = []
  const harness = await app(t, errors)
  const invalid = Buffer.from([0x48, 0x69, 0xc3, 0x28])
  const binary = await harness.rawWebSocket('/echo', 'permessage-deflate')
  binary.sendFrame(Opcode.Binary, compressMessage(invalid), { rsv1: true })
  t.equal(hex((await binary.readFrame()).bytes), '82 04 ' + hex(invalid), 'binary: any bytes')
  const text = await harness.rawWebSocket('/echo', 'permessage-deflate')
  text.sendFrame(Opcode.Text, compressMessage(invalid), { rsv1: true })
  t.equal(await text.readCloseCode(), 1007, 'text: the inflated bytes must be UTF-8 (RFC 6455 §8.1)')
  // A UTF-8 sequence cut between two frames of the compressed payload is not an error:
  // only the inflated message is checked.
  const euro = compressMessage(Buffer.from('€uro €uro', 'utf8'))
  const split = await harness.rawWebSocket('/echo', 'permessage-deflate')
  split.write(Buffer.concat([
    clientFrame(Opcode.Text, euro.subarray(0, 2), { fin: false, rsv1: true }),
    clientFrame(Opcode.Continuation, euro.subarray(2))
  ]))
  t.equal((await split.readFrame()).payload.toString('utf8'), '€uro €uro')
  t.same(errors.map((error) => error.code), ['WS_ERR_INVALID_UTF8'])
})

test('control frames between the fragments of a compressed message are answered at once', async (t) => {
  const harness = await app(t, [])
  const raw = await harness.rawWebSocket('/echo', 'permessage-deflate')
  raw.write(Buffer.concat([
    clientFrame(Opcode.Text, HELLO.subarray(0, 3), { fin: false, rsv1: true }),
    clientFrame(Opcode.Ping, 'p1'),
    clientFrame(Opcode.Continuation, HELLO.subarray(3, 5), { fin: false }),
    clientFrame(Opcode.Ping, 'p2'),
    clientFrame(Opcode.Continuation, HELLO.subarray(5))
  ]))
  t.equal(hex((await raw.readFrame()).bytes), '8a 02 70 31', 'pong p1 (RSV1 clear)')
  t.equal(hex((await raw.readFrame()).bytes), '8a 02 70 32', 'pong p2')
  t.equal(hex((await raw.readFrame()).bytes), '81 05 48 65 6c 6c 6f', 'then the message')
})
