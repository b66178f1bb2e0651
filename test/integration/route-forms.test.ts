import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { start } from './helpers.js'

test('app.route({ ws, wsHandler }) without handler: a WebSocket-only route', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.route({ method: 'GET', url: '/only', ws: true, wsHandler: (socket, request) => socket.send(`only ${request.url}`) })
  await app.register(async (child) => {
    child.route<{ Params: { id: string } }>({
      method: 'get',
      url: '/inner/:id',
      ws: { maxPayload: 4 },
      wsHandler: (socket, request) => {
        socket.send(`inner ${request.params.id}`)
        socket.on('message', (data) => socket.send(`echo ${data.toString()}`))
      }
    })
  }, { prefix: '/child' })
  t.throws(() => app.route({ method: 'GET', url: '/none', ws: true } as never), { code: 'FST_ERR_ROUTE_MISSING_HANDLER' },
    'with neither handler nor wsHandler Fastify still refuses the route')
  const h = await start(t, app)

  await t.test('the upgrade reaches wsHandler', async (t) => {
    const client = await h.client('/only')
    t.equal(await client.nextMessage(), 'only /only')
  })

  await t.test('declared in a prefixed child plugin, with route options', async (t) => {
    const client = await h.client('/child/inner/7')
    t.equal(await client.nextMessage(), 'inner 7')
    client.send('abcd')
    t.equal(await client.nextMessage(), 'echo abcd')
    client.send('abcde')
    t.equal((await client.waitClose()).code, 1009, 'the route maxPayload of 4 bytes applies')
  })

  await t.test('plain GET and HEAD get 426 as on any WebSocket-only route', async (t) => {
    for (const method of ['GET', 'HEAD']) {
      const response = await fetch(h.httpUrl('/only'), { method })
      await response.arrayBuffer()
      t.equal(response.status, 426, method)
      t.equal(response.headers.get('upgrade'), 'websocket', `${method}: Upgrade: websocket`)
    }
  })
})

test("the handler's return value is ignored, except a promise's rejection", async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const echo = (socket: import('../../lib/index.js').WebSocket) => socket.on('message', (data) => socket.send(data.toString()))
  app.get('/boolean', { ws: true }, (socket) => { echo(socket); return socket.send('sent') })
  app.get('/null', { ws: true }, (socket) => { echo(socket); return null })
  app.get('/object', { ws: true }, (socket) => { echo(socket); return { then: 'not a function' } })
  app.get('/rejects', { ws: true }, async () => { throw new Error('handler rejected') })
  app.get('/thenable-rejects', { ws: true }, () => ({
    then (_resolve: unknown, reject: (error: Error) => void) { reject(new Error('thenable rejected')) }
  }))
  const h = await start(t, app)

  for (const [path, returned] of [['/boolean', 'send()\'s boolean'], ['/null', 'null'], ['/object', 'an object whose then is no function']]) {
    await t.test(`a handler returning ${returned} keeps its connection`, async (t) => {
      const client = await h.client(path)
      if (path === '/boolean') t.equal(await client.nextMessage(), 'sent')
      client.send('still open')
      t.equal(await client.nextMessage(), 'still open')
    })
  }

  for (const [path, returned] of [['/rejects', 'a rejected promise'], ['/thenable-rejects', 'a thenable that rejects']]) {
    await t.test(`a handler returning ${returned} closes its connection with 1011`, async (t) => {
      const client = await h.client(path)
      t.equal((await client.waitClose()).code, 1011)
    })
  }
})
