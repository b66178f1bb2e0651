/**
 * `for await (const message of socket)`: order, end on close, leaving the
 * loop (1000, 1011 on a throw, or nothing with closeOnReturn: false), the
 * one-consumer rule, and backpressure with a slow loop body, on real
 * sockets with undici's and ws's clients.
 */
import type { Socket } from 'node:net'
import Fastify from 'fastify'
import tap from 'tap'
import WsClient from 'ws'
import fastifyRfc6455, { type WebSocket, type WebSocketMessage } from '../../lib/index.js'
import { closeApp, delay, listen, withTimeout } from '../support/app.js'
import { start } from '../integration/helpers.js'

/** A promise and its resolve function. */
function deferred<T> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

tap.test('yields every message in order, text and binary, and ends when the connection closes', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const seen: Array<[string, boolean]> = []
  const ended = deferred<number>()
  app.get('/iterate', { ws: true }, async (socket) => {
    for await (const { data, isBinary } of socket) seen.push([data.toString(), isBinary])
    ended.resolve(socket.readyState)
  })
  const harness = await start(t, app)
  const client = await harness.client('/iterate')
  client.send('one')
  client.send(new TextEncoder().encode('two'))
  client.send('three')
  client.ws.close(1000)
  t.equal(await withTimeout(ended.promise, 'the end of the loop'), 3, 'the loop ends once the socket is CLOSED')
  t.same(seen, [['one', false], ['two', true], ['three', false]])
})

tap.test('messages that arrive before the loop starts (after an await) are yielded, none lost', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const gate = deferred<void>()
  app.get('/late', { ws: true }, async (socket) => {
    await gate.promise
    let count = 0
    for await (const { data } of socket) {
      socket.send(`${++count}:${data.toString()}`)
      if (count === 3) break
    }
  })
  const harness = await start(t, app)
  const client = await harness.client('/late')
  client.send('a')
  client.send('b')
  client.send('c')
  await delay(50)
  gate.resolve()
  t.equal(await client.nextMessage(), '1:a')
  t.equal(await client.nextMessage(), '2:b')
  t.equal(await client.nextMessage(), '3:c')
  t.equal((await client.waitClose()).code, 1000, 'break closed with 1000 after the sends')
})

tap.test('break closes the connection with 1000', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/break', { ws: true }, async (socket) => {
    for await (const message of socket) {
      if (message.data.toString() === 'stop') break
    }
  })
  const harness = await start(t, app)
  const client = await harness.client('/break')
  client.send('go on')
  client.send('stop')
  const close = await client.waitClose()
  t.equal(close.code, 1000)
})

tap.test('a throw out of the loop closes with 1011 and is logged once', async (t) => {
  const records: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { records.push(JSON.parse(line)) } } } })
  await app.register(fastifyRfc6455)
  app.get('/throw', { ws: true }, async (socket) => {
    for await (const message of socket) {
      if (message.data.toString() === 'boom') throw new Error('loop body failed')
    }
  })
  const harness = await start(t, app)
  const client = await harness.client('/throw')
  client.send('fine')
  client.send('boom')
  t.equal((await client.waitClose()).code, 1011)
  const logged = records.filter((record) => (record.err as { message?: string } | undefined)?.message === 'loop body failed')
  t.equal(logged.length, 1)
})

tap.test('closeOnReturn: false keeps the connection; later messages go to the message listeners', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/keep', { ws: true }, async (socket) => {
    for await (const { data } of socket.messages({ closeOnReturn: false })) {
      socket.send(`loop:${data.toString()}`)
      break
    }
    socket.on('message', (data) => socket.send(`listener:${data.toString()}`))
  })
  const harness = await start(t, app)
  const client = await harness.client('/keep')
  client.send('first')
  t.equal(await client.nextMessage(), 'loop:first')
  client.send('second')
  t.equal(await client.nextMessage(), 'listener:second')
  t.equal(client.ws.readyState, client.ws.OPEN)
})

tap.test('while an iterator is active it takes the messages; a second one throws FST_WS_ITERATOR_ACTIVE', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const result = deferred<unknown>()
  app.get('/one', { ws: true }, async (socket) => {
    socket.on('message', (data) => socket.send(`listener:${data.toString()}`))
    const iterator = socket.messages()
    try {
      socket.messages()
    } catch (error) {
      result.resolve((error as { code: string }).code)
    }
    const first = await iterator.next()
    socket.send(`iterator:${(first.value as WebSocketMessage).data.toString()}`)
    await iterator.return?.()
  })
  const harness = await start(t, app)
  const client = await harness.client('/one')
  t.equal(await withTimeout(result.promise, 'the second iterator'), 'FST_WS_ITERATOR_ACTIVE')
  client.send('x')
  t.equal(await client.nextMessage(), 'iterator:x', 'the listener did not get it')
  t.equal((await client.waitClose()).code, 1000, 'return() closed the connection')
})

tap.test('a slow loop body pauses reading from the peer: memory stays bounded, nothing is lost', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const gate = deferred<void>()
  const server = deferred<{ socket: WebSocket, tcp: Socket }>()
  const total = deferred<number>()
  app.get('/slow', { ws: true }, async (socket, request) => {
    server.resolve({ socket, tcp: request.raw.socket as Socket })
    let count = 0
    let inOrder = true
    for await (const { data } of socket) {
      if (count === 0) await gate.promise
      if (data.readUInt32BE(0) !== count) inOrder = false
      count++
    }
    total.resolve(inOrder ? count : -1)
  })
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  const client = new WsClient(`ws://127.0.0.1:${port}/slow`)
  await withTimeout(new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) }), 'open')
  const { tcp } = await withTimeout(server.promise, 'the handler')

  const messages = 2000
  const size = 16 * 1024
  for (let i = 0; i < messages; i++) {
    const payload = Buffer.alloc(size)
    payload.writeUInt32BE(i, 0)
    client.send(payload)
  }
  const sent = messages * (size + 8)
  // Wait until the server has stopped reading: its byte count no longer moves.
  let read = -1
  while (read !== tcp.bytesRead) {
    read = tcp.bytesRead
    await delay(100)
  }
  t.ok(read < sent / 2, `the server read ${read} of ${sent} bytes while the loop body waited`)
  t.ok(client.bufferedAmount > 0, `the client holds ${client.bufferedAmount} unsent bytes`)

  gate.resolve()
  client.close(1000)
  t.equal(await withTimeout(total.promise, 'every message', 20_000), messages, 'every message, in order')
})

tap.test('app.close() ends a waiting loop: the client sees 1001, the handler finishes', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const finished = deferred<number>()
  app.get('/wait', { ws: true }, async (socket) => {
    let count = 0
    for await (const message of socket) count += message.data.length
    finished.resolve(count)
  })
  const harness = await start(t, app)
  const client = await harness.client('/wait')
  client.send('abc')
  await delay(50)
  await withTimeout(app.close(), 'app.close()')
  t.equal((await client.waitClose()).code, 1001)
  t.equal(await withTimeout(finished.promise, 'the handler'), 3)
})
