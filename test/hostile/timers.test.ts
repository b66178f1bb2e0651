/**
 * Idle and half-open connections: idleTimeout (route or plugin option, ms)
 * closes a silent connection with 1001 and closeTimeout bounds a peer that
 * never answers the close frame; heartbeatInterval (plugin option, ms) pings
 * every connection and terminates one whose pong has not come back by the
 * next ping.
 */
import { test } from 'tap'
import { WebSocket as UndiciWebSocket } from 'undici'
import {
  assertStillServes, clientFrame, closeBody, deferred, echoOn, Opcode, RawClient, sleep, startServer, until, within
} from './helpers.js'

/** A route that records each connection's close event under its `:name` param. */
function watchedRoute (closes: Map<string, [number, string]>, pongs?: Map<string, number>) {
  return (app: import('fastify').FastifyInstance): void => {
    app.get<{ Params: { name: string } }>('/watched/:name', { ws: true }, (socket, request) => {
      const name = request.params.name
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
      socket.on('pong', () => pongs?.set(name, (pongs.get(name) ?? 0) + 1))
      socket.on('close', (code, reason) => closes.set(name, [code, reason]))
    })
  }
}

test('idleTimeout: a silent connection gets close 1001, and the close handshake completes', async (t) => {
  const closes = new Map<string, [number, string]>()
  const server = await startServer(t, { plugin: { idleTimeout: 300, closeTimeout: 300 }, routes: watchedRoute(closes) })
  const client = await RawClient.open(server.port, '/watched/polite')
  t.same(await client.waitCloseFrame(3000), { code: 1001, reason: 'idle timeout' })
  t.equal(client.frames.length, 1, 'nothing but the close frame')
  client.write(clientFrame(Opcode.Close, closeBody(1001)))
  await client.waitClosed()
  await until(() => closes.has('polite'), 3000, 'server close event')
  t.same(closes.get('polite'), [1001, ''], 'close event: the client\'s close code')
  await assertStillServes(t, server)
})

test('idleTimeout then closeTimeout: a peer that never answers the close frame is dropped (1006)', async (t) => {
  const closes = new Map<string, [number, string]>()
  const server = await startServer(t, { plugin: { idleTimeout: 300, closeTimeout: 300 }, routes: watchedRoute(closes) })
  const client = await RawClient.open(server.port, '/watched/mute')
  t.same(await client.waitCloseFrame(3000), { code: 1001, reason: 'idle timeout' })
  await until(() => closes.has('mute'), 3000, 'server close event')
  t.same(closes.get('mute'), [1006, ''], 'close event 1006: no close frame came back')
  await client.waitClosed()
  await assertStillServes(t, server)
})

test('idleTimeout counts activity: a connection that talks stays open', async (t) => {
  const closes = new Map<string, [number, string]>()
  const server = await startServer(t, {
    routes (app) {
      app.get('/chatty', { ws: { idleTimeout: 600, closeTimeout: 300 } }, (socket) => {
        socket.on('close', (code, reason) => closes.set('chatty', [code, reason]))
      })
    }
  })
  const client = await RawClient.open(server.port, '/chatty')
  for (let i = 0; i < 20; i++) {
    client.write(clientFrame(Opcode.Ping, `${i}`))
    await sleep(50)
  }
  t.equal(client.closeFrame(), undefined, 'no close frame during 1 s of pings every 50 ms')
  t.same(client.frames.map((frame) => frame.payload.toString()), Array.from({ length: 20 }, (_, i) => `${i}`), 'every pong')
  t.same(await client.waitCloseFrame(3000), { code: 1001, reason: 'idle timeout' }, 'then silence: 1001')
  client.destroy()
  await assertStillServes(t, server)
})

test('heartbeatInterval: a client that answers pings stays open; one that never does is terminated (1006)', async (t) => {
  const interval = 100
  const closes = new Map<string, [number, string]>()
  const pongs = new Map<string, number>()
  const server = await startServer(t, { plugin: { heartbeatInterval: interval }, routes: watchedRoute(closes, pongs) })

  // undici answers pings by itself (RFC 6455 §5.5.2).
  const answering = new UndiciWebSocket(`ws://127.0.0.1:${server.port}/watched/answering`)
  const answeringClosed = deferred<number>()
  answering.onclose = (event) => answeringClosed.resolve(event.code)
  await within(new Promise((resolve, reject) => {
    answering.onopen = resolve
    answering.onerror = () => reject(new Error('undici client error'))
  }), 5000, 'undici open')

  const silent = await RawClient.open(server.port, '/watched/silent')
  const opened = Date.now()
  await until(() => closes.has('silent'), 30 * interval, 'the silent client is terminated')
  t.comment(`silent client terminated ${Date.now() - opened} ms after its handshake (interval ${interval} ms), after ${silent.frames.length} ping(s)`)
  t.same(closes.get('silent'), [1006, ''], 'close event 1006: terminated without a close frame')
  t.ok(silent.frames.length >= 1, 'the silent client got a ping')
  t.same(silent.frames.map((frame) => [frame.opcode, frame.payload.length]), silent.frames.map(() => [Opcode.Ping, 0]), 'only empty pings')
  await silent.waitClosed()

  await until(() => (pongs.get('answering') ?? 0) >= 5, 50 * interval, 'five pongs from the answering client')
  t.equal(closes.has('answering'), false, 'the answering client is still open after five intervals')
  t.equal(answering.readyState, UndiciWebSocket.OPEN)
  const echo = await echoOn(answering, 'alive', 'echo on the answering client')
  t.equal(echo, 'alive', 'and still echoes')
  answering.close(1000)
  t.equal(await within(answeringClosed.promise, 5000, 'undici close'), 1000)
  await assertStillServes(t, server)
})
