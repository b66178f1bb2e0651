import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455, { type WebSocket } from '../../lib/index.js'
import { start, type Teardown, withTimeout } from './helpers.js'

/** An app whose `/ws` route reports each server-side 'close' event and acts on commands. */
async function closeApp (t: Teardown) {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const serverClosed: Array<Promise<[number, string]>> = []
  app.get('/ws', { ws: true }, (socket) => {
    serverClosed.push(new Promise((resolve) => socket.on('close', (code, reason) => resolve([code, reason]))))
    socket.on('message', (data) => {
      const command = data.toString()
      if (command === 'close 4001') socket.close(4001, 'bye')
      else if (command === 'close') socket.close()
      else if (command === 'invalid') socket.send(JSON.stringify(invalidCloses(socket)))
      else socket.send(command)
    })
  })
  const h = await start(t, app)
  return { h, lastServerClose: () => withTimeout(serverClosed[serverClosed.length - 1], 'the server close event') }
}

/** Calls close() with arguments it must refuse; reports each error's code and whether the socket stayed open. */
function invalidCloses (socket: WebSocket): Array<{ args: string, code: unknown, readyState: number }> {
  const attempts: Array<[number, string?]> = [[999], [1005], [1006], [5000], [1000, 'x'.repeat(124)]]
  return attempts.map(([code, reason]) => {
    let errorCode: unknown = 'no error'
    try {
      socket.close(code, reason)
    } catch (error) {
      errorCode = (error as { code?: unknown }).code
    }
    return { args: reason === undefined ? `${code}` : `${code}, ${reason.length}-byte reason`, code: errorCode, readyState: socket.readyState }
  })
}

test('close codes in both directions and close() argument checks', async (t) => {
  const { h, lastServerClose } = await closeApp(t)

  await t.test('client closes with 1000 and a reason', async (t) => {
    const client = await h.client('/ws')
    client.ws.close(1000, 'normal, thanks')
    t.same(await lastServerClose(), [1000, 'normal, thanks'], "server 'close' event gets the client's code and reason")
    const close = await client.waitClose()
    t.equal(close.code, 1000, 'the client sees the echoed close code')
    t.equal(close.wasClean, true)
  })

  await t.test('client closes with 4000 and a reason', async (t) => {
    const client = await h.client('/ws')
    client.ws.close(4000, 'app says done')
    t.same(await lastServerClose(), [4000, 'app says done'])
    const close = await client.waitClose()
    t.equal(close.code, 4000, 'the client sees the echoed close code')
    t.equal(close.wasClean, true)
  })

  await t.test("server closes with 4001 'bye'", async (t) => {
    const client = await h.client('/ws')
    client.send('close 4001')
    t.same(await client.waitClose(), { code: 4001, reason: 'bye', wasClean: true })
    t.same(await lastServerClose(), [4001, ''], "the server's close event gets the client's echoed code")
  })

  await t.test('server closes without a code: the client sees 1005', async (t) => {
    const client = await h.client('/ws')
    client.send('close')
    t.same(await client.waitClose(), { code: 1005, reason: '', wasClean: true })
  })

  await t.test('invalid close codes and a 124-byte reason throw and leave the socket open', async (t) => {
    const client = await h.client('/ws')
    client.send('invalid')
    t.same(JSON.parse(await client.nextMessage() as string), [
      { args: '999', code: 'FST_WS_INVALID_CLOSE_CODE', readyState: 1 },
      { args: '1005', code: 'FST_WS_INVALID_CLOSE_CODE', readyState: 1 },
      { args: '1006', code: 'FST_WS_INVALID_CLOSE_CODE', readyState: 1 },
      { args: '5000', code: 'FST_WS_INVALID_CLOSE_CODE', readyState: 1 },
      { args: '1000, 124-byte reason', code: 'FST_WS_INVALID_CLOSE_REASON', readyState: 1 }
    ])
    client.send('still open')
    t.equal(await client.nextMessage(), 'still open')
    client.ws.close(1000)
    t.equal((await client.waitClose()).code, 1000)
  })
})
