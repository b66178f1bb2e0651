import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { serverCloseFrame, start, withTimeout } from './helpers.js'

test('app.close() sends 1001 to every open WebSocket, and destroys the ones that do not answer', async (t) => {
  await t.test('two undici clients each see 1001 and app.close() resolves', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    const serverCloses: Array<[number, string]> = []
    app.get('/ws', { ws: true }, (socket) => {
      socket.on('close', (code, reason) => serverCloses.push([code, reason]))
      socket.send('ready')
    })
    const h = await start(t, app)
    const first = await h.client('/ws')
    const second = await h.client('/ws')
    t.equal(await first.nextMessage(), 'ready')
    t.equal(await second.nextMessage(), 'ready')
    t.equal(app.websocketClients.size, 2)

    await withTimeout(app.close(), 'app.close()')
    const expected = { code: 1001, reason: 'server shutting down', wasClean: true }
    t.same(await first.waitClose(), expected, 'first client')
    t.same(await second.waitClose(), expected, 'second client')
    t.same(serverCloses, [[1001, ''], [1001, '']], 'the server saw both clients echo 1001')
    t.equal(app.websocketClients.size, 0)
  })

  await t.test('a client that never answers the close frame is destroyed after closeTimeout', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455, { closeTimeout: 200 })
    const serverCloses: Array<[number, string]> = []
    app.get('/ws', { ws: true }, (socket) => {
      socket.on('close', (code, reason) => serverCloses.push([code, reason]))
    })
    const h = await start(t, app)
    const silent = await h.rawWebSocket('/ws')

    const closing = withTimeout(app.close(), 'app.close()')
    const frame = await silent.readFrame()
    t.same(frame.bytes, serverCloseFrame(1001, 'server shutting down'), 'the exact close frame: 0x88, length, 1001, reason')
    // The client reads on but never answers (nor ends its side): the server must close alone.
    await silent.waitForEnd()
    t.equal(silent.unread().length, 0, 'nothing after the close frame')
    await closing
    t.pass('app.close() resolved')
    t.same(serverCloses, [[1006, '']], 'no close frame came back: 1006')
  })
})
