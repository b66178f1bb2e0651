import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { start, upgradeRequest } from './helpers.js'

test('route params, prefixes and encapsulated plugins reach the WebSocket handler', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get<{ Params: { room: string } }>('/chat/:room', { ws: true }, (socket, request) => {
    socket.send(`room=${request.params.room} url=${request.url}`)
  })
  await app.register(async (v1) => {
    v1.get('/echo', { ws: true }, (socket) => { socket.send('v1 echo') })
    v1.get('/', { ws: true }, (socket) => { socket.send('v1 root') })
  }, { prefix: '/v1' })
  await app.register(async (child) => {
    child.decorate('greeting', 'hello from the child')
    child.get('/inner', { ws: true }, function (socket) {
      socket.send(`this.greeting=${this.getDecorator<string>('greeting')}`)
    })
  })
  const h = await start(t, app)

  await t.test('/chat/:room gives request.params.room', async (t) => {
    const client = await h.client('/chat/lobby-42?x=1')
    t.equal(await client.nextMessage(), 'room=lobby-42 url=/chat/lobby-42?x=1')
    const other = await h.client('/chat/%C3%A9t%C3%A9')
    t.equal(await other.nextMessage(), 'room=été url=/chat/%C3%A9t%C3%A9', 'params are percent-decoded')
  })

  await t.test("a child plugin with prefix '/v1'", async (t) => {
    const client = await h.client('/v1/echo')
    t.equal(await client.nextMessage(), 'v1 echo')
    const raw = await h.raw()
    raw.write(upgradeRequest('/echo'))
    t.equal((await raw.readHttpResponse()).statusLine, 'HTTP/1.1 404 Not Found', 'not under its unprefixed path')
  })

  await t.test("a prefixed '/' route answers at '/v1' and at '/v1/', as Fastify routes it", async (t) => {
    const bare = await h.client('/v1')
    t.equal(await bare.nextMessage(), 'v1 root')
    const http = await fetch(h.httpUrl('/v1/'))
    await http.arrayBuffer()
    t.equal(http.status, 426, "Fastify routes plain GET '/v1/' to the WebSocket route")
    const slash = await h.client('/v1/')
    t.equal(await slash.nextMessage(), 'v1 root', "so an upgrade to '/v1/' reaches it too")
  })

  await t.test('a route declared in an encapsulated plugin, `this` is that plugin', async (t) => {
    const client = await h.client('/inner')
    t.equal(await client.nextMessage(), 'this.greeting=hello from the child')
  })
})

test('upgrade routing: 404 when nothing else listens, other upgrade listeners keep their paths, 405 for POST', async (t) => {
  await t.test('an upgrade to a path without a ws route gets 404 when no other upgrade listener exists', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    app.get('/ws', { ws: true }, (socket) => { socket.send('ws') })
    app.get('/plain', async () => 'plain')
    const h = await start(t, app)
    for (const path of ['/nowhere', '/plain']) {
      const raw = await h.raw()
      raw.write(upgradeRequest(path))
      const response = await raw.readHttpResponse()
      t.equal(response.statusLine, 'HTTP/1.1 404 Not Found', path)
      t.equal(response.headers.connection, 'close')
      t.equal(response.body.toString(), 'Not Found')
      await raw.waitForEnd()
    }
  })

  await t.test("another 'upgrade' listener on app.server answers its own paths; the ws path still works", async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    app.get('/ws', { ws: true }, (socket) => { socket.send('ws route') })
    const seen: string[] = []
    app.server.on('upgrade', (request, socket) => {
      seen.push(request.url ?? '')
      if (request.url !== '/other') return
      socket.end('HTTP/1.1 418 I\'m a Teapot\r\nConnection: close\r\nContent-Length: 6\r\n\r\nteapot')
    })
    const h = await start(t, app)
    const raw = await h.raw()
    raw.write(upgradeRequest('/other'))
    const response = await raw.readHttpResponse()
    t.equal(response.statusLine, 'HTTP/1.1 418 I\'m a Teapot', 'the other listener answered')
    t.equal(response.body.toString(), 'teapot')
    await raw.waitForEnd()
    t.equal(raw.unread().length, 0, 'and nothing else was written')
    const client = await h.client('/ws')
    t.equal(await client.nextMessage(), 'ws route')
    t.same(seen, ['/other', '/ws'])
  })

  await t.test('a ws path with a query is ours; with an Accept-Version no route of that path takes, it is left to the other listener', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    app.get('/ws', { ws: true }, (socket) => { socket.send('ws route') })
    app.get('/versioned', { ws: true, constraints: { version: '1.2.0' } }, (socket) => { socket.send('version 1.2.0') })
    const seen: string[] = []
    app.server.on('upgrade', (request, socket) => {
      const version = request.headers['accept-version']
      seen.push(`${request.url ?? ''} ${version ?? ''}`)
      // Answers only the two that no ws route takes: a wrong match would also answer them, and fail the status check.
      if (version === '1.0.0' || version === '2.0.0') socket.end('HTTP/1.1 418 I\'m a Teapot\r\nConnection: close\r\nContent-Length: 6\r\n\r\nteapot')
    })
    const h = await start(t, app)
    // find-my-way's version constraint: a request with Accept-Version matches no route without a version.
    for (const [path, version] of [['/ws', '1.0.0'], ['/versioned', '2.0.0']]) {
      const raw = await h.raw()
      raw.write(upgradeRequest(path, { set: { 'Accept-Version': version } }))
      const response = await raw.readHttpResponse()
      t.equal(response.statusLine, 'HTTP/1.1 418 I\'m a Teapot', `${path} with Accept-Version ${version}: not ours`)
      await raw.waitForEnd()
    }
    t.same(seen, ['/ws 1.0.0', '/versioned 2.0.0'])
    const withQuery = await h.client('/ws?room=1')
    t.equal(await withQuery.nextMessage(), 'ws route')
    const versioned = await h.raw()
    versioned.write(upgradeRequest('/versioned', { set: { 'Accept-Version': '1.2.0' } }))
    t.equal((await versioned.readHttpResponse()).statusLine, 'HTTP/1.1 101 Switching Protocols')
    t.same(seen, ['/ws 1.0.0', '/versioned 2.0.0', '/ws?room=1 ', '/versioned 1.2.0'])
  })

  await t.test('an upgrade with POST to a ws path gets 405 with Allow: GET', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    let handlerCalls = 0
    app.get('/ws', { ws: true }, () => { handlerCalls++ })
    const h = await start(t, app)
    const raw = await h.raw()
    raw.write(upgradeRequest('/ws', { method: 'POST', set: { 'Content-Length': '0' } }))
    const response = await raw.readHttpResponse()
    t.equal(response.statusLine, 'HTTP/1.1 405 Method Not Allowed')
    t.equal(response.headers.allow, 'GET')
    t.equal(response.headers.connection, 'close')
    await raw.waitForEnd()
    t.equal(handlerCalls, 0)
  })
})
