/**
 * WebSockets over HTTP/2 (RFC 8441) on a Fastify `http2: true` server, with a
 * node:http2 client doing extended CONNECT: SETTINGS_ENABLE_CONNECT_PROTOCOL,
 * `:status 200`, echo at every payload length form, close codes both ways,
 * subprotocol, permessage-deflate, and the same route over HTTP/1.1 on a TLS
 * server with `allowHTTP1`.
 */
import tls from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import { WebSocket as UndiciWebSocket, Agent } from 'undici'
import fastifyRfc6455, { type FastifyRfc6455Options } from '../../lib/index.js'
import { closeApp, listen, withTimeout } from '../support/app.js'
import { closeBody, connectSession, H2WebSocket, http2App, OP, selfSignedCertificate, until } from '../support/http2-client.js'
import { clientFrame } from '../support/frames.js'
import { compressMessage, inflateMessage } from '../deflate/helpers.js'

/** Payload lengths at the edges of the 7-bit, 16-bit and 64-bit length forms (RFC 6455 §5.2), and just under 1 MiB. */
const SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024 - 1]

/** An h2c app with the plugin and an echo route at /echo; closed at teardown. */
async function echoApp (t: Test, options: FastifyRfc6455Options = {}, routes?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, port: number }> {
  const app = http2App()
  await app.register(fastifyRfc6455, options)
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString('utf8')))
  })
  routes?.(app)
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  return { app, port }
}

test('the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL and answers :status 200 with no Sec-WebSocket-Accept', async (t) => {
  let version = ''
  const { port } = await echoApp(t, {}, (app) => {
    app.get('/version', { ws: true }, (socket, request) => {
      version = request.raw.httpVersion
      socket.close(1000)
    })
  })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  t.equal(session.remoteSettings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3)')
  const ws = await H2WebSocket.open(session, '/version')
  t.equal(ws.status, 200, ':status 200 (RFC 8441 §5)')
  t.equal(ws.response['sec-websocket-accept'], undefined, 'no Sec-WebSocket-Accept')
  t.equal(ws.response.upgrade, undefined, 'no Upgrade')
  t.equal(await ws.closeCode(), 1000)
  t.equal(version, '2.0', "the handler tells the transport by request.raw.httpVersion")
  ws.send(OP.close, closeBody(1000))
  await withTimeout(ws.ended, 'END_STREAM after the close handshake')
  t.equal(await ws.closed, 0, 'the stream closed without RST_STREAM error')
  t.notOk(session.closed || session.destroyed, 'the HTTP/2 connection stays open')
})

test('echo over an HTTP/2 stream at every payload length form', async (t) => {
  const { port } = await echoApp(t)
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const ws = await H2WebSocket.open(session, '/echo')
  for (const size of SIZES) {
    const textBytes = Buffer.from('é'.repeat(size >> 1) + 'a'.repeat(size & 1))
    ws.send(OP.text, textBytes)
    const echoedText = await ws.nextFrame(`text of ${size} bytes`)
    t.equal(echoedText.opcode, OP.text, `text of ${size} bytes comes back as text`)
    t.ok(echoedText.fin && !echoedText.masked, 'FIN, unmasked')
    t.ok(echoedText.payload.equals(textBytes), `same ${size} bytes of text`)
    const bytes = Buffer.alloc(size)
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff
    ws.send(OP.binary, bytes)
    const echoed = await ws.nextFrame(`binary of ${size} bytes`)
    t.equal(echoed.opcode, OP.binary, `binary of ${size} bytes comes back as binary`)
    t.ok(echoed.payload.equals(bytes), `same ${size} bytes`)
  }
  ws.send(OP.ping, 'hb')
  const pong = await ws.nextFrame('pong')
  t.same([pong.opcode, pong.payload.toString()], [OP.pong, 'hb'], 'a ping is answered with a pong')
  ws.send(OP.close, closeBody(1000))
  t.equal(await ws.closeCode(), 1000)
  await withTimeout(ws.ended, 'END_STREAM')
})

test('close codes both ways', async (t) => {
  const closes: Array<[number, string]> = []
  const { port } = await echoApp(t, {}, (app) => {
    app.get('/closes', { ws: true }, (socket) => {
      socket.on('close', (code, reason) => closes.push([code, reason]))
      socket.on('message', (data) => socket.close(Number(data.toString()), 'server says bye'))
    })
  })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const nextClose = async (): Promise<[number, string] | undefined> => {
    await until(() => closes.length > 0, 'the close event')
    return closes.shift()
  }

  const client = await H2WebSocket.open(session, '/closes')
  client.send(OP.close, closeBody(4001, 'client says bye'))
  t.equal(await client.closeCode(), 4001, 'the server echoes the client close code')
  await withTimeout(client.ended, 'END_STREAM')
  await withTimeout(client.closed, 'stream close')
  t.same(await nextClose(), [4001, 'client says bye'], 'the handler saw the client code and reason')

  const server = await H2WebSocket.open(session, '/closes')
  server.send(OP.text, '3005')
  const frame = await server.nextFrame('the server close frame')
  t.equal(frame.opcode, OP.close)
  t.equal(frame.payload.readUInt16BE(0), 3005, 'the server sends its close code')
  t.equal(frame.payload.subarray(2).toString(), 'server says bye')
  server.send(OP.close, closeBody(3005))
  await withTimeout(server.ended, 'END_STREAM: the orderly end of the byte stream (RFC 8441 §5)')
  t.equal(await server.closed, 0, 'no RST_STREAM error')
  t.same(await nextClose(), [3005, ''], 'the handler saw the echo of its code')

  const ended = await H2WebSocket.open(session, '/closes')
  ended.end()
  await withTimeout(ended.closed, 'the stream closes after END_STREAM without a close frame')
  t.same(await nextClose(), [1006, ''], 'END_STREAM without a close frame is 1006, as a TCP FIN would be')
})

test('subprotocol and permessage-deflate are negotiated over HTTP/2', async (t) => {
  const { port } = await echoApp(t, { protocols: ['chat.v2', 'chat.v1'], perMessageDeflate: { threshold: 0 } })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const ws = await H2WebSocket.open(session, '/echo', { protocols: 'chat.v1, chat.v2', extensions: 'permessage-deflate; client_max_window_bits' })
  t.equal(ws.status, 200)
  t.equal(ws.response['sec-websocket-protocol'], 'chat.v1', 'the first offered subprotocol the server speaks')
  t.match(ws.response['sec-websocket-extensions'], /^permessage-deflate/, 'permessage-deflate accepted')
  const message = Buffer.from('hello hello hello hello over HTTP/2')
  const first = clientFrame(OP.text, compressMessage(message))
  first[0] |= 0x40
  ws.write(first)
  const frame = await ws.nextFrame('the compressed echo')
  t.ok(frame.rsv1, 'RSV1: the echo is compressed')
  t.equal(inflateMessage(frame.payload).toString(), message.toString(), 'it inflates to the message')
  ws.send(OP.close, closeBody(1000))
  t.equal(await ws.closeCode(), 1000)
})

const certificate = selfSignedCertificate()

test('one route over HTTP/2 and HTTP/1.1 on a TLS server with allowHTTP1', { skip: typeof certificate === 'string' && certificate }, async (t) => {
  if (typeof certificate === 'string') return
  const app = http2App({ allowHTTP1: true, ...certificate })
  await app.register(fastifyRfc6455)
  const versions: string[] = []
  app.get('/echo', { ws: true }, (socket, request) => {
    versions.push(request.raw.httpVersion)
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString('utf8')))
  })
  const port = await listen(app)
  t.teardown(() => closeApp(app))

  const session = await connectSession(port, { rejectUnauthorized: false })
  t.teardown(() => session.destroy())
  const ws = await H2WebSocket.open(session, '/echo', { headers: { ':scheme': 'https' } })
  t.equal(ws.status, 200, 'extended CONNECT over TLS (ALPN h2)')
  ws.send(OP.text, 'over h2')
  t.equal((await ws.nextFrame()).payload.toString(), 'over h2')

  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
  t.teardown(() => dispatcher.close())
  const http1 = new UndiciWebSocket(`wss://127.0.0.1:${port}/echo`, { dispatcher } as never)
  const echoed = await withTimeout(new Promise<string>((resolve, reject) => {
    http1.onopen = () => http1.send('over http/1.1')
    http1.onmessage = (event) => resolve(String(event.data))
    http1.onerror = () => reject(new Error('undici WebSocket failed'))
  }), 'the HTTP/1.1 echo')
  t.equal(echoed, 'over http/1.1', 'the HTTP/1.1 upgrade still works (ALPN http/1.1)')
  http1.close()
  t.same(versions, ['2.0', '1.1'], 'the handler saw each transport')

  // An HTTP/1.1 CONNECT asks for a proxy tunnel: with no 'connect' listener of the app's, Node's own answer (the socket closed) stays.
  const tunnel = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
  tunnel.on('error', () => {})
  tunnel.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
  const answer: Buffer[] = []
  tunnel.on('data', (chunk: Buffer) => answer.push(chunk))
  await withTimeout(new Promise((resolve) => tunnel.once('close', resolve)), 'the HTTP/1.1 CONNECT to be closed')
  t.equal(Buffer.concat(answer).length, 0, 'an HTTP/1.1 CONNECT is closed without an answer, as Node does')
  ws.send(OP.close, closeBody(1000))
  t.equal(await ws.closeCode(), 1000)
})
