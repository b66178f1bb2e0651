/**
 * Many WebSockets on one HTTP/2 connection: a failing stream harms no other,
 * a peer that stops reading is bounded by maxBackpressure, RST_STREAM both
 * ways, a session that goes away closes its sockets with 1006 and leaks
 * nothing, idle timeout, and app.close() sends 1001 without hanging on the
 * HTTP/2 connection.
 */
import { constants } from 'node:http2'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import fastifyRfc6455, { type FastifyRfc6455Options } from '../../lib/index.js'
import { closeApp, listen, withTimeout } from '../support/app.js'
import { clientFrame } from '../support/frames.js'
import { closeBody, connectSession, H2WebSocket, http2App, OP, until } from '../support/http2-client.js'

interface Events {
  closes: number[]
  errors: number[]
}

async function start (t: Test, options: FastifyRfc6455Options = {}): Promise<{ app: FastifyInstance, port: number, events: Events }> {
  const app = http2App()
  await app.register(fastifyRfc6455, options)
  const events: Events = { closes: [], errors: [] }
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('error', (error) => events.errors.push(error.closeCode))
    socket.on('close', (code) => events.closes.push(code))
    socket.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'terminate') socket.terminate()
      else socket.send(isBinary ? data : data.toString())
    })
  })
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  return { app, port, events }
}

test('100 WebSockets on one HTTP/2 connection; one fails with 1002, the others carry on', async (t) => {
  const { app, port, events } = await start(t)
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const sockets = await Promise.all(Array.from({ length: 100 }, () => H2WebSocket.open(session, '/echo')))
  t.equal(app.websocketClients.size, 100, '100 open WebSockets')
  t.ok(sockets.every((ws) => ws.status === 200), 'all opened with :status 200')

  const bad = sockets[42]
  // An unmasked client frame: "the server MUST close the connection" with 1002 (RFC 6455 §5.1).
  bad.write(Buffer.from([0x81, 0x02, 0x68, 0x69]))
  t.equal(await bad.closeCode('the 1002 close frame'), 1002, 'the misbehaving stream gets 1002')
  await withTimeout(bad.closed, 'the failed stream closes')

  const others = sockets.filter((ws) => ws !== bad)
  for (const [i, ws] of others.entries()) ws.send(OP.text, `message ${i}`)
  const echoes = await Promise.all(others.map(async (ws) => (await ws.nextFrame()).payload.toString()))
  t.same(echoes, others.map((_ws, i) => `message ${i}`), 'the 99 others echo, each its own message')
  t.same(events.errors, [1002], 'one error, on the misbehaving socket')
  t.notOk(session.destroyed, 'the HTTP/2 connection is untouched')
  for (const ws of others) ws.send(OP.close, closeBody(1000))
  await Promise.all(others.map((ws) => ws.closed))
  await until(() => app.websocketClients.size === 0, 'every socket to leave the registry')
})

test('a peer that stops reading is bounded by maxBackpressure, through HTTP/2 flow control', async (t) => {
  const app = http2App()
  await app.register(fastifyRfc6455, { highWaterMark: 64 * 1024, maxBackpressure: 256 * 1024, closeTimeout: 200 })
  let failed = -1
  let peak = 0
  app.get('/flood', { ws: true }, (socket) => {
    socket.on('error', (error) => { failed = error.closeCode })
    const chunk = Buffer.alloc(32 * 1024, 1)
    const flood = (): void => {
      if (socket.readyState !== 1) return
      socket.send(chunk)
      peak = Math.max(peak, socket.bufferedAmount)
      setImmediate(flood)
    }
    flood()
  })
  app.get('/echo', { ws: true }, (socket) => socket.on('message', (data) => socket.send(data.toString())))
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  const session = await connectSession(port)
  t.teardown(() => session.destroy())

  const flooded = await H2WebSocket.open(session, '/flood')
  flooded.stream.pause()
  await until(() => failed !== -1, 'the server to fail the flooding socket')
  t.equal(failed, 1008, 'past maxBackpressure the socket fails with 1008')
  t.ok(peak <= 256 * 1024 + 32 * 1024, `the backlog stayed under maxBackpressure plus one message (peak ${peak} bytes)`)
  t.equal(await withTimeout(flooded.closed, 'the stream to be aborted'), constants.NGHTTP2_CANCEL,
    'the peer never read the close frame: RST_STREAM CANCEL after closeTimeout (RFC 8441 §5)')

  const echo = await H2WebSocket.open(session, '/echo')
  echo.send(OP.text, 'after the flood')
  t.equal((await echo.nextFrame()).payload.toString(), 'after the flood', 'the connection carries another WebSocket')
})

test('send() returns false past highWaterMark, and drain follows once the stream has written its backlog', async (t) => {
  const app = http2App()
  await app.register(fastifyRfc6455, { highWaterMark: 64 * 1024 })
  let drained = false
  let sent = 0
  app.get('/burst', { ws: true }, (socket) => {
    const chunk = Buffer.alloc(16 * 1024, 2)
    while (socket.send(chunk)) sent++
    sent++
    socket.once('drain', () => {
      drained = true
      socket.send('done')
    })
  })
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const ws = await H2WebSocket.open(session, '/burst')
  let frames = 0
  for (;;) {
    const frame = await ws.nextFrame('the burst, then "done"')
    if (frame.opcode === OP.text) {
      t.equal(frame.payload.toString(), 'done')
      break
    }
    frames++
  }
  t.ok(sent >= 4, `send() took ${sent} messages of 16 KiB before returning false`)
  t.equal(frames, sent, 'every message arrived before "done"')
  t.ok(drained, "'drain' fired once the stream's backlog was written")
})

test('RST_STREAM both ways: terminate() sends CANCEL, a client reset is 1006', async (t) => {
  const { app, port, events } = await start(t)
  const session = await connectSession(port)
  t.teardown(() => session.destroy())

  const killed = await H2WebSocket.open(session, '/echo')
  killed.send(OP.text, 'terminate')
  t.equal(await withTimeout(killed.closed, 'the reset'), constants.NGHTTP2_CANCEL, 'terminate() is RST_STREAM CANCEL')
  await until(() => events.closes.length === 1, 'the close event')
  t.same(events.closes, [1006])

  const reset = await H2WebSocket.open(session, '/echo')
  reset.stream.close(constants.NGHTTP2_CANCEL)
  await until(() => events.closes.length === 2, 'the close event')
  t.same(events.closes, [1006, 1006], 'a client RST_STREAM is 1006, as a TCP reset')
  t.equal(app.websocketClients.size, 0)

  const alive = await H2WebSocket.open(session, '/echo')
  alive.send(OP.text, 'still')
  t.equal((await alive.nextFrame()).payload.toString(), 'still', 'the connection carries on')
})

for (const [label, end] of [
  ['a GOAWAY with an error code', (session: Awaited<ReturnType<typeof connectSession>>) => session.goaway(constants.NGHTTP2_INTERNAL_ERROR)],
  ['a reset of the TCP connection', (session: Awaited<ReturnType<typeof connectSession>>) => session.socket.resetAndDestroy()]
] as const) {
  test(`${label} closes every WebSocket of the session with 1006 and leaks nothing`, async (t) => {
    const { app, port, events } = await start(t)
    const session = await connectSession(port)
    t.teardown(() => session.destroy())
    const sockets = await Promise.all(Array.from({ length: 5 }, () => H2WebSocket.open(session, '/echo')))
    sockets[0].send(OP.text, 'hello')
    await sockets[0].nextFrame()
    end(session)
    await until(() => events.closes.length === 5, 'five close events')
    t.same(events.closes, [1006, 1006, 1006, 1006, 1006])
    t.equal(app.websocketClients.size, 0, 'the registry is empty')
  })
}

test('idle timeout closes an HTTP/2 WebSocket with 1001', async (t) => {
  const { port } = await start(t, { idleTimeout: 100 })
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  const ws = await H2WebSocket.open(session, '/echo')
  t.equal(await ws.closeCode('the idle close'), 1001)
})

test('app.close() sends 1001 to every WebSocket over HTTP/2 and does not wait for the HTTP/2 connection', async (t) => {
  const { app, port } = await start(t)
  const session = await connectSession(port)
  t.teardown(() => session.destroy())
  let goaway = false
  session.on('goaway', () => { goaway = true })
  const sockets = await Promise.all(Array.from({ length: 3 }, () => H2WebSocket.open(session, '/echo')))
  const closing = app.close()
  const codes = await Promise.all(sockets.map(async (ws) => {
    const code = await ws.closeCode('the 1001 close frame')
    ws.write(clientFrame(OP.close, closeBody(code)))
    return code
  }))
  t.same(codes, [1001, 1001, 1001], 'every socket got 1001 (Going Away)')
  await withTimeout(closing, 'app.close()')
  t.ok(goaway, 'the server sent GOAWAY on the connection')
})

test('a stream reset while the hooks run is abandoned: no handler, no socket, the connection carries on', async (t) => {
  const app = http2App()
  await app.register(fastifyRfc6455)
  let handled = 0
  let hookDone!: () => void
  const hookRan = new Promise<void>((resolve) => { hookDone = resolve })
  app.get('/slow', {
    ws: true,
    preHandler: async () => {
      await new Promise((resolve) => setTimeout(resolve, 100))
      hookDone()
    }
  }, () => { handled++ })
  app.get('/echo', { ws: true }, (socket) => socket.on('message', (data) => socket.send(data.toString())))
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  const session = await connectSession(port)
  t.teardown(() => session.destroy())

  const stream = session.request({
    ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/slow', ':authority': '127.0.0.1', 'sec-websocket-version': '13'
  }, { endStream: false })
  stream.on('error', () => {})
  setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), 20)
  await withTimeout(hookRan, 'the hook to finish')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(handled, 0, 'the handler never ran')
  t.equal(app.websocketClients.size, 0, 'no socket was opened')
  const echo = await H2WebSocket.open(session, '/echo')
  echo.send(OP.text, 'next')
  t.equal((await echo.nextFrame()).payload.toString(), 'next', 'the connection carries on')
})
