/**
 * Autobahn section 4, Opcodes: the reserved non-control opcodes 3-7 (4.1.x)
 * and control opcodes 0xB-0xF (4.2.x). "If an unknown opcode is received,
 * the receiving endpoint MUST _Fail the WebSocket Connection_" (RFC 6455
 * §5.2): close 1002, then the server closes TCP. A valid message before the
 * bad frame is echoed first; the ping after it is not answered.
 */
import t from 'tap'
import { connect, echoServerFor, expectServerCloses, frame, OP, ping, text } from './client.js'

const server = await echoServerFor(t)

const hello = 'Hello, world!'

/** [case, opcode, payload of the bad frame, text message before it, how it is sent] */
const cases: Array<[string, number, string, boolean, 'one write' | 'octets']> = [
  ['4.1.1', 3, '', false, 'one write'],
  ['4.1.2', 4, 'reserved opcode payload', false, 'one write'],
  ['4.1.3', 5, '', true, 'one write'],
  ['4.1.4', 6, hello, true, 'one write'],
  ['4.1.5', 7, hello, true, 'octets'],
  ['4.2.1', 11, '', false, 'one write'],
  ['4.2.2', 12, 'reserved opcode payload', false, 'one write'],
  ['4.2.3', 13, '', true, 'one write'],
  ['4.2.4', 14, hello, true, 'one write'],
  ['4.2.5', 15, hello, true, 'octets']
]

for (const [name, opcode, payload, textBefore, how] of cases) {
  const description = (textBefore ? 'text, ' : '') + `frame with reserved opcode ${opcode}` +
    (payload === '' ? '' : ' and a payload') + (textBefore ? ', ping' : '') + (how === 'octets' ? ', one byte at a time' : '')
  t.test(`${name}: ${description}: ${textBefore ? 'echo, then ' : ''}1002`, async (t) => {
    const client = await connect(t, server)
    const bytes = Buffer.concat([...(textBefore ? [text(hello)] : []), frame(opcode, payload), ...(textBefore ? [ping()] : [])])
    if (how === 'octets') await client.sendOctets(bytes)
    else await client.send(bytes)
    await expectServerCloses(t, client, [...(textBefore ? [{ text: hello }] : []), { close: 1002 }])
  })
}

t.test('extra: a reserved opcode fails with 1002 on the first byte alone', async (t) => {
  for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    await t.test(`opcode ${opcode}`, async (t) => {
      const client = await connect(t, server)
      await client.send(frame(opcode, hello).subarray(0, 1))
      await expectServerCloses(t, client, [{ close: 1002 }])
    })
  }
})

t.test('extra: a reserved opcode inside a fragmented message fails with 1002', async (t) => {
  const client = await connect(t, server)
  await client.send(text('fragment1', { fin: false }), frame(5, hello), frame(OP.continuation, 'fragment2'))
  await expectServerCloses(t, client, [{ close: 1002 }])
})
