/**
 * Cross-site WebSocket hijacking through hooks (RFC 6455 §10.2): a page of
 * another site opens a handshake to a hooked route with the victim's
 * cookies. The origin is decided before Fastify routes the request, so the
 * route's hooks (its own and the app's) never run for a refused origin, over
 * HTTP/1.1, HTTP/2 and `injectWS` alike; an allowed one runs them as before.
 */
import type { FastifyInstance } from 'fastify'
import { test } from 'tap'
import fastifyRfc6455, { HandshakeRefusedError } from '../../lib/index.js'
import { listen } from '../support/app.js'
import { connectSession, H2WebSocket, http2App } from '../support/http2-client.js'
import { captureLogs, RawClient, startServer } from './helpers.js'

const EVIL = 'http://evil.example'

/** A `/account` route whose every hook records the cookie it saw: the side effects a CSRF wants. */
function hookedRoutes (ran: string[]) {
  return (app: FastifyInstance): void => {
    app.addHook('onRequest', async (request) => { ran.push(`app onRequest ${request.headers.cookie ?? ''}`) })
    app.get('/account', {
      ws: true,
      onRequest: async (request) => { ran.push(`onRequest ${request.headers.cookie ?? ''}`) },
      preValidation: async () => { ran.push('preValidation') },
      preHandler: async () => { ran.push('preHandler') }
    }, (socket) => socket.close(1000))
    app.get('/checked', {
      ws: { origin: async (origin) => origin === 'http://partner.example' },
      onRequest: async () => { ran.push('checked onRequest') }
    }, (socket) => socket.close(1000))
  }
}

test('HTTP/1.1: a cross-site handshake to a hooked route gets 403 and no hook runs', async (t) => {
  const ran: string[] = []
  const logs = captureLogs()
  const server = await startServer(t, { app: { logger: { level: 'info', stream: logs.stream } }, routes: hookedRoutes(ran) })
  const client = await RawClient.connect(server.port)
  client.write(`GET /account?access_token=secret HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: ${EVIL}\r\nCookie: session=victim\r\n\r\n`)
  await client.waitResponse()
  t.equal(client.status, 403)
  t.same(ran, [], 'neither the app\'s nor the route\'s hooks ran')
  const line = logs.lines.find((l) => l.msg === 'WebSocket handshake refused: Origin not allowed')
  t.ok(line, 'the refusal is logged')
  t.equal(line?.path, '/account', 'with the path, without the query string')
  t.notMatch(JSON.stringify(logs.lines.filter((l) => String(l.msg).startsWith('WebSocket'))), /access_token/, 'no query string in the plugin\'s lines')
  client.destroy()

  const async = await RawClient.connect(server.port)
  async.write(`GET /checked HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: ${EVIL}\r\n\r\n`)
  await async.waitResponse()
  t.equal(async.status, 403, 'an async check refuses before routing too')
  t.same(ran, [], 'no hook ran')
  async.destroy()

  const same = await RawClient.open(server.port, '/account', ['Origin: http://127.0.0.1', 'Cookie: session=mine'])
  t.same(ran, ['app onRequest session=mine', 'onRequest session=mine', 'preValidation', 'preHandler'], 'a same-site handshake runs them all, in order')
  same.destroy()
})

test('HTTP/2: a cross-site extended CONNECT gets 403 and no hook runs', async (t) => {
  const ran: string[] = []
  const app = http2App()
  await app.register(fastifyRfc6455)
  hookedRoutes(ran)(app)
  const port = await listen(app)
  t.teardown(() => app.close())
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const refused = await H2WebSocket.open(session, '/account', { headers: { origin: EVIL, cookie: 'session=victim' } })
  t.equal(refused.status, 403)
  t.match(await refused.reason(), /Origin not allowed/)
  t.same(ran, [], 'no hook ran')
  const allowed = await H2WebSocket.open(session, '/account', { headers: { origin: 'http://127.0.0.1' } })
  t.equal(allowed.status, 200, 'the same host is allowed')
  t.equal(ran.length, 4, 'and runs the hooks')
})

test('injectWS: a cross-site handshake gets 403 and no hook runs', async (t) => {
  const ran: string[] = []
  const server = await startServer(t, { routes: hookedRoutes(ran) })
  const error = await server.app.injectWS('/account', { headers: { origin: EVIL, cookie: 'session=victim' } }).then(() => null, (e: unknown) => e)
  t.type(error, HandshakeRefusedError)
  t.equal((error as HandshakeRefusedError).statusCode, 403)
  t.same(ran, [], 'no hook ran')
})

test('an origin check that throws: 500, logged, no hook runs', async (t) => {
  const ran: string[] = []
  const logs = captureLogs()
  const server = await startServer(t, {
    app: { logger: { level: 'info', stream: logs.stream } },
    routes: (app) => app.get('/broken', {
      ws: { origin: () => { throw new Error('check failed') } },
      onRequest: async () => { ran.push('onRequest') }
    }, (socket) => socket.close(1000))
  })
  const client = await RawClient.connect(server.port)
  client.write(`GET /broken HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: ${EVIL}\r\n\r\n`)
  await client.waitResponse()
  t.equal(client.status, 500)
  t.same(ran, [])
  t.ok(logs.lines.some((l) => l.level === 50 && l.msg === 'WebSocket handshake refused: the origin check failed'), 'logged at error level')
  client.destroy()
})
