import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { captureLogs, start } from './helpers.js'

const WARNING = 'WebSocket handshake refused: not a WebSocket route'

/** A handler as a `ws: true` route's; on a plain route it gets the request and the reply. */
function greet (socket: { send (data: string): unknown }): void {
  socket.send('hello')
}

/**
 * Fastify keeps no route options a plugin could read back later, so a
 * `ws: true` route declared before the plugin is registered stays a plain
 * HTTP route. What shows: a handshake to it is refused with 404 and a
 * warning that names the cause and the fix.
 */
test('a handshake to a ws route declared before the plugin: 404 and a warning that says what to do', async (t) => {
  const declarations: Array<[string, (app: FastifyInstance) => Promise<void>]> = [
    ['route declared, then the plugin registered', async (app) => {
      app.get('/chat/:room', { ws: true }, greet)
      await app.register(fastifyRfc6455)
    }],
    ['register() not awaited before the route', async (app) => {
      void app.register(fastifyRfc6455)
      app.get('/chat/:room', { ws: true }, greet)
    }]
  ]
  for (const [label, declare] of declarations) {
    await t.test(label, async (t) => {
      const logs = captureLogs()
      const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
      await declare(app)
      const h = await start(t, app)
      const raw = await h.raw()
      const response = await raw.handshake('/chat/lobby?name=ann')
      t.equal(response.status, 404)
      const warnings = logs.records.filter((r) => r.msg === WARNING)
      t.equal(warnings.length, 1, 'one warning')
      t.equal(warnings[0]?.level, 40, 'at level warn')
      const err = warnings[0]?.err as { code?: string, message?: string } | undefined
      t.equal(err?.code, 'FST_WS_NOT_WEBSOCKET_ROUTE')
      t.match(err?.message, /GET \/chat\/lobby, /, 'names the request by its path, without the query string')
      t.match(err?.message, /await app\.register\(fastifyRfc6455\), then declare the routes/, 'says what to do')
    })
  }
})

test('no warning where there is no misregistration to suspect', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/chat/:room', { ws: true }, greet)
  const h = await start(t, app)

  const ok = await h.raw()
  t.equal((await ok.handshake('/chat/lobby')).status, 101, 'a ws route declared after the plugin')
  t.equal((await ok.readFrame()).payload.toString(), 'hello')
  const nowhere = await h.raw()
  t.equal((await nowhere.handshake('/nowhere')).status, 404, 'no route at all: 404')
  t.ok(logs.records.some((r) => r.msg === 'WebSocket handshake refused: no WebSocket route' && r.level === 30), 'logged at info')
  t.notOk(logs.records.some((r) => r.msg === WARNING), 'no warning')
})
