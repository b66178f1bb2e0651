/**
 * Extended CONNECTs the plugin refuses, with the statuses of HTTP/1.1 and a
 * short reason, on their own stream: the HTTP/2 connection carries on. Hooks,
 * params, prefixes and the origin check apply as for an HTTP/1.1 upgrade.
 */
import type { IncomingHttpHeaders } from 'node:http2'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import fastifyRfc6455 from '../../lib/index.js'
import { closeApp, listen, withTimeout } from '../support/app.js'
import { closeBody, connectSession, H2WebSocket, http2App, OP } from '../support/http2-client.js'

async function start (t: Test, routes: (app: FastifyInstance) => void | Promise<void>): Promise<number> {
  const app = http2App()
  await app.register(fastifyRfc6455)
  await routes(app)
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  return port
}

test('refusals over HTTP/2: status, reason, and the connection carries on', async (t) => {
  const port = await start(t, (app) => {
    app.get('/echo', { ws: true }, (socket) => {
      socket.on('message', (data) => socket.send(data.toString()))
    })
    app.get('/http', async () => 'plain')
    app.get('/guarded', {
      ws: true,
      onRequest: async (request, reply) => {
        if (request.headers.authorization !== 'Bearer ok') return reply.code(401).send('no token')
      }
    }, (socket) => socket.close(1000))
    app.get('/validated', {
      ws: true,
      preValidation: async (_request, reply) => reply.code(401).send('preValidation says no')
    }, (socket) => socket.close(1000))
    app.get('/handled', {
      ws: true,
      preHandler: async (_request, reply) => reply.code(401).send('preHandler says no')
    }, (socket) => socket.close(1000))
  })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())

  const cases: Array<[string, string, Parameters<typeof H2WebSocket.open>[2], number, RegExp]> = [
    ['a path with no route', '/nowhere', {}, 404, /Not Found/],
    ['an HTTP route without ws', '/http', {}, 404, /Not Found/],
    ['an onRequest hook', '/guarded', {}, 401, /no token/],
    ['a preValidation hook', '/validated', {}, 401, /preValidation says no/],
    ['a preHandler hook', '/handled', {}, 401, /preHandler says no/],
    ['another :protocol', '/echo', { headers: { ':protocol': 'connect-udp' } }, 405, /:protocol websocket/],
    ['Sec-WebSocket-Version 8', '/echo', { headers: { 'sec-websocket-version': '8' } }, 426, /13/],
    ['no Sec-WebSocket-Version', '/echo', { omit: ['sec-websocket-version'] }, 426, /13/],
    ['a malformed Sec-WebSocket-Protocol', '/echo', { protocols: 'a b' }, 400, /Sec-WebSocket-Protocol/],
    ['a malformed Sec-WebSocket-Extensions', '/echo', { extensions: 'permessage-deflate; =' }, 400, /Sec-WebSocket-Extensions/],
    ['an Origin of another host', '/echo', { headers: { origin: 'https://elsewhere.example' } }, 403, /Origin not allowed/]
  ]
  for (const [label, path, options, status, reason] of cases) {
    const ws = await H2WebSocket.open(session, path, options)
    t.equal(ws.status, status, `${label}: ${status}`)
    t.match(await ws.reason(), reason, `${label}: the reason`)
    t.equal(ws.response.connection, undefined, `${label}: no Connection header (RFC 7540 §8.1.2.2)`)
    if (status === 426) t.equal(ws.response['sec-websocket-version'], '13', `${label}: Sec-WebSocket-Version: 13`)
  }

  const guarded = await H2WebSocket.open(session, '/guarded', { headers: { authorization: 'Bearer ok' } })
  t.equal(guarded.status, 200, 'the hook lets a good request through')
  t.equal(await guarded.closeCode(), 1000)

  const echo = await H2WebSocket.open(session, '/echo', { headers: { origin: 'http://127.0.0.1' } })
  t.equal(echo.status, 200, 'after every refusal, the same connection opens a WebSocket')
  echo.send(OP.text, 'still here')
  t.equal((await echo.nextFrame()).payload.toString(), 'still here')
  echo.send(OP.close, closeBody(1000))
  t.equal(await echo.closeCode(), 1000)
  t.notOk(session.destroyed, 'the HTTP/2 connection is still open')
})

test('a plain HTTP/2 GET to a WebSocket route gets 426 without the HTTP/1.1-only headers', async (t) => {
  const port = await start(t, (app) => {
    app.get('/echo', { ws: true }, (socket) => socket.close(1000))
  })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const stream = session.request({ ':path': '/echo' })
  const response = await withTimeout(new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve)), 'the response')
  stream.resume()
  t.equal(response[':status'], 426)
  t.equal(response['sec-websocket-version'], '13')
  t.equal(response.upgrade, undefined, 'no Upgrade: HTTP/2 forbids it')
})

test('params, prefixes and encapsulated hooks apply over HTTP/2', async (t) => {
  const seen: unknown[] = []
  const port = await start(t, async (app) => {
    await app.register(async (scope) => {
      scope.addHook('onRequest', async (request) => { seen.push(`hook ${request.url}`) })
      scope.get('/rooms/:room', { ws: true }, (socket, request) => {
        seen.push((request.params as { room: string }).room)
        socket.close(1000)
      })
    }, { prefix: '/v1' })
  })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const ws = await H2WebSocket.open(session, '/v1/rooms/lobby?x=1')
  t.equal(ws.status, 200)
  t.equal(await ws.closeCode(), 1000)
  t.same(seen, ['hook /v1/rooms/lobby?x=1', 'lobby'], 'the scope hook ran, then the handler with its params')
  const outside = await H2WebSocket.open(session, '/rooms/lobby')
  t.equal(outside.status, 404, 'the route exists only under its prefix')
})

test('host constraints match :authority over HTTP/2', async (t) => {
  const port = await start(t, (app) => {
    app.get('/hosted', { ws: true, constraints: { host: 'chat.example' } }, (socket) => socket.close(1000))
  })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const right = await H2WebSocket.open(session, '/hosted', { headers: { ':authority': 'chat.example' } })
  t.equal(right.status, 200, 'the route of that host')
  t.equal(await right.closeCode(), 1000)
  const wrong = await H2WebSocket.open(session, '/hosted', { headers: { ':authority': 'other.example' } })
  t.equal(wrong.status, 404, 'no route for another host')
})

test("CONNECTs that are not WebSockets are left to the app's own 'connect' listener", async (t) => {
  const taken: string[] = []
  const port = await start(t, (app) => {
    app.get('/echo', { ws: true }, (socket) => socket.close(1000))
    // Like an 'upgrade' listener beside the plugin's, it sees every CONNECT and takes only its own.
    app.server.on('connect', (request: { url: string, headers: Record<string, unknown> }, response: { writeHead (status: number): void, end (): void }) => {
      if (request.headers[':protocol'] === 'websocket' && request.url !== '/custom') return
      taken.push(`${String(request.headers[':protocol'])} ${request.url}`)
      response.writeHead(418)
      response.end()
    })
  })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const other = await H2WebSocket.open(session, '/echo', { headers: { ':protocol': 'connect-udp' } })
  t.equal(other.status, 418, "another :protocol goes to the app's listener")
  const custom = await H2WebSocket.open(session, '/custom')
  t.equal(custom.status, 418, "a path with no WebSocket route is left to the app's listener")
  const ws = await H2WebSocket.open(session, '/echo')
  t.equal(ws.status, 200, 'a WebSocket route is still ours')
  t.equal(await ws.closeCode(), 1000)
  t.same(taken, ['connect-udp /echo', 'websocket /custom'], 'the plugin answered none of them')
})
