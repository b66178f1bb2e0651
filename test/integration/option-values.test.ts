/**
 * What 0 means in the options (no limit, or off, as in `ws`; closeTimeout
 * refuses it), `origin` as a single string, and an option error that shows
 * a huge value (an http.Server) in a few words.
 */
import { createServer } from 'node:http'
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { start } from './helpers.js'

test('maxPayload: 0 is no limit, as in ws', async (t) => {
  for (const [label, plugin, route] of [['plugin option', { maxPayload: 0 }, true], ['route option', {}, { maxPayload: 0 }]] as const) {
    const app = Fastify()
    await app.register(fastifyRfc6455, plugin)
    app.get('/echo', { ws: route }, (socket) => socket.on('message', (data) => socket.send(String(data.length))))
    const h = await start(t, app)
    const client = await h.client('/echo')
    // Past Fastify's bodyLimit of 1 MiB, the default maxPayload.
    client.send(new Uint8Array(2 * 1024 * 1024 + 1))
    t.equal(await client.nextMessage(), String(2 * 1024 * 1024 + 1), label)
  }
})

test('maxBackpressure: 0 is no limit: any highWaterMark goes with it', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455, { maxBackpressure: 0, highWaterMark: 1024 * 1024 })
  app.get('/r', { ws: { highWaterMark: 1 } }, (socket) => socket.send('ok'))
  const h = await start(t, app)
  const client = await h.client('/r')
  t.equal(await client.nextMessage(), 'ok')
})

test('origin as one string is a list of one', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455, { origin: 'https://example.com' })
  app.get('/r', { ws: true }, (socket) => socket.send('ok'))
  app.get('/route', { ws: { origin: 'https://other.example' } }, (socket) => socket.send('ok'))
  const h = await start(t, app)
  const status = async (path: string, origin: string) => (await (await h.raw()).handshake(path, { set: { origin } })).status
  t.equal(await status('/r', 'https://example.com'), 101)
  t.equal(await status('/r', 'https://evil.example'), 403)
  t.equal(await status('/route', 'https://other.example'), 101, 'on a route too')
  t.equal(await status('/route', 'https://example.com'), 403)
})

test("an option error shows the value in a few words: the key, not a whole http.Server", async (t) => {
  const server = createServer()
  for (const options of [{ server }, { options: { server } }, { maxPayload: server }]) {
    const app = Fastify()
    let error: (Error & { code?: string }) | undefined
    try {
      await app.register(fastifyRfc6455, options as never)
    } catch (caught) {
      error = caught as Error & { code?: string }
    }
    await app.close()
    t.match(error?.code, /^FST_WS_(UNKNOWN|INVALID)_OPTION$/)
    t.match(error?.message, new RegExp(`option ${Object.keys(options)[0]}`), 'names the key')
    t.ok((error?.message.length ?? Infinity) < 600, `${error?.message.length} characters`)
  }
})
