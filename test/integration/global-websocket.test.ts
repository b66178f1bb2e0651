/**
 * Node's own WebSocket client, global from Node 22 (undici's, the WHATWG
 * API a browser has) against the plugin over real TCP: text and binary
 * echo, a subprotocol, the server's close code and reason, and a refused
 * handshake (reported, as a browser reports it, as `error` then, from
 * Node 24, `close` with 1006, and no status). Node 20 has no global
 * WebSocket: skipped there.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import type { CloseEvent, MessageEvent, WebSocket as UndiciWebSocket } from 'undici'
import fastifyRfc6455 from '../../lib/index.js'
import { closeApp, listen, withTimeout } from '../support/app.js'

/** `globalThis.WebSocket` where Node has it (22 and later); its type is undici's, which Node's is. */
const NodeWebSocket = (globalThis as { WebSocket?: typeof UndiciWebSocket }).WebSocket
const skip = NodeWebSocket === undefined ? `Node ${process.version} has no global WebSocket (it is global from Node 22)` : false

async function start (t: Test): Promise<{ app: FastifyInstance, url: (path: string) => string }> {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(fastifyRfc6455, { protocols: ['chat.v2'] })
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  app.get('/bye', { ws: true }, (socket) => { socket.close(4001, 'bye now') })
  const port = await listen(app)
  return { app, url: (path) => `ws://127.0.0.1:${port}${path}` }
}

/** The next event of `type` on `client`. */
function next<E extends Event> (client: UndiciWebSocket, type: string): Promise<E> {
  return withTimeout(new Promise((resolve) => client.addEventListener(type, (event) => resolve(event as E), { once: true })), type)
}

test('the global WebSocket: text and binary echo, and the subprotocol chosen', { skip }, async (t) => {
  const { url } = await start(t)
  const client = new (NodeWebSocket as typeof UndiciWebSocket)(url('/echo'), ['chat.v1', 'chat.v2'])
  t.teardown(() => client.close())
  client.binaryType = 'arraybuffer'
  await next(client, 'open')
  t.equal(client.protocol, 'chat.v2')
  client.send('héllo')
  t.equal((await next<MessageEvent>(client, 'message')).data, 'héllo')
  client.send(new Uint8Array([0, 1, 2, 255]))
  const binary = (await next<MessageEvent>(client, 'message')).data as ArrayBuffer
  t.same([...new Uint8Array(binary)], [0, 1, 2, 255])
  client.close(1000, 'done')
  const closed = await next<CloseEvent>(client, 'close')
  t.equal(closed.code, 1000)
  t.equal(closed.wasClean, true)
})

test('the global WebSocket: the server\'s close code and reason', { skip }, async (t) => {
  const { url } = await start(t)
  const client = new (NodeWebSocket as typeof UndiciWebSocket)(url('/bye'))
  const closed = await next<CloseEvent>(client, 'close')
  t.equal(closed.code, 4001)
  t.equal(closed.reason, 'bye now')
  t.equal(closed.wasClean, true)
})

/** Node 22's WebSocket fires no `close` after a refused handshake (its readyState stays CONNECTING); Node 24's and 26's do. */
const closesAfterRefusal = Number(process.versions.node.split('.')[0]) >= 24

test('the global WebSocket: a refused handshake is error, then close 1006 (from Node 24), without the status', { skip }, async (t) => {
  const { url } = await start(t)
  const client = new (NodeWebSocket as typeof UndiciWebSocket)(url('/nowhere'))
  const error = next(client, 'error')
  const closed = closesAfterRefusal ? next<CloseEvent>(client, 'close') : undefined
  t.equal((await error).type, 'error')
  if (closed !== undefined) t.equal((await closed).code, 1006)
})
