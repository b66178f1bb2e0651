/**
 * app.injectWS(): a WebSocket to a `ws: true` route over an in-memory pair,
 * with no listen(). The handshake goes through the router and the route's
 * hooks; the frames through the server's real Connection and Session, and the
 * client's masked frames through the server's parser (which refuses unmasked
 * ones with 1002, so every echo here also checks the masking).
 */
import { once } from 'node:events'
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455, { CloseCode, HandshakeRefusedError, type InjectedWebSocket, WebSocket } from '../../lib/index.js'
import { withTimeout } from '../support/app.js'

async function echoApp (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyRfc6455, { protocols: ['chat.v2', 'chat.v1'] })
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString('utf8')))
  })
  return app
}

function nextMessage (client: InjectedWebSocket): Promise<[Buffer, boolean]> {
  return withTimeout(once(client, 'message') as Promise<[Buffer, boolean]>, 'a message')
}

function closeEvent (emitter: InjectedWebSocket | WebSocket): Promise<[number, string]> {
  return withTimeout(once(emitter, 'close') as Promise<[number, string]>, 'close')
}

async function refusal (promise: Promise<unknown>): Promise<HandshakeRefusedError> {
  const error = await withTimeout(promise.then(() => null, (error: unknown) => error), 'the refusal')
  if (!(error instanceof HandshakeRefusedError)) throw new Error(`expected a HandshakeRefusedError, got ${String(error)}`)
  return error
}

test('echo without listen(): text stays text and binary stays binary, at every payload length form', async (t) => {
  const app = await echoApp()
  t.teardown(() => app.close())
  const client = await app.injectWS('/echo')
  t.equal(app.server.listening, false, 'no port was opened')
  t.equal(client.readyState, WebSocket.OPEN)
  for (const size of [0, 125, 126, 65535, 65536, 1024 * 1024 - 1]) {
    const text = 'é'.repeat(size >> 1) + 'a'.repeat(size & 1)
    client.send(text)
    const [echoed, isBinary] = await nextMessage(client)
    t.equal(isBinary, false, `text of ${size} bytes comes back as text`)
    t.ok(echoed.toString('utf8') === text, `text of ${size} bytes comes back unchanged`)
    const bytes = Buffer.alloc(size, 0xa5)
    client.send(bytes)
    const [data, binary] = await nextMessage(client)
    t.equal(binary, true, `binary of ${size} bytes comes back as binary`)
    t.ok(data.equals(bytes), `binary of ${size} bytes comes back unchanged`)
  }
  client.close(1000)
  t.same(await closeEvent(client), [1000, ''])
  t.equal(client.readyState, WebSocket.CLOSED)
})

test('route hooks run on the handshake: a hook refusing with 401 rejects with the status, headers and body', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/private', {
    ws: true,
    onRequest: async (request, reply) => {
      if (request.headers.authorization !== 'Bearer secret') {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'no token' })
      }
    }
  }, (socket, request) => {
    socket.send(`hello ${String((request.query as { name?: string }).name)}`)
  })
  t.teardown(() => app.close())

  const error = await refusal(app.injectWS('/private'))
  t.equal(error.code, 'FST_WS_HANDSHAKE_REFUSED')
  t.equal(error.statusCode, 401)
  t.equal(error.headers['www-authenticate'], 'Bearer')
  t.same(JSON.parse(error.body), { error: 'no token' })
  t.equal(app.websocketClients.size, 0, 'no socket was opened')

  const client = await app.injectWS('/private', { headers: { Authorization: 'Bearer secret' }, query: { name: 'ada' } })
  t.same((await nextMessage(client))[0].toString(), 'hello ada', 'headers and query reach the request')
  client.close()
  t.same(await closeEvent(client), [CloseCode.NoStatusReceived, ''], 'a close without a code is echoed without one')
})

test('404 for a path with no WebSocket route, whether or not an HTTP route is there', async (t) => {
  const app = await echoApp()
  app.get('/http', async () => 'plain')
  t.teardown(() => app.close())
  for (const path of ['/nowhere', '/http']) {
    const error = await refusal(app.injectWS(path))
    t.equal(error.statusCode, 404, path)
    t.equal(error.body, 'Not Found', path)
  }
})

test('the origin check applies: an Origin of another host gets 403, one of the Host header passes', async (t) => {
  const app = await echoApp()
  t.teardown(() => app.close())
  const error = await refusal(app.injectWS('/echo', { headers: { origin: 'https://elsewhere.example' } }))
  t.same([error.statusCode, error.body], [403, 'Origin not allowed'])
  const client = await app.injectWS('/echo', { headers: { origin: 'http://localhost' } })
  t.equal(client.readyState, WebSocket.OPEN)
})

test('the subprotocol is chosen from the offer as over TCP; no offer the server takes gets none', async (t) => {
  const app = await echoApp()
  let serverProtocol = ''
  app.get('/proto', { ws: true }, (socket) => { serverProtocol = socket.protocol })
  t.teardown(() => app.close())
  const chosen = await app.injectWS('/proto', { protocols: ['chat.v1', 'chat.v2'] })
  t.equal(chosen.protocol, 'chat.v1', 'the first the client offered of those the route takes')
  t.equal(serverProtocol, 'chat.v1')
  const none = await app.injectWS('/proto', { protocols: 'other' })
  t.equal(none.protocol, '')
})

test('close codes and reasons both ways', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const serverSockets: WebSocket[] = []
  app.get('/close', { ws: true }, (socket) => {
    serverSockets.push(socket)
    socket.on('message', (data) => socket.close(4001, `done: ${data.toString()}`))
  })
  t.teardown(() => app.close())

  const client = await app.injectWS('/close')
  const serverClosed = closeEvent(serverSockets[0])
  const clientClosed = closeEvent(client)
  client.close(4000, 'client bye')
  t.same(await serverClosed, [4000, 'client bye'], 'the server got the client\'s code and reason')
  t.same(await clientClosed, [4000, ''], 'the client got the server\'s echo: the code, no reason')

  const second = await app.injectWS('/close')
  const secondServerClosed = closeEvent(serverSockets[1])
  second.send('x')
  t.same(await closeEvent(second), [4001, 'done: x'], 'the client got the server\'s code and reason')
  t.same(await secondServerClosed, [4001, ''], 'the server saw the echo: the code, no reason')

  t.throws(() => second.close(1005), { code: 'FST_WS_INVALID_CLOSE_CODE' }, '1005 is not sent on the wire')

  const third = await app.injectWS('/close')
  const thirdServerClosed = closeEvent(serverSockets[2])
  third.terminate()
  t.same(await thirdServerClosed, [CloseCode.AbnormalClosure, ''], 'terminate(): the server sees 1006')
})

test('app.close() closes injected sockets with 1001, as it does every socket', async (t) => {
  const app = await echoApp()
  const client = await app.injectWS('/echo')
  t.equal(app.websocketClients.size, 1, 'the injected socket is among the app\'s sockets')
  const closed = closeEvent(client)
  await withTimeout(app.close(), 'app.close()')
  t.same(await closed, [CloseCode.GoingAway, 'server shutting down'])
  t.equal(app.websocketClients.size, 0)
})

test('from any encapsulation level: a route in nested encapsulated plugins, with their hooks and prefixes', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  let inner: FastifyInstance | undefined
  await app.register(async (outer) => {
    outer.addHook('onRequest', async (request) => {
      (request as { seen?: string[] }).seen = ['outer']
    })
    await outer.register(async (child) => {
      inner = child
      child.addHook('preHandler', async (request) => {
        (request as { seen?: string[] }).seen?.push('inner')
      })
      child.get('/room/:name', { ws: true }, (socket, request) => {
        socket.send(JSON.stringify({ params: request.params, seen: (request as { seen?: string[] }).seen }))
      })
    }, { prefix: '/chat' })
  }, { prefix: '/v1' })
  await app.ready()
  t.teardown(() => app.close())

  for (const [label, instance] of [['the root', app], ['the inner plugin', inner as FastifyInstance]] as const) {
    const client = await instance.injectWS('/v1/chat/room/lobby')
    const [data] = await nextMessage(client)
    t.same(JSON.parse(data.toString()), { params: { name: 'lobby' }, seen: ['outer', 'inner'] }, `from ${label}`)
    client.close(1000)
    await closeEvent(client)
  }
  const error = await refusal(app.injectWS('/chat/room/lobby'))
  t.equal(error.statusCode, 404, 'the route is only under its prefixes')
})

test('messages sent before the client listens are queued, in order, for its first listener', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/greet', { ws: true }, (socket) => {
    for (const word of ['one', 'two', 'three']) socket.send(word)
    socket.send(Buffer.from([1, 2, 3]))
  })
  t.teardown(() => app.close())
  const client = await app.injectWS('/greet')
  await new Promise((resolve) => setImmediate(resolve))
  const received: Array<[string, boolean]> = []
  const all = withTimeout(new Promise<void>((resolve) => {
    client.on('message', (data, isBinary) => {
      received.push([isBinary ? data.toString('hex') : data.toString(), isBinary])
      if (received.length === 4) resolve()
    })
  }), 'four messages')
  await all
  t.same(received, [['one', false], ['two', false], ['three', false], ['010203', true]])
})

test('send() after close is refused, and nothing more is sent', async (t) => {
  const app = await echoApp()
  t.teardown(() => app.close())
  const client = await app.injectWS('/echo')
  client.close(1000)
  t.equal(client.readyState, WebSocket.CLOSING)
  t.equal(client.send('late'), false)
  t.same(await closeEvent(client), [1000, ''])
  t.equal(client.send('later'), false)
})

test('the route\'s idleTimeout runs over the in-memory pair: an idle socket is closed with 1001', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/idle', { ws: { idleTimeout: 50 } }, () => {})
  t.teardown(() => app.close())
  const client = await app.injectWS('/idle')
  t.same(await closeEvent(client), [CloseCode.GoingAway, 'idle timeout'])
})

test('on an HTTP/2 app too: the handshake is routed as an HTTP/1.1 upgrade, hooks included', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(fastifyRfc6455)
  app.get('/h2', {
    ws: true,
    onRequest: async (request, reply) => {
      if ((request.query as { token?: string }).token !== 'ok') return reply.code(401).send('no token')
    }
  }, (socket) => {
    socket.on('message', (data) => socket.send(data.toString()))
  })
  t.teardown(() => app.close())
  const error = await refusal(app.injectWS('/h2'))
  t.same([error.statusCode, error.body], [401, 'no token'])
  const client = await app.injectWS('/h2', { query: 'token=ok' })
  client.send('over h2 app')
  t.equal((await nextMessage(client))[0].toString(), 'over h2 app')
})

test('ping and pong both ways: the injected client answers the server\'s pings and sends its own', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const serverPings: string[] = []
  const serverPongs: string[] = []
  app.get('/ping', { ws: true }, (socket) => {
    socket.on('ping', (data) => serverPings.push(data.toString()))
    socket.on('pong', (data) => serverPongs.push(data.toString()))
    socket.on('message', () => socket.ping('from server'))
  })
  t.teardown(() => app.close())
  const client = await app.injectWS('/ping')
  const pinged = withTimeout(once(client, 'ping'), 'the server\'s ping') as Promise<[Buffer]>
  client.send('ping me')
  t.equal((await pinged)[0].toString(), 'from server', 'the client emits the server\'s ping')
  const ponged = withTimeout(once(client, 'pong'), 'the pong to the client\'s ping') as Promise<[Buffer]>
  t.equal(client.ping('from client'), true)
  t.equal((await ponged)[0].toString(), 'from client', 'the server answered with the same data (RFC 6455 §5.5.2)')
  t.same(serverPings, ['from client'])
  t.same(serverPongs, ['from server'], 'the client answered the server\'s ping')
  t.throws(() => client.ping(Buffer.alloc(126)), { code: 'FST_WS_CONTROL_PAYLOAD_TOO_LONG' })
  client.pong('unsolicited')
  client.close(1000)
  await closeEvent(client)
  t.same(serverPongs, ['from server', 'unsolicited'], 'an unsolicited pong reaches the server before the close')
  t.equal(client.ping(), false, 'nothing is sent once closed')
})

test('heartbeatInterval: an injected client that answers pings stays open', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455, { heartbeatInterval: 20 })
  app.get('/beat', { ws: true }, () => {})
  t.teardown(() => app.close())
  const client = await app.injectWS('/beat')
  let pings = 0
  client.on('ping', () => { pings++ })
  await new Promise<void>((resolve) => {
    const check = (): void => { if (pings >= 3) resolve(); else setTimeout(check, 10) }
    check()
  })
  t.equal(client.readyState, WebSocket.OPEN, 'three heartbeats later the connection is open: each pong came back')
  t.equal(app.websocketClients.size, 1)
})
