/**
 * fastify-rfc6455/compat: @fastify/websocket 11's options and route options
 * mapped onto the plugin, over real TCP with `ws` as the client (what a
 * @fastify/websocket app's tests use), and through `app.injectWS()`. What
 * @fastify/websocket's own suite does not check: the option mapping
 * (maxPayload's default and 0, perMessageDeflate, handleProtocols,
 * verifyClient's answers), fastify-rfc6455's options beside them, the
 * options refused or ignored, `websocketServer`, a second server's upgrades.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import WebSocketClient from 'ws'
import fastifyWebsocket, { type FastifyWebsocketOptions } from '../../lib/compat.js'
import { HandshakeRefusedError } from '../../lib/errors.js'
import type { WebSocket } from '../../lib/socket/websocket.js'
import { closeApp, listen, withTimeout } from '../support/app.js'

/** An app with the compat plugin registered with `options` and an echo route at /echo; listening, closed at teardown. */
async function echoApp (t: Test, options?: FastifyWebsocketOptions, logs?: string[]): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify(logs === undefined
    ? {}
    : { logger: { level: 'warn', stream: { write: (line: string) => { logs.push(JSON.parse(line).msg as string) } } } })
  t.teardown(() => closeApp(app))
  await app.register(fastifyWebsocket, options ?? {})
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  const port = await listen(app)
  return { app, url: `ws://127.0.0.1:${port}/echo` }
}

/** Opens a `ws` client, closed at teardown; resolves once open. */
async function open (t: Test, url: string, options?: WebSocketClient.ClientOptions, protocols?: string[]): Promise<WebSocketClient> {
  const client = new WebSocketClient(url, protocols, { ...options })
  t.teardown(() => client.terminate())
  await withTimeout(once(client, 'open'), `open of ${url}`)
  return client
}

/** The HTTP status a handshake is refused with, from `ws`'s `unexpected-response`. */
async function refusal (t: Test, url: string, options?: WebSocketClient.ClientOptions): Promise<IncomingMessage> {
  const client = new WebSocketClient(url, options)
  t.teardown(() => client.terminate())
  client.on('error', () => {})
  const [, response] = await withTimeout(once(client, 'unexpected-response'), 'the refusal') as [unknown, IncomingMessage]
  response.resume()
  return response
}

test('a websocket: true route: (socket, request), this the route\'s instance, request.ws, 426 over plain HTTP', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(fastifyWebsocket)
  const seen: boolean[] = []
  await app.register(async (child) => {
    child.decorate('scope', 'child')
    child.addHook('onRequest', async (request) => { seen.push(request.ws) })
    child.get<{ Params: { room: string } }>('/rooms/:room', { websocket: true }, function (socket, request) {
      socket.send(`${(this as FastifyInstance & { scope: string }).scope} ${request.params.room} ${String(request.ws)}`)
    })
  })
  const port = await listen(app)
  const client = new WebSocketClient(`ws://127.0.0.1:${port}/rooms/lobby`)
  t.teardown(() => client.terminate())
  const [data] = await withTimeout(once(client, 'message'), 'the greeting')
  t.equal(String(data), 'child lobby true')
  const plain = await app.inject('/rooms/lobby')
  t.equal(plain.statusCode, 426, 'plain HTTP to a WebSocket-only route: 426, not @fastify/websocket\'s 404')
  t.same(seen, [true, false], 'request.ws: true for the handshake, false for plain HTTP')
  t.equal(app.websocketServer.clients.size, 1)
})

test('maxPayload: ws\'s default of 100 MiB, 0 for no limit, a number of bytes', async (t) => {
  const big = 'x'.repeat(2 * 1024 * 1024)
  for (const [options, label] of [[undefined, 'default'], [{ options: { maxPayload: 0 } }, '0']] as const) {
    const { url } = await echoApp(t, options)
    const client = await open(t, url)
    client.send(big)
    const [data] = await withTimeout(once(client, 'message'), 'the echo')
    t.equal(String(data).length, big.length, `${label}: a 2 MiB message passes (over Fastify's bodyLimit of 1 MiB)`)
  }
  const { url } = await echoApp(t, { options: { maxPayload: 10 } })
  const client = await open(t, url)
  client.send('12345678901')
  const [code] = await withTimeout(once(client, 'close'), 'the close')
  t.equal(code, 1009, '11 bytes over maxPayload 10: 1009')
})

test('fastify-rfc6455\'s own options beside @fastify/websocket\'s, and winning over a mapped one', async (t) => {
  const { url } = await echoApp(t, { options: { maxPayload: 0 }, maxPayload: 4 })
  const client = await open(t, url)
  client.send('12345')
  const [code] = await withTimeout(once(client, 'close'), 'the close')
  t.equal(code, 1009, 'maxPayload: 4 wins over options.maxPayload: 0')
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await t.rejects(async () => { await app.register(fastifyWebsocket, { maxPayloads: 1 } as FastifyWebsocketOptions) },
 { code: 'FST_WS_UNKNOWN_OPTION' })
})

test('perMessageDeflate: ws\'s form mapped, zlib\'s level and memLevel included', async (t) => {
  const { url } = await echoApp(t, { options: { perMessageDeflate: { threshold: 0, zlibDeflateOptions: { level: 9, memLevel: 9 } } } })
  const client = await open(t, url, { perMessageDeflate: true })
  t.match(client.extensions, /permessage-deflate/)
  client.send('hello hello hello')
  const [data] = await withTimeout(once(client, 'message'), 'the echo')
  t.equal(String(data), 'hello hello hello')
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await t.rejects(async () => { await app.register(fastifyWebsocket, { options: { perMessageDeflate: { zlibDeflateOptions: { level: 12 } } } }) },
    { code: 'FST_WS_INVALID_OPTION', message: /perMessageDeflate\.level is 12/ })
})

test('subprotocols: the client\'s first offer by default, as ws; handleProtocols chooses otherwise', async (t) => {
  const first = await echoApp(t)
  t.equal((await open(t, first.url, {}, ['a', 'b'])).protocol, 'a')
  const chosen: Array<Set<string>> = []
  const second = await echoApp(t, {
    options: {
      handleProtocols: (protocols, request) => {
        chosen.push(protocols)
        return request.headers['x-choice'] === 'none' ? false : 'b'
      }
    }
  })
  t.equal((await open(t, second.url, {}, ['a', 'b'])).protocol, 'b')
  t.same([...chosen[0]], ['a', 'b'], 'handleProtocols gets the offers as a Set')
  const none = await second.app.injectWS('/echo', { headers: { 'sec-websocket-protocol': 'a, b', 'x-choice': 'none' } })
  t.equal(none.protocol, '', 'false chooses none')
  none.terminate()
})

test('verifyClient: true opens; false refuses with 401; done(false, code, message, headers) with those', async (t) => {
  const infos: Array<{ origin: string | undefined, secure: boolean, url: string | undefined }> = []
  const { url } = await echoApp(t, {
    options: {
      verifyClient: (info, done) => {
        infos.push({ origin: info.origin, secure: info.secure, url: info.req.url })
        const key = info.req.headers['x-key']
        if (key === 'good') done(true)
        else if (key === 'banned') done(false, 403, 'banned here', { 'x-why': 'banned' })
        else done(false)
      }
    }
  })
  await open(t, url, { headers: { 'x-key': 'good' } })
  t.same(infos[0], { origin: undefined, secure: false, url: '/echo' })
  t.equal((await refusal(t, url)).statusCode, 401)
  const banned = await refusal(t, url, { headers: { 'x-key': 'banned' } })
  t.equal(banned.statusCode, 403)
  t.equal(banned.headers['x-why'], 'banned')

  const sync = await echoApp(t, { options: { verifyClient: (info) => info.req.headers['x-key'] === 'good' } })
  t.equal((await refusal(t, sync.url)).statusCode, 401, 'a synchronous verifyClient returning false: 401')
  await open(t, sync.url, { headers: { 'x-key': 'good' } })
})

test('errorHandler: a throw or rejection of the handler, with (error, socket, request, reply) and this', async (t) => {
  const calls: Array<{ message: string, socket: boolean, url: string, hijacked: boolean, instance: boolean }> = []
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(fastifyWebsocket, {
    errorHandler (error, socket, request, reply) {
      calls.push({ message: error.message, socket: typeof socket.send === 'function', url: request.url, hijacked: reply.sent, instance: this === app })
      socket.close(4000, 'handled')
    }
  })
  app.get('/sync', { websocket: true }, () => { throw new Error('sync') })
  app.get('/async', { websocket: true }, async () => { throw new Error('async') })
  const port = await listen(app)
  for (const path of ['/sync', '/async']) {
    const client = await open(t, `ws://127.0.0.1:${port}${path}`)
    const [code] = await withTimeout(once(client, 'close'), 'the close')
    t.equal(code, 4000, `${path}: the errorHandler closed it`)
  }
  t.same(calls, [
    { message: 'sync', socket: true, url: '/sync', hijacked: true, instance: true },
    { message: 'async', socket: true, url: '/async', hijacked: true, instance: true }
  ])
})

test('the default errorHandler logs at error level and terminates the socket: the client sees 1006', async (t) => {
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { logs.push(JSON.parse(line).msg as string) } } } })
  t.teardown(() => closeApp(app))
  await app.register(fastifyWebsocket)
  app.get('/', { websocket: true }, () => { throw new Error('boom') })
  const port = await listen(app)
  const client = await open(t, `ws://127.0.0.1:${port}/`)
  const [code] = await withTimeout(once(client, 'close'), 'the close')
  t.equal(code, 1006)
  t.same(logs, ['boom'])
})

test('websocketServer: clients and the connection event (socket, raw request)', async (t) => {
  const { app, url } = await echoApp(t)
  const connected = once(app.websocketServer, 'connection') as Promise<[WebSocket, IncomingMessage]>
  await open(t, url)
  const [socket, request] = await withTimeout(connected, 'the connection event')
  t.equal(request.url, '/echo')
  t.ok(app.websocketServer.clients.has(socket))
  t.same(app.websocketServer.options, {})
})

test('options refused at registration, options ignored with a warning', async (t) => {
  for (const [options, message] of [
    [{ errorHandler: {} }, /^invalid errorHandler function$/],
    [{ preClose: 'no' }, /^invalid preClose function$/],
    [{ options: { noServer: true } }, /noServer is not supported/],
    [{ options: { port: 8080 } }, /port is not supported/]
  ] as const) {
    const app = Fastify()
    t.teardown(() => closeApp(app))
    await t.rejects(async () => { await app.register(fastifyWebsocket, options as FastifyWebsocketOptions) },
 { code: 'FST_WS_INVALID_OPTION', message })
  }
  const logs: string[] = []
  await echoApp(t, { options: { skipUTF8Validation: true, clientTracking: false, path: '/x' }, connectionOptions: {} }, logs)
  t.same(logs, [
    'fastify-rfc6455/compat: connectionOptions is ignored (gone since @fastify/websocket 10)',
    'ws server path option shouldn\'t be provided, use a route instead',
    'fastify-rfc6455/compat: options.skipUTF8Validation is ignored: text is always checked as it arrives (RFC 6455 §8.1)'
  ])
})

test('injectWS(path = \'/\', upgradeContext, { onInit, onOpen }); a refusal rejects as @fastify/websocket\'s, its cause the HandshakeRefusedError', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(fastifyWebsocket)
  app.get('/', { websocket: true, preValidation: async (request, reply) => { if (request.headers['x-key'] !== 'k') await reply.code(401).send() } },
    (socket) => { socket.send('root') })
  const client = await app.injectWS(undefined, { headers: { 'x-key': 'k' } })
  const [data] = await withTimeout(once(client, 'message'), 'the greeting')
  t.equal(String(data), 'root')
  client.terminate()
  const error = await app.injectWS('/').then(() => undefined, (error: unknown) => error as Error & { cause: unknown })
  t.equal(error?.message, 'Unexpected server response: 401')
  t.ok(error?.cause instanceof HandshakeRefusedError)
  t.equal((error?.cause as HandshakeRefusedError).statusCode, 401)
})

test('options.server: a second server\'s upgrades are taken too, and its listener removed when the app closes', async (t) => {
  const other = createServer()
  t.teardown(() => other.close())
  other.listen(0, '127.0.0.1')
  await once(other, 'listening')
  const { app } = await echoApp(t, { options: { server: other } })
  const client = await open(t, `ws://127.0.0.1:${(other.address() as AddressInfo).port}/echo`)
  client.send('through the other server')
  const [data] = await withTimeout(once(client, 'message'), 'the echo')
  t.equal(String(data), 'through the other server')
  t.equal(other.listenerCount('upgrade'), 1)
  await app.close()
  t.equal(other.listenerCount('upgrade'), 0)
})

test('preClose runs first; the sockets it leaves open then get 1001', async (t) => {
  let ran = false
  const { app, url } = await echoApp(t, { preClose: (done) => { ran = true; done() } })
  const client = await open(t, url)
  const closed = once(client, 'close')
  await app.close()
  t.ok(ran)
  const [code] = await withTimeout(closed, 'the close')
  t.equal(code, 1001)
})

test('route forms: wsHandler beside an HTTP handler, HEAD, methods', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(fastifyWebsocket)
  app.route({
    method: 'GET',
    url: '/both',
    handler: async () => 'http',
    wsHandler: (socket) => { socket.send('ws') }
  })
  app.route({ method: ['GET', 'HEAD'], url: '/get-head', websocket: true, handler: (socket) => { socket.close() } })
  t.throws(() => app.post('/post', { websocket: true }, () => {}), { code: 'FST_WS_ROUTE_METHOD' })
  t.throws(() => app.route({ method: 'GET', url: '/bad', handler: async () => 'http', wsHandler: 'no' as never }),
    { code: 'FST_WS_ROUTE_HANDLER' })
  t.equal((await app.inject('/both')).body, 'http')
  t.equal((await app.inject({ method: 'HEAD', url: '/both' })).statusCode, 200, 'HEAD of a wsHandler route: its HTTP handler')
  t.equal((await app.inject({ method: 'HEAD', url: '/get-head' })).statusCode, 404, "method ['GET', 'HEAD']: HEAD gets 404")
  const client = await app.injectWS('/both')
  const [data] = await withTimeout(once(client, 'message'), 'the greeting')
  t.equal(String(data), 'ws')
  client.terminate()
})
