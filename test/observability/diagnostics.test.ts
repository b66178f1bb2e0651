/**
 * The `node:diagnostics_channel` channels of lib/diagnostics.ts, seen by a
 * subscriber as an APM tool would: over TCP (`ws` and raw node:net clients),
 * HTTP/2 (RFC 8441) and `app.injectWS()`. Byte counts are the frames as on
 * the wire: a client frame with a payload under 126 bytes has a 2-byte header
 * and a 4-byte masking key, a server frame a 2-byte header (RFC 6455 §5.2).
 */
import diagnostics from 'node:diagnostics_channel'
import { once } from 'node:events'
import { constants as http2Constants } from 'node:http2'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { test, type Test } from 'tap'
import WsClient from 'ws'
import fastifyRfc6455, {
  channelNames, type ConnectionCloseMessage, type ConnectionErrorMessage, type ConnectionOpenMessage, HandshakeRefusedError,
  type HandshakeRefusedMessage, ProtocolError, type WebSocket
} from '../../lib/index.js'
import { closeApp, listen, withTimeout } from '../support/app.js'
import { closeBody, connectSession, H2WebSocket, http2App, OP, until } from '../support/http2-client.js'
import type { UpgradeRequestOptions } from '../support/frames.js'
import { RawClients } from '../support/raw-client.js'

/** What each channel carried, in order. */
interface Seen {
  open: ConnectionOpenMessage[]
  close: ConnectionCloseMessage[]
  error: ConnectionErrorMessage[]
  refused: HandshakeRefusedMessage[]
}

const KINDS = ['open', 'close', 'error', 'refused'] as const

/** Subscribes to the four channels until the test ends. */
function collect (t: Test): Seen {
  const seen: Seen = { open: [], close: [], error: [], refused: [] }
  for (const kind of KINDS) {
    const listener = (message: unknown): void => { (seen[kind] as unknown[]).push(message) }
    diagnostics.subscribe(channelNames[kind], listener)
    t.teardown(() => { diagnostics.unsubscribe(channelNames[kind], listener) })
  }
  return seen
}

/** A handler's arguments, kept to compare with what the channels carried. */
interface Handled {
  socket: WebSocket
  request: FastifyRequest
}

/**
 * An app with an echo route `/rooms/:room`, `/private` behind an onRequest
 * hook answering 401, and `/fail` whose message listener throws.
 */
async function build (t: Test, app: FastifyInstance): Promise<Handled[]> {
  const handled: Handled[] = []
  await app.register(fastifyRfc6455)
  app.get('/rooms/:room', { ws: true }, (socket, request) => {
    handled.push({ socket, request })
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString('utf8')))
  })
  app.get('/private', {
    ws: true,
    onRequest: async (request, reply) => {
      if (request.headers.authorization !== 'Bearer ok') return reply.code(401).send('no token')
    }
  }, (socket) => socket.close(1000))
  app.get('/origin-throws', { ws: { origin: () => { throw new Error('origin check failed') } } }, (socket) => socket.close(1000))
  app.get('/fail', { ws: true }, (socket, request) => {
    handled.push({ socket, request })
    socket.on('message', () => { throw new Error('listener failed') })
  })
  t.teardown(() => closeApp(app))
  return handled
}

/** Listens on 127.0.0.1 and returns the port and a set of raw clients reset at teardown. */
async function serve (t: Test, app: FastifyInstance): Promise<{ port: number, raws: RawClients }> {
  const port = await listen(app)
  const raws = new RawClients(port)
  t.teardown(() => { for (const raw of raws) raw.reset() })
  return { port, raws }
}

/** Opens a `ws` client without permessage-deflate (ws offers it by default) and waits for `open`. */
async function wsClient (t: Test, url: string): Promise<WsClient> {
  const client = new WsClient(url, { perMessageDeflate: false })
  t.teardown(() => client.terminate())
  await withTimeout(once(client, 'open'), `open of ${url}`)
  return client
}

test('TCP, a ws client that closes first: open carries socket, request and route; close the rest, initiator client', async (t) => {
  const seen = collect(t)
  const app = Fastify()
  const handled = await build(t, app)
  const handledAtOpen: number[] = []
  const onOpen = (): void => { handledAtOpen.push(handled.length) }
  diagnostics.subscribe(channelNames.open, onOpen)
  t.teardown(() => { diagnostics.unsubscribe(channelNames.open, onOpen) })
  const { port } = await serve(t, app)

  const before = Date.now()
  const client = await wsClient(t, `ws://127.0.0.1:${port}/rooms/lobby`)
  t.equal(seen.open.length, 1, 'one open message')
  t.same(handledAtOpen, [0], 'published before the route\'s handler ran')
  const [{ socket, request }] = handled
  const open = seen.open[0]
  t.equal(open.socket, socket, 'open.socket is the socket the handler got')
  t.equal(open.request, request, 'open.request is the handshake request the handler got')
  t.equal(open.route, '/rooms/:room', 'open.route is the URL pattern')
  t.same(open.request.params, { room: 'lobby' }, 'the request carries the params')

  client.send('hello')
  const [echo] = await withTimeout(once(client, 'message'), 'the echo') as [Buffer]
  t.equal(echo.toString(), 'hello')
  client.close(1000, 'bye')
  await withTimeout(once(client, 'close'), 'the client close')
  await until(() => seen.close.length === 1, 'the close message')
  const close = seen.close[0]
  t.equal(close.socket, socket)
  t.equal(close.route, '/rooms/:room')
  t.equal(close.requestId, request.id, 'close.requestId is request.id')
  t.equal(close.code, 1000)
  t.equal(close.reason, 'bye')
  t.equal(close.initiator, 'client')
  t.ok(close.duration >= 0 && close.duration <= Date.now() - before, `duration ${close.duration} ms is within the test's span`)
  // In: "hello" 2+4+5, close 1000 "bye" 2+4+2+3. Out: "hello" 2+5, close 1000 echoed without a reason 2+2.
  t.same(close.stats, { messagesIn: 1, messagesOut: 1, bytesIn: 11 + 11, bytesOut: 7 + 4 })
  t.same(seen.error, [], 'no error message')
  t.same(seen.refused, [], 'no refused message')
})

test('TCP, raw client: socket.close() makes the server the initiator; the code is the peer\'s echo', async (t) => {
  const seen = collect(t)
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/bye', { ws: true }, (socket) => {
    socket.on('message', () => {
      socket.send('ok')
      socket.close(4000, 'done')
    })
  })
  t.teardown(() => closeApp(app))
  const { raws } = await serve(t, app)
  const raw = await raws.webSocket('/bye')
  raw.sendFrame(OP.binary, Buffer.from([1, 2, 3]))
  t.equal((await raw.readFrame()).bytes.length, 4, '"ok": 2 + 2 bytes')
  const closeFrame = await raw.readFrame()
  t.same([closeFrame.opcode, closeFrame.payload.readUInt16BE(0), closeFrame.payload.subarray(2).toString()], [OP.close, 4000, 'done'])
  raw.sendFrame(OP.close, closeBody(4000))
  await raw.waitForEnd()
  raw.end()
  await until(() => seen.close.length === 1, 'the close message')
  const close = seen.close[0]
  t.same([close.route, close.code, close.reason, close.initiator], ['/bye', 4000, '', 'server'])
  // In: binary 2+4+3, close 4000 2+4+2. Out: "ok" 2+2, close 4000 "done" 2+2+4.
  t.same(close.stats, { messagesIn: 1, messagesOut: 1, bytesIn: 9 + 8, bytesOut: 4 + 8 })
})

test('TCP: app.close() closes with 1001, initiator server', async (t) => {
  const seen = collect(t)
  const app = Fastify()
  await build(t, app)
  const { port } = await serve(t, app)
  const client = await wsClient(t, `ws://127.0.0.1:${port}/rooms/shutdown`)
  const closed = once(client, 'close')
  await withTimeout(app.close(), 'app.close()')
  await withTimeout(closed, 'the client close')
  t.equal(seen.close.length, 1, 'published before app.close() resolved')
  const close = seen.close[0]
  // ws echoes the code and the reason.
  t.same([close.code, close.reason, close.initiator], [1001, 'server shutting down', 'server'])
  // "server shutting down" is 20 bytes: in 2+4+2+20, out 2+2+20.
  t.same(close.stats, { messagesIn: 0, messagesOut: 0, bytesIn: 28, bytesOut: 24 })
})

for (const [how, end] of [['destroys its socket (FIN)', 'destroy'], ['resets its socket (RST)', 'reset']] as const) {
  test(`TCP: a client that ${how} without a close frame: code 1006, initiator null`, async (t) => {
    const seen = collect(t)
    const app = Fastify()
    await build(t, app)
    const { raws } = await serve(t, app)
    const raw = await raws.webSocket('/rooms/gone')
    raw.sendFrame(OP.text, 'hello')
    t.equal((await raw.readFrame()).payload.toString(), 'hello')
    raw[end]()
    await until(() => seen.close.length === 1, 'the close message')
    const close = seen.close[0]
    t.same([close.code, close.reason, close.initiator], [1006, '', null])
    t.same(close.stats, { messagesIn: 1, messagesOut: 1, bytesIn: 11, bytesOut: 7 })
    t.same(seen.error, [], 'the peer going away is not an error')
  })
}

test('error: invalid UTF-8 (1007) and a throwing listener (1011) carry the error, its code and the close code', async (t) => {
  const seen = collect(t)
  const app = Fastify()
  const handled = await build(t, app)
  const { raws } = await serve(t, app)

  const raw = await raws.webSocket('/rooms/utf8')
  raw.sendFrame(OP.text, Buffer.from([0x68, 0xff]))
  const frame = await raw.readFrame()
  t.same([frame.opcode, frame.payload.readUInt16BE(0)], [OP.close, 1007], 'the server sent 1007')
  await until(() => seen.error.length === 1, 'the error message')
  const error = seen.error[0]
  t.equal(error.socket, handled[0].socket)
  t.same([error.route, error.requestId], ['/rooms/:room', handled[0].request.id])
  t.ok(error.error instanceof ProtocolError, 'error is a ProtocolError')
  t.same([error.code, error.closeCode, error.error.code, error.error.closeCode], ['WS_ERR_INVALID_UTF8', 1007, 'WS_ERR_INVALID_UTF8', 1007])
  raw.sendFrame(OP.close, closeBody(1007))
  await raw.waitForEnd()
  raw.end()
  await until(() => seen.close.length === 1, 'the close message')
  // A failed connection reads nothing more (RFC 6455 §7.1.7): the peer's close frame is not processed.
  t.same([seen.close[0].code, seen.close[0].initiator], [1006, 'server'], 'a failure makes the server the initiator')
  t.same(seen.close[0].stats, { messagesIn: 0, messagesOut: 0, bytesIn: 8 + 8, bytesOut: frame.bytes.length },
    'the refused message is not counted; its bytes are')

  const failing = await raws.webSocket('/fail')
  failing.sendFrame(OP.text, 'x')
  t.equal(await failing.readCloseCode(), 1011, 'the server sent 1011')
  await until(() => seen.error.length === 2, 'the second error message')
  const internal = seen.error[1]
  t.same([internal.route, internal.code, internal.closeCode], ['/fail', 'WS_ERR_INTERNAL', 1011])
  t.equal((internal.error.cause as Error).message, 'listener failed', 'error.cause is what the listener threw')
  t.equal(seen.error.length, 2, 'one message per failure')
})

test('refused over TCP: status and reason for the plugin\'s refusals and a hook\'s', async (t) => {
  const seen = collect(t)
  const app = Fastify()
  await build(t, app)
  const { port, raws } = await serve(t, app)
  const cases: Array<[string, string, UpgradeRequestOptions, number, string]> = [
    ['no Sec-WebSocket-Key', '/rooms/a', { omit: ['sec-websocket-key'] }, 400, 'Sec-WebSocket-Key must be the base64 of 16 bytes'],
    ['no Connection: Upgrade (Node sees plain HTTP)', '/rooms/a', { omit: ['connection'] }, 400, 'Connection header must include "Upgrade"'],
    ['an Origin of another host', '/rooms/a', { set: { Origin: 'https://elsewhere.example' } }, 403, 'Origin not allowed'],
    ['a path with no route', '/nowhere', {}, 404, 'Not Found'],
    ['POST', '/rooms/a', { method: 'POST' }, 405, 'WebSocket handshake must use GET'],
    ['an onRequest hook', '/private', {}, 401, 'Unauthorized'],
    ['an origin check that throws', '/origin-throws', { set: { Origin: 'https://elsewhere.example' } }, 500, 'Internal Server Error']
  ]
  for (const [label, path, request, status, reason] of cases) {
    const count = seen.refused.length + 1
    const raw = await raws.connect()
    const response = await raw.handshake(path, request)
    t.equal(response.status, status, `${label}: answered ${status}`)
    await until(() => seen.refused.length >= count, `${label}: the refused message`)
    const refused = seen.refused[count - 1]
    t.same([refused.status, refused.reason, refused.request.url], [status, reason, path], `${label}: status, reason, request`)
    raw.reset()
  }
  await wsClient(t, `ws://127.0.0.1:${port}/rooms/ok`)
  t.equal(seen.refused.length, cases.length, 'one message per refusal, none for a handshake answered 101')
  t.equal(seen.open.length, 1)
})

test('HTTP/2: open and close on a stream, refusals 405, 404, 400 and a hook\'s, a reset stream', async (t) => {
  const seen = collect(t)
  const app = http2App()
  const handled = await build(t, app)
  const port = await listen(app)
  const session = await connectSession(port)
  t.teardown(() => session.destroy())

  const ws = await H2WebSocket.open(session, '/rooms/h2')
  t.equal(ws.status, 200)
  t.same([seen.open.length, seen.open[0].route, seen.open[0].socket === handled[0].socket], [1, '/rooms/:room', true])
  ws.send(OP.text, 'hello')
  t.equal((await ws.nextFrame()).payload.toString(), 'hello')
  ws.send(OP.close, closeBody(1000, 'h2'))
  t.equal(await ws.closeCode(), 1000)
  await until(() => seen.close.length === 1, 'the close message')
  const close = seen.close[0]
  t.same([close.route, close.requestId, close.code, close.reason, close.initiator], ['/rooms/:room', handled[0].request.id, 1000, 'h2', 'client'])
  // In: "hello" 2+4+5, close 1000 "h2" 2+4+2+2. Out: "hello" 2+5, close 1000 2+2.
  t.same(close.stats, { messagesIn: 1, messagesOut: 1, bytesIn: 11 + 10, bytesOut: 7 + 4 })

  const cases: Array<[string, string, Parameters<typeof H2WebSocket.open>[2], number, string]> = [
    ['another :protocol', '/rooms/a', { headers: { ':protocol': 'connect-udp' } }, 405, 'CONNECT is allowed only with :protocol websocket (RFC 8441)'],
    ['a path with no route', '/nowhere', {}, 404, 'Not Found'],
    ['a malformed Sec-WebSocket-Protocol', '/rooms/a', { protocols: 'a b' }, 400, 'malformed Sec-WebSocket-Protocol header'],
    ['an onRequest hook', '/private', {}, 401, 'Unauthorized']
  ]
  for (const [label, path, options, status, reason] of cases) {
    const count = seen.refused.length + 1
    const refusedStream = await H2WebSocket.open(session, path, options)
    t.equal(refusedStream.status, status, `${label}: :status ${status}`)
    await refusedStream.reason()
    await until(() => seen.refused.length >= count, `${label}: the refused message`)
    const refused = seen.refused[count - 1]
    t.same([refused.status, refused.reason, refused.request.url], [status, reason, path], `${label}: status, reason, request`)
  }
  const reset = await H2WebSocket.open(session, '/rooms/reset')
  t.equal(reset.status, 200)
  t.equal(seen.refused.length, cases.length, 'one message per refusal, none for :status 200')
  reset.stream.close(http2Constants.NGHTTP2_CANCEL)
  await until(() => seen.close.length === 2, 'the close message of the reset stream')
  t.same([seen.close[1].code, seen.close[1].initiator], [1006, null], 'RST_STREAM: no close frame, no initiator')
})

test('injectWS: open, close and refusals over the in-memory pair', async (t) => {
  const seen = collect(t)
  const app = Fastify()
  const handled = await build(t, app)
  const client = await app.injectWS('/rooms/mem')
  t.same([seen.open.length, seen.open[0].route, seen.open[0].request === handled[0].request], [1, '/rooms/:room', true])
  client.send('hello')
  await withTimeout(once(client, 'message'), 'the echo')
  client.close(1000)
  await withTimeout(once(client, 'close'), 'the client close')
  await until(() => seen.close.length === 1, 'the close message')
  const close = seen.close[0]
  t.same([close.code, close.reason, close.initiator], [1000, '', 'client'])
  t.same(close.stats, { messagesIn: 1, messagesOut: 1, bytesIn: 11 + 8, bytesOut: 7 + 4 })

  for (const [path, status, reason] of [['/nowhere', 404, 'Not Found'], ['/private', 401, 'Unauthorized']] as const) {
    const count = seen.refused.length + 1
    const error = await withTimeout(app.injectWS(path).then(() => null, (error: unknown) => error), `the refusal of ${path}`)
    t.ok(error instanceof HandshakeRefusedError && error.statusCode === status, `${path}: rejects with ${status}`)
    await until(() => seen.refused.length >= count, `${path}: the refused message`)
    t.same([seen.refused[count - 1].status, seen.refused[count - 1].reason, seen.refused[count - 1].request.url], [status, reason, path])
  }
  t.equal(seen.refused.length, 2)
})

test('a subscriber that throws: Node reports it as uncaughtException on the next tick; the connection carries on', async (t) => {
  // Node 20's Channel.publish catches a subscriber's throw and rethrows it with
  // process.nextTick: the plugin's code after publish() runs as if nothing happened.
  t.equal(process.hasUncaughtExceptionCaptureCallback(), false, 'nothing else captures uncaught exceptions')
  const uncaught: string[] = []
  process.setUncaughtExceptionCaptureCallback((error) => { uncaught.push((error as Error).message) })
  t.teardown(() => { process.setUncaughtExceptionCaptureCallback(null) })
  for (const kind of KINDS) {
    const thrower = (): void => { throw new Error(`${kind} subscriber failed`) }
    diagnostics.subscribe(channelNames[kind], thrower)
    t.teardown(() => { diagnostics.unsubscribe(channelNames[kind], thrower) })
  }
  const seen = collect(t)
  const app = Fastify()
  const handled = await build(t, app)
  const { raws } = await serve(t, app)

  const raw = await raws.webSocket('/rooms/throwing')
  t.equal(seen.open.length, 1, 'the subscribers after the throwing one still get the message')
  raw.sendFrame(OP.text, 'hello')
  t.equal((await raw.readFrame()).payload.toString(), 'hello', 'the handler ran and the socket echoes')
  raw.sendFrame(OP.text, Buffer.from([0xff]))
  t.equal(await raw.readCloseCode(), 1007, 'a failure still sends its close code')
  raw.end()
  await until(() => seen.close.length === 1, 'the close message')
  t.equal(handled[0].socket.readyState, 3, 'the socket reached CLOSED')
  t.equal(app.websocketClients.size, 0, 'and left the registry')
  t.equal((await (await raws.connect()).handshake('/nowhere')).status, 404, 'a refusal is still answered')
  await until(() => uncaught.length === 4, 'the four subscriber errors')
  t.same(uncaught, ['open subscriber failed', 'error subscriber failed', 'close subscriber failed', 'refused subscriber failed'])
})

test('unsubscribing stops publishing', async (t) => {
  const app = Fastify()
  await build(t, app)
  const opened: string[] = []
  const listener = (message: unknown): void => { opened.push((message as ConnectionOpenMessage).request.url) }
  const channel = diagnostics.channel(channelNames.open)
  diagnostics.subscribe(channelNames.open, listener)
  const first = await app.injectWS('/rooms/one')
  t.same(opened, ['/rooms/one'])
  t.ok(diagnostics.unsubscribe(channelNames.open, listener), 'unsubscribed')
  t.equal(channel.hasSubscribers, false)
  const second = await app.injectWS('/rooms/two')
  second.send('still echoes')
  t.equal((await withTimeout(once(second, 'message'), 'the echo') as [Buffer])[0].toString(), 'still echoes')
  t.same(opened, ['/rooms/one'], 'no message for the second socket')
  first.close(1000)
  second.close(1000)
})
