import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455, { LocalBroker } from '../../lib/index.js'
import { captureLogs, start, withTimeout } from './helpers.js'

const NOT_WEBSOCKET_ROUTE = 'FST_WS_NOT_WEBSOCKET_ROUTE'

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
      for (const path of ['/chat/lobby?name=ann', '/chat/lobby', '/chat/other']) {
        const raw = await h.raw()
        t.equal((await raw.handshake(path)).status, 404, path)
      }
      const warnings = logs.records.filter((r) => r.code === NOT_WEBSOCKET_ROUTE)
      t.equal(warnings.length, 1, 'one warning for the route, whatever its params')
      t.equal(warnings[0]?.level, 40, 'at level warn')
      t.equal(warnings[0]?.route, '/chat/:room', 'names the route')
      t.notOk('err' in (warnings[0] ?? {}), 'no error object, no stack')
      t.match(warnings[0]?.msg, /GET \/chat\/lobby\b/, 'names the request path')
      t.notMatch(warnings[0]?.msg, /name=ann/, 'without its query, which may carry tokens')
      t.match(warnings[0]?.msg, /await app\.register\(fastifyRfc6455\), then declare the routes/, 'says what to do')
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
  t.notOk(logs.records.some((r) => r.code === NOT_WEBSOCKET_ROUTE), 'no warning')
})

test('an upgrade to an HTTP route the plugin saw declared: 404, logged at debug level with the code', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/ws', { ws: true }, greet)
  app.get('/', async () => 'home')
  const h = await start(t, app)
  for (const path of ['/', '/?probe=1']) {
    const raw = await h.raw()
    t.equal((await raw.handshake(path)).status, 404, path)
  }
  const records = logs.records.filter((r) => r.code === NOT_WEBSOCKET_ROUTE)
  t.equal(records.length, 2, 'each logged')
  t.ok(records.every((r) => r.level === 20), 'at debug level')
  t.notOk(logs.records.some((r) => (r.level as number) >= 40), 'nothing at warn or above')
})

/** A plugin of its own that registers fastify-rfc6455 and declares one WebSocket route at `path`. */
function wsPlugin (path: string, options: object = {}) {
  return async (scope: FastifyInstance) => {
    await scope.register(fastifyRfc6455, options)
    scope.get(path, { ws: true }, (socket) => {
      socket.on('message', (data) => socket.send(`${path}: ${data.length}`))
    })
  }
}

test('the plugin registered in two sibling plugins: every upgrade gets one answer', async (t) => {
  const app = Fastify()
  app.register(wsPlugin('/a'))
  app.register(wsPlugin('/b'))
  app.get('/http', async () => 'plain')
  const h = await start(t, app)
  for (const path of ['/a', '/b']) {
    const client = await h.client(path)
    client.send('xyz')
    t.equal(await client.nextMessage(), `${path}: 3`, `${path} is a WebSocket route`)
  }
  t.equal(app.server.listenerCount('upgrade'), 1, 'one upgrade listener for the server')
  for (const path of ['/other', '/http']) {
    const raw = await h.raw()
    const response = await withTimeout(raw.handshake(path), `the answer to an upgrade to ${path}`)
    t.equal(response.status, 404, `${path}: 404`)
  }
})

test('registered again in a child plugin: its options apply to its routes, the parent\'s to the others', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455, { maxPayload: 100 })
  app.get('/root', { ws: true }, (socket) => socket.on('message', (data) => socket.send(`root: ${data.length}`)))
  app.register(async (child) => {
    await child.register(fastifyRfc6455, { maxPayload: 10 })
    child.get('/limited', { ws: true }, (socket) => socket.on('message', (data) => socket.send(`limited: ${data.length}`)))
    child.register(async (grandchild) => {
      grandchild.get('/deeper', { ws: { maxPayload: 20 } }, (socket) => socket.on('message', (data) => socket.send(`deeper: ${data.length}`)))
    })
  }, { prefix: '/child' })
  app.register(async (sibling) => {
    sibling.get('/sibling', { ws: true }, (socket) => socket.on('message', (data) => socket.send(`sibling: ${data.length}`)))
  })
  const h = await start(t, app)

  const root = await h.client('/root')
  root.send('x'.repeat(50))
  t.equal(await root.nextMessage(), 'root: 50', "the root's maxPayload of 100")
  const sibling = await h.client('/sibling')
  sibling.send('x'.repeat(50))
  t.equal(await sibling.nextMessage(), 'sibling: 50', "a sibling of the child: the root's options")

  const limited = await h.client('/child/limited')
  limited.send('x'.repeat(10))
  t.equal(await limited.nextMessage(), 'limited: 10', 'the child route works (no 1011)')
  limited.send('x'.repeat(11))
  t.equal((await limited.waitClose()).code, 1009, "the child's maxPayload of 10")

  const deeper = await h.client('/child/deeper')
  deeper.send('x'.repeat(20))
  t.equal(await deeper.nextMessage(), 'deeper: 20', 'a route option over the child registration')
  deeper.send('x'.repeat(21))
  t.equal((await deeper.waitClose()).code, 1009)
  t.equal(app.server.listenerCount('upgrade'), 1, 'one upgrade listener')
})

test('a later registration may not change the options that serve the whole server', async (t) => {
  const cases: Array<[string, object]> = [
    ['broker', { broker: new LocalBroker() }],
    ['heartbeatInterval', { heartbeatInterval: 1000 }]
  ]
  for (const [name, options] of cases) {
    const app = Fastify()
    await app.register(fastifyRfc6455, { heartbeatInterval: 0 })
    app.register(async (child) => { await child.register(fastifyRfc6455, options) })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_SERVER_OPTION', message: new RegExp(`another ${name}`) }, name)
    await app.close()
  }
  const broker = new LocalBroker()
  const app = Fastify()
  await app.register(fastifyRfc6455, { broker, heartbeatInterval: 0 })
  app.register(async (child) => { await child.register(fastifyRfc6455, { broker, heartbeatInterval: 0, maxPayload: 1 }) })
  await t.resolves(async () => { await app.ready() }, 'the same broker and heartbeatInterval again')
  await app.close()
})

test('a broker serves one app, once: a second start throws FST_WS_BROKER_STARTED', async (t) => {
  const broker = new LocalBroker()
  const first = Fastify()
  await first.register(fastifyRfc6455, { broker })
  await first.ready()
  const second = Fastify()
  await t.rejects(async () => { await second.register(fastifyRfc6455, { broker }) }, { code: 'FST_WS_BROKER_STARTED' }, 'given to another app')
  await second.close()
  await first.close()
  const third = Fastify()
  await t.rejects(async () => { await third.register(fastifyRfc6455, { broker }) }, { code: 'FST_WS_BROKER_STARTED' }, 'reused after close')
  await third.close()
})

test("a route with @fastify/websocket's websocket: true, or wsHandler without ws, fails at startup", async (t) => {
  const declarations: Array<[string, (app: FastifyInstance) => void]> = [
    ['websocket: true', (app) => app.get('/r', { websocket: true } as never, greet as never)],
    ['wsHandler', (app) => app.route({ method: 'GET', url: '/r', wsHandler: greet } as never)],
    ['wsHandler', (app) => app.route({ method: 'GET', url: '/r', handler: async () => 'http', wsHandler: greet } as never)]
  ]
  for (const [given, declare] of declarations) {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    t.throws(() => declare(app), { code: 'FST_WS_ROUTE_WS_MISSING', message: new RegExp(`has ${given} but no ws: did you mean \`ws: true\``) }, given)
    await app.close()
  }
})

test('an onRoute hook registered before the plugin may turn websocket: true into ws: true', async (t) => {
  const app = Fastify()
  app.addHook('onRoute', (declared) => {
    const route = declared as unknown as { websocket?: boolean, ws?: boolean }
    if (route.websocket === true) {
      delete route.websocket
      route.ws = true
    }
  })
  await app.register(fastifyRfc6455)
  app.get('/r', { websocket: true } as never, greet as never)
  app.route({ method: 'GET', url: '/only', websocket: true, wsHandler: greet } as never)
  const h = await start(t, app)
  for (const path of ['/r', '/only']) {
    const client = await h.client(path)
    t.equal(await client.nextMessage(), 'hello', path)
  }
})

test('WebSocket routes carry schema.hide, which keeps them out of an OpenAPI document', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const schemas = new Map<string, unknown>()
  app.addHook('onRoute', (route) => { schemas.set(`${route.method as string} ${route.url}`, route.schema) })
  app.get('/ws', { ws: true }, greet)
  app.get('/ws-schema', { ws: { messages: 'json' }, schema: { querystring: { type: 'object' }, message: { type: 'object' } } }, greet)
  app.get('/shown', { ws: true, schema: { hide: false } as object }, greet)
  app.get('/http', async () => 'plain')
  await app.ready()
  t.match(schemas.get('GET /ws'), { hide: true })
  t.match(schemas.get('GET /ws-schema'), { hide: true, querystring: { type: 'object' } })
  t.match(schemas.get('GET /shown'), { hide: false }, 'an explicit hide: false stays')
  t.equal(schemas.get('GET /http'), undefined, 'plain routes untouched')
  t.equal(app.findRoute({ method: 'GET', url: '/http' }) !== null, true)
})
