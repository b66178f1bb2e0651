import { test } from 'tap'
import Fastify from 'fastify'
import { request } from 'undici'
import fastifyRfc6455 from '../../lib/index.js'
import { start } from './helpers.js'

test('plain HTTP on WebSocket routes: 426 for ws-only, the HTTP handler for combined routes, GET only', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/ws-only', { ws: true }, (socket) => { socket.send('ws-only') })
  app.route({
    method: 'GET',
    url: '/both',
    ws: true,
    handler: async (_request, reply) => reply.type('text/plain; charset=utf-8').send('plain http'),
    wsHandler: (socket) => { socket.send('websocket') }
  })
  const h = await start(t, app)

  await t.test('GET to a ws-only route: 426 Upgrade Required', async (t) => {
    const response = await request(h.httpUrl('/ws-only'))
    t.equal(response.statusCode, 426)
    t.equal(response.headers.upgrade, 'websocket')
    t.equal(response.headers.connection, 'Upgrade')
    t.equal(response.headers['sec-websocket-version'], '13')
    t.equal(response.headers['content-type'], 'text/plain; charset=utf-8')
    t.equal(await response.body.text(), 'Upgrade Required: this route speaks WebSocket (RFC 6455)')
  })

  await t.test('HEAD to a ws-only route: 426 without a body', async (t) => {
    const response = await request(h.httpUrl('/ws-only'), { method: 'HEAD' })
    t.equal(response.statusCode, 426)
    t.equal(response.headers.upgrade, 'websocket')
    t.equal(response.headers.connection, 'Upgrade')
    t.equal(response.headers['sec-websocket-version'], '13')
    t.equal(await response.body.text(), '')
  })

  await t.test('a route with handler and wsHandler: plain GET gets the HTTP handler, an upgrade the ws one', async (t) => {
    const response = await request(h.httpUrl('/both'))
    t.equal(response.statusCode, 200)
    t.equal(await response.body.text(), 'plain http')
    const head = await request(h.httpUrl('/both'), { method: 'HEAD' })
    t.equal(head.statusCode, 200, 'HEAD follows the HTTP handler')
    t.equal(await head.body.text(), '')
    const client = await h.client('/both')
    t.equal(await client.nextMessage(), 'websocket')
  })

  await t.test('ws: true on a non-GET route throws FST_WS_ROUTE_METHOD from the route declaration', async (t) => {
    const other = Fastify()
    await other.register(fastifyRfc6455)
    const declare = (method: 'POST' | 'PUT' | 'DELETE') => {
      // @ts-expect-error ws: true on a method other than GET is a type error too
      other.route({ method, url: '/nope', ws: true, handler: () => {} })
    }
    t.throws(() => declare('POST'), { code: 'FST_WS_ROUTE_METHOD', message: 'WebSocket route POST /nope: only GET routes may set ws: true' })
    t.throws(() => declare('PUT'), { code: 'FST_WS_ROUTE_METHOD' })
    // @ts-expect-error the same for GET with another method
    t.throws(() => other.route({ method: ['GET', 'POST'], url: '/both-methods', ws: true, handler: () => {} }), { code: 'FST_WS_ROUTE_METHOD' })
    await other.ready()
    t.pass('the throw is synchronous: app.ready() does not reject afterwards')
    await other.close()
  })
})
