import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455, { type WebSocket, type WebSocketHandler } from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { clientFrame, type RawClient, serverCloseFrame, start, withTimeout } from './helpers.js'

test('frames from a raw client over TCP: failures get the right close frame, then the server closes', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  /** What the server saw on each connection, by the client's port. */
  const seen = new Map<number, { socket: WebSocket, messages: string[], closed: Promise<[number, string]> }>()
  const echo: WebSocketHandler = (socket, request) => {
    const messages: string[] = []
    const closed = new Promise<[number, string]>((resolve) => socket.on('close', (code, reason) => resolve([code, reason])))
    seen.set(request.socket.remotePort ?? 0, { socket, messages, closed })
    socket.on('message', (data, isBinary) => {
      messages.push(data.toString())
      socket.send(isBinary ? data : data.toString())
    })
  }
  app.get('/echo', { ws: true }, echo)
  app.get('/small', { ws: { maxPayload: 10 } }, echo)
  const h = await start(t, app)
  const server = (raw: RawClient) => {
    const connection = seen.get(raw.localPort)
    if (connection === undefined) throw new Error('no server-side connection for this client')
    return { ...connection, closed: () => withTimeout(connection.closed, "the server's close event") }
  }

  /** Sends `bytes` after the handshake; expects exactly `closeFrame` back, then the server's FIN, then nothing. */
  async function expectFailure (t: import('tap').Test, path: string, bytes: Buffer, closeFrame: Buffer) {
    const raw = await h.rawWebSocket(path)
    raw.write(bytes)
    t.same((await raw.readFrame()).bytes, closeFrame, `close frame ${closeFrame.toString('hex')}`)
    await raw.waitForEnd()
    t.equal(raw.unread().length, 0, 'nothing after the close frame')
    raw.end()
    t.same(server(raw).messages, [], 'no message was delivered')
    t.same(await server(raw).closed(), [1006, ''], 'the client sent no close frame: 1006 on the server')
  }

  const failures: Array<{ name: string, path?: string, bytes: Buffer, code: number, reason: string }> = [
    {
      name: 'an unmasked frame: 1002',
      bytes: Buffer.concat(encodeFrame(Opcode.Text, Buffer.from('hi'))),
      code: 1002,
      reason: 'client frame is not masked'
    },
    {
      name: 'reserved opcode 0x3: 1002',
      bytes: clientFrame(0x3, 'x'),
      code: 1002,
      reason: 'reserved opcode 3'
    },
    {
      name: 'reserved control opcode 0xB: 1002',
      bytes: clientFrame(0xb),
      code: 1002,
      reason: 'reserved opcode 11'
    },
    {
      name: 'RSV1 set without an extension: 1002',
      bytes: clientFrame(Opcode.Text, 'hi', { rsv1: true }),
      code: 1002,
      reason: 'RSV1 set without a negotiated extension'
    },
    {
      name: 'invalid UTF-8 in a text frame (overlong 0xC0 0xAF): 1007',
      bytes: clientFrame(Opcode.Text, Uint8Array.of(0x68, 0x69, 0xc0, 0xaf)),
      code: 1007,
      reason: 'text message is not valid UTF-8'
    },
    {
      name: 'a message over maxPayload ({ ws: { maxPayload: 10 } }): 1009',
      path: '/small',
      bytes: clientFrame(Opcode.Binary, Buffer.alloc(11)),
      code: 1009,
      reason: 'message exceeds maxPayload of 10 bytes'
    }
  ]

  for (const failure of failures) {
    await t.test(failure.name, async (t) => {
      await expectFailure(t, failure.path ?? '/echo', failure.bytes, serverCloseFrame(failure.code, failure.reason))
    })
  }

  await t.test('maxPayload: 10 bytes pass, the limit is inclusive', async (t) => {
    const raw = await h.rawWebSocket('/small')
    raw.write(clientFrame(Opcode.Binary, Buffer.from('0123456789')))
    t.same((await raw.readFrame()).bytes, Buffer.from([0x82, 0x0a, ...Buffer.from('0123456789')]))
  })

  await t.test('ping: a pong with the same payload, and the connection stays open', async (t) => {
    const raw = await h.rawWebSocket('/echo')
    raw.write(clientFrame(Opcode.Ping, 'hello'))
    t.same((await raw.readFrame()).bytes, Buffer.from([0x8a, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]), 'pong "hello"')
    await raw.writeBytewise(clientFrame(Opcode.Ping, Uint8Array.of(1, 2, 3)))
    t.same((await raw.readFrame()).bytes, Buffer.from([0x8a, 0x03, 1, 2, 3]), 'pong to a ping sent one byte at a time')
    raw.write(clientFrame(Opcode.Text, 'ok'))
    t.same((await raw.readFrame()).bytes, Buffer.from([0x81, 0x02, 0x6f, 0x6b]))
  })

  await t.test('close handshake: the server echoes 1000 and closes TCP first; data after the close is ignored', async (t) => {
    const raw = await h.rawWebSocket('/echo')
    raw.write(Buffer.concat([
      clientFrame(Opcode.Close, Uint8Array.of(0x03, 0xe8)),
      clientFrame(Opcode.Text, 'after close')
    ]))
    t.same((await raw.readFrame()).bytes, Buffer.from([0x88, 0x02, 0x03, 0xe8]), 'the echoed close frame')
    await raw.waitForEnd()
    t.equal(raw.unread().length, 0, 'nothing after it: the text frame was not echoed')
    t.equal(raw.socket.writableEnded, false, 'the server ended first: the client had not')
    raw.end()
    t.same(await server(raw).closed(), [1000, ''])
    t.same(server(raw).messages, [], 'the text frame after the close frame never reached the application')
  })

  await t.test('close handshake fed one byte at a time', async (t) => {
    const raw = await h.rawWebSocket('/echo')
    await raw.writeBytewise(clientFrame(Opcode.Close, Buffer.from([0x0f, 0xa0, ...Buffer.from('done')])))
    t.same((await raw.readFrame()).bytes, Buffer.from([0x88, 0x02, 0x0f, 0xa0]), 'echoes code 4000')
    await raw.waitForEnd()
    raw.end()
    t.same(await server(raw).closed(), [4000, 'done'])
  })

  await t.test('a client that ends TCP without a close frame: the server closes too and reports 1006', async (t) => {
    const raw = await h.rawWebSocket('/echo')
    raw.end()
    const [closed, ended] = await Promise.allSettled([server(raw).closed(), raw.waitForEnd()])
    t.same(closed, { status: 'fulfilled', value: [1006, ''] }, "the server's close event")
    t.same(ended, { status: 'fulfilled', value: undefined }, 'the server ended its side too')
    t.equal(app.websocketClients.has(server(raw).socket), false, 'the server dropped the socket from websocketClients')
  })
})
