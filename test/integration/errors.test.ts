import { test, type Test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { captureLogs, delay, start, type Harness, type TestClient } from './helpers.js'

const LOG_MESSAGE = 'WebSocket closed with 1011 after an error'

test('application errors close that connection with 1011, are logged through request.log, and nothing else breaks', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  app.get('/sync-throw', { ws: true }, () => {
    throw new Error('sync boom')
  })
  app.get('/async-reject', { ws: true }, async () => {
    await delay(10)
    throw new Error('async boom')
  })
  app.get('/listener-throws', { ws: true }, (socket) => {
    socket.on('message', () => {
      throw new Error('listener boom')
    })
  })
  const h = await start(t, app)
  const bystander = await h.client('/echo')

  /** The error record logged for `url`'s request: same reqId as Fastify's 'incoming request' line. */
  function errorRecordFor (url: string, message: string) {
    const incoming = logs.records.find((r) => r.msg === 'incoming request' && (r.req as { url?: string } | undefined)?.url === url)
    const errors = logs.records.filter((r) => r.msg === LOG_MESSAGE && (r.err as { message?: string } | undefined)?.message === message)
    return { incoming, errors }
  }

  async function expect1011 (t: Test, client: TestClient, url: string, message: string) {
    const close = await client.waitClose()
    t.equal(close.code, 1011, 'the client sees 1011')
    t.equal(close.reason, '', 'no reason: nothing of the server internals is sent')
    const { incoming, errors } = errorRecordFor(url, message)
    t.ok(incoming, `Fastify logged the request to ${url}`)
    t.equal(errors.length, 1, 'one error record with the error')
    t.equal(errors[0]?.level, 50, 'at level error')
    t.equal(errors[0]?.reqId, incoming?.reqId, "through request.log (the request's reqId)")
    t.equal((errors[0]?.err as { type?: string } | undefined)?.type, 'Error')
    await checkBystander(t, h, bystander)
  }

  await t.test('a handler that throws synchronously', async (t) => {
    const client = await h.client('/sync-throw')
    await expect1011(t, client, '/sync-throw', 'sync boom')
  })

  await t.test('a handler that returns a rejected promise', async (t) => {
    const client = await h.client('/async-reject')
    await expect1011(t, client, '/async-reject', 'async boom')
  })

  await t.test("a 'message' listener that throws", async (t) => {
    const client = await h.client('/listener-throws')
    client.send('trigger')
    await expect1011(t, client, '/listener-throws', 'listener boom')
  })
})

/** Another connection on the same app keeps echoing. */
async function checkBystander (t: Test, h: Harness, bystander: TestClient) {
  bystander.send('still here')
  t.equal(await bystander.nextMessage(), 'still here', 'another connection keeps echoing')
  const fresh = await h.client('/echo')
  fresh.send('new one')
  t.equal(await fresh.nextMessage(), 'new one', 'and new connections work')
  fresh.ws.close(1000)
  await fresh.waitClose()
}
