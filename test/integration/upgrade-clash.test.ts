import { ServerResponse } from 'node:http'
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { captureLogs, start } from './helpers.js'

test("an app's own upgrade listener that answers the socket: left to it, the process carries on", async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  let taken = 0
  app.server.on('upgrade', (request, socket) => {
    if (request.url !== '/ws') return
    taken++
    const response = new ServerResponse(request)
    response.assignSocket(socket as never)
    response.shouldKeepAlive = false
    response.writeHead(418, { 'content-type': 'text/plain' })
    response.end('mine')
  })
  await app.register(fastifyRfc6455)
  app.get('/ws', { ws: true }, (socket) => socket.send('hello'))
  app.get('/other', { ws: true }, (socket) => socket.send('other'))
  const h = await start(t, app)
  const raw = await h.raw()
  t.equal((await raw.handshake('/ws')).status, 418, "the other listener's answer")
  t.equal(taken, 1)
  t.ok(logs.records.some((r) => r.level === 40 && r.code === 'ERR_HTTP_SOCKET_ASSIGNED'), 'logged at warn with the code')
  const client = await h.client('/other')
  t.equal(await client.nextMessage(), 'other', 'the app carries on')
})

test('an upgrade to an HTTP route never runs its handler, beside a WebSocket route /* or /ws', async (t) => {
  for (const wsPath of ['/*', '/ws']) {
    await t.test(`WebSocket route ${wsPath}`, async (t) => {
      const logs = captureLogs()
      const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
      await app.register(fastifyRfc6455)
      let ran = 0
      app.get(wsPath, { ws: true }, (socket) => socket.send('ws'))
      app.get('/http', async () => {
        ran++
        return 'plain'
      })
      const h = await start(t, app)
      const raw = await h.raw()
      t.equal((await raw.handshake('/http')).status, 404)
      t.equal(ran, 0, 'the HTTP handler did not run')
      const records = logs.records.filter((r) => r.code === 'FST_WS_NOT_WEBSOCKET_ROUTE')
      t.equal(records.length, 1, 'logged with FST_WS_NOT_WEBSOCKET_ROUTE')
      // Beside /*, the HTTP route takes a path a WebSocket route matches too: a likely mistake.
      t.equal(records[0]?.level, wsPath === '/*' ? 40 : 20, wsPath === '/*' ? 'a warning' : 'at debug level')
      t.equal((await (await fetch(h.httpUrl('/http'))).text()), 'plain', 'plain HTTP still reaches it')
      const client = await h.client('/ws')
      t.equal(await client.nextMessage(), 'ws', 'the WebSocket route works')
    })
  }
})
