/**
 * What one HTTP/2 connection may hold: at most `maxHttp2WebSockets`
 * WebSockets, the streams over it reset with REFUSED_STREAM (RFC 9113
 * §5.1.2); a finite SETTINGS_MAX_CONCURRENT_STREAMS advertised when the app
 * set none; and the WebSockets of a connection that times out or goes away
 * (GOAWAY) closed with 1001 instead of held open forever.
 */
import http2, { type ClientHttp2Stream } from 'node:http2'
import Fastify, { type FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import fastifyRfc6455, { type FastifyRfc6455Options } from '../../lib/index.js'
import { listen } from '../support/app.js'
import { closeBody, connectSession, H2WebSocket, OP } from '../support/http2-client.js'
import { clientFrame } from '../support/frames.js'
import { until } from './helpers.js'

async function h2App (t: Test, plugin: FastifyRfc6455Options, http2Options: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify({ http2: true, ...http2Options }) as unknown as FastifyInstance
  await app.register(fastifyRfc6455, plugin)
  app.get('/echo', { ws: true }, (socket) => { socket.on('message', (data) => socket.send(data.toString())) })
  const port = await listen(app)
  t.teardown(() => app.close())
  return { app, port }
}

/** An extended CONNECT to /echo; resolves with the response status, or with the RST_STREAM code (negative) when reset. */
function connect (session: http2.ClientHttp2Session): Promise<{ status: number, rst: number, stream: ClientHttp2Stream }> {
  const stream = session.request({
    ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/echo', ':authority': '127.0.0.1', 'sec-websocket-version': '13'
  }, { endStream: false })
  stream.on('error', () => {})
  return new Promise((resolve) => {
    stream.once('response', (headers) => resolve({ status: Number(headers[':status']), rst: 0, stream }))
    stream.once('close', () => resolve({ status: 0, rst: stream.rstCode ?? 0, stream }))
  })
}

test('1,000 WebSocket streams on one HTTP/2 connection: at most the cap open, the rest refused, the server healthy', async (t) => {
  // The app's own settings allow 2000 concurrent streams: the cap is the plugin's.
  const { app, port } = await h2App(t, { maxHttp2WebSockets: 100 }, { http2SessionTimeout: 0, http: { settings: { maxConcurrentStreams: 2000 } } })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  t.equal(session.remoteSettings.maxConcurrentStreams, 2000, 'the app\'s own setting is kept')
  const results = await Promise.all(Array.from({ length: 1000 }, () => connect(session)))
  const opened = results.filter((r) => r.status === 200)
  const refused = results.filter((r) => r.status === 0)
  t.equal(opened.length, 100, 'the cap is open')
  t.equal(refused.length, 900, 'the rest are reset')
  t.ok(refused.every((r) => r.rst === http2.constants.NGHTTP2_REFUSED_STREAM), 'with REFUSED_STREAM (RFC 9113 §5.1.2)')
  t.equal(app.websocketClients.size, 100)

  // Closing one makes room for one more, on the same connection.
  // (A close frame, not an RST_STREAM: Node 20's client spins in submitRstStream after 900 refused streams.)
  opened[0].stream.end(clientFrame(OP.close, closeBody(1000)))
  await until(() => app.websocketClients.size === 99, 5000, 'one closed')
  const again = await H2WebSocket.open(session, '/echo')
  t.equal(again.status, 200, 'a slot freed is usable')
  again.send(OP.text, 'still here')
  t.equal((await again.nextFrame()).payload.toString(), 'still here', 'and echoes')
  const other = await connectSession(port)
  t.teardown(() => other.destroy())
  t.equal((await H2WebSocket.open(other, '/echo')).status, 200, 'another connection has its own cap')
})

test('a finite SETTINGS_MAX_CONCURRENT_STREAMS is advertised when the app set none', async (t) => {
  const { port } = await h2App(t, {})
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  await until(() => session.remoteSettings.maxConcurrentStreams !== 2 ** 32 - 1, 5000, 'the second SETTINGS')
  t.equal(session.remoteSettings.maxConcurrentStreams, 200, 'the default cap (100) plus 100 for requests')
})

test('idle WebSockets are closed with 1001 when their HTTP/2 connection times out', async (t) => {
  const { app, port } = await h2App(t, { heartbeatInterval: 0 }, { http2SessionTimeout: 300 })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const sockets = await Promise.all(Array.from({ length: 50 }, () => H2WebSocket.open(session, '/echo')))
  t.ok(sockets.every((ws) => ws.status === 200), '50 open')
  const codes = await Promise.all(sockets.map((ws) => ws.closeCode()))
  t.ok(codes.every((code) => code === 1001), 'each gets a close frame with 1001')
  for (const ws of sockets) ws.send(OP.close, closeBody(1001))
  await until(() => app.websocketClients.size === 0, 5000, 'all closed on the server')
})

test('WebSockets are closed with 1001 when the client sends GOAWAY', async (t) => {
  const { app, port } = await h2App(t, { heartbeatInterval: 0 })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const sockets = await Promise.all(Array.from({ length: 3 }, () => H2WebSocket.open(session, '/echo')))
  session.goaway(http2.constants.NGHTTP2_NO_ERROR)
  const codes = await Promise.all(sockets.map((ws) => ws.closeCode()))
  t.same(codes, [1001, 1001, 1001])
  for (const ws of sockets) ws.send(OP.close, closeBody(1001))
  await until(() => app.websocketClients.size === 0, 5000, 'all closed on the server')
})

test('maxHttp2WebSockets is an integer of at least 1', async (t) => {
  for (const value of [0, 1.5, '100', -1]) {
    const app = Fastify()
    const error = await app.register(fastifyRfc6455, { maxHttp2WebSockets: value as number }).then(() => null, (e: unknown) => e)
    t.match(error, { code: 'FST_WS_INVALID_OPTION', message: /maxHttp2WebSockets/ }, `${String(value)} is refused`)
  }
})
