/**
 * The `drain` option: app.close() closes the open WebSockets with 1001 a
 * batch at a time, logs each batch and the end, and resolves once every
 * connection has closed; without it, all at once. What each batch closed is
 * read on the server's own sockets at the moment the batch's log line is
 * written (synchronously, right after the batch), so that a slow machine
 * can stretch the intervals but not change the counts.
 */
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455, { type FastifyRfc6455Options, WebSocket } from '../../lib/index.js'
import { LocalBroker } from '../../lib/pubsub/broker.js'
import { type Harness, serverCloseFrame, start, type Teardown, type TestClient, withTimeout } from './helpers.js'

type LogRecord = Record<string, unknown>

/** What one batch's log line said, and the server's sockets as they were when it was written. */
interface Batch {
  closed: unknown
  remaining: unknown
  /** Server sockets no longer OPEN. */
  notOpen: number
  at: number
}

/**
 * An app on `options` whose `/ws` route keeps its server sockets, with a log
 * stream that snapshots them at each drain line; `onBatch` runs right
 * after each snapshot, inside the drain.
 */
async function drainApp (t: Teardown, options: FastifyRfc6455Options, onBatch: (batch: Batch, sockets: WebSocket[]) => void = () => {}) {
  const sockets: WebSocket[] = []
  const serverCloses: Array<[number, string]> = []
  const batches: Batch[] = []
  const records: LogRecord[] = []
  const stream = {
    write (line: string) {
      const record = JSON.parse(line) as LogRecord
      records.push(record)
      if (record.msg !== 'closing WebSockets in batches') return
      const batch = { closed: record.closed, remaining: record.remaining, notOpen: sockets.filter((s) => s.readyState !== WebSocket.OPEN).length, at: Date.now() }
      batches.push(batch)
      onBatch(batch, sockets)
    }
  }
  const app: FastifyInstance = Fastify({ logger: { level: 'info', stream } })
  await app.register(fastifyRfc6455, options)
  app.get('/ws', { ws: true }, (socket) => {
    sockets.push(socket)
    socket.on('close', (code, reason) => serverCloses.push([code, reason]))
    socket.send('ready')
  })
  const h = await start(t, app)
  return { app, h, sockets, serverCloses, batches, records }
}

async function openClients (h: Harness, count: number): Promise<TestClient[]> {
  const clients: TestClient[] = []
  // One at a time: the server's set holds them in this order, and so the batches take them in it.
  for (let i = 0; i < count; i++) {
    const client = await h.client('/ws')
    await client.nextMessage()
    clients.push(client)
  }
  return clients
}

test('drain: { sockets: 10, interval: 200 } closes 25 sockets in 3 batches of 1001, then close() resolves', async (t) => {
  const { app, h, sockets, serverCloses, batches, records } = await drainApp(t, { drain: { sockets: 10, interval: 200 }, heartbeatInterval: 0 })
  const clients = await openClients(h, 25)

  await withTimeout(app.close(), 'app.close()')
  t.equal(serverCloses.length, 25, "every server socket's close event came before close() resolved")
  t.equal(app.websocketClients.size, 0, 'no socket left')
  t.same(batches.map(({ closed, remaining, notOpen }) => ({ closed, remaining, notOpen })), [
    { closed: 10, remaining: 15, notOpen: 10 },
    { closed: 20, remaining: 5, notOpen: 20 },
    { closed: 25, remaining: 0, notOpen: 25 }
  ], 'three batches; after each, exactly the sockets it closed are no longer OPEN')
  for (let i = 1; i < batches.length; i++) {
    // Node's timers never fire early; Date.now() may round a millisecond either way.
    t.ok(batches[i].at - batches[i - 1].at >= 199, `batch ${i + 1} came ${batches[i].at - batches[i - 1].at} ms after batch ${i}`)
  }
  for (const [i, client] of clients.entries()) {
    t.same(await client.waitClose(), { code: 1001, reason: 'server shutting down', wasClean: true }, `client ${i}`)
  }
  t.same(serverCloses, Array(25).fill([1001, '']), 'each client echoed 1001, once')
  const drainLines = records.filter((r) => r.msg === 'closing WebSockets in batches' || r.msg === 'WebSockets drained')
  t.same(drainLines.map((r) => r.level), [30, 30, 30, 30], 'one line per batch and a final one, at info level')
  const done = drainLines[3]
  t.equal(done.msg, 'WebSockets drained', 'the final line comes last')
  t.equal(done.closed, 25)
  t.equal(typeof done.duration, 'number')
  t.equal(sockets.length, 25)
})

test('a socket that closes on its own during the drain is neither closed again nor counted', async (t) => {
  let ownClose: WebSocket | undefined
  // closeTimeout 3000: the socket the app closes stays CLOSING (its client never answers) while the later batches run.
  const { app, h, sockets, serverCloses, batches, records } = await drainApp(t, { drain: { sockets: 10, interval: 100 }, closeTimeout: 3000, heartbeatInterval: 0 }, (batch, sockets) => {
    // After the first batch, the app closes the last socket, which the drain had not reached yet.
    if (batch.closed === 10) {
      ownClose = sockets[sockets.length - 1]
      ownClose.close(4000, 'own')
    }
  })
  const clients = await openClients(h, 24)
  const silent = await h.rawWebSocket('/ws')
  t.equal((await silent.readFrame()).payload.toString(), 'ready')
  t.equal(sockets.length, 25)

  await withTimeout(app.close(), 'app.close()')
  t.equal(ownClose, sockets[24], "the app closed the silent client's socket")
  t.same(batches.map(({ closed, remaining }) => ({ closed, remaining })), [
    { closed: 10, remaining: 15 },
    { closed: 20, remaining: 4 },
    { closed: 24, remaining: 0 }
  ], 'the socket closed by the app is not in the counts')
  t.same((await silent.readFrame()).bytes, serverCloseFrame(4000, 'own'), 'the silent client got its own close frame')
  await silent.waitForEnd()
  t.equal(silent.unread().length, 0, 'and nothing after it: no 1001')
  for (const client of clients) t.equal((await client.waitClose()).code, 1001)
  t.equal(serverCloses.length, 25, 'close() waited for its connection too')
  t.same(serverCloses.filter(([code]) => code === 1006), [[1006, '']], 'destroyed after closeTimeout: no close frame came back')
  t.equal(records.find((r) => r.msg === 'WebSockets drained')?.closed, 24)
})

test('without drain, app.close() closes every socket at once and logs no batch', async (t) => {
  const { app, h, sockets, serverCloses, records } = await drainApp(t, { heartbeatInterval: 0 })
  await openClients(h, 25)
  let notOpenAtClose = -1
  sockets[0].once('close', () => { notOpenAtClose = sockets.filter((s) => s.readyState !== WebSocket.OPEN).length })

  await withTimeout(app.close(), 'app.close()')
  t.equal(notOpenAtClose, 25, "when the first socket's connection closed, every socket had been sent its close frame")
  t.same(serverCloses, Array(25).fill([1001, '']))
  t.same(records.filter((r) => typeof r.msg === 'string' && /WebSockets (in batches|drained)/.test(r.msg)), [], 'no drain line')
})

test('drain with no socket open: close() resolves and logs the end', async (t) => {
  const { app, batches, records } = await drainApp(t, { drain: { sockets: 1, interval: 2 ** 31 - 1 } })
  await withTimeout(app.close(), 'app.close()')
  t.same(batches, [], 'no batch')
  t.equal(records.find((r) => r.msg === 'WebSockets drained')?.closed, 0)
})

test('bad drain values fail at registration', async (t) => {
  const cases: Array<[unknown, string, RegExp]> = [
    [10, 'FST_WS_INVALID_OPTION', /option drain is 10; it must be an object \{ sockets, interval \}/],
    [null, 'FST_WS_INVALID_OPTION', /option drain is null;/],
    [[10, 200], 'FST_WS_INVALID_OPTION', /option drain is \[ 10, 200 \];/],
    [{ sockets: 0, interval: 200 }, 'FST_WS_INVALID_OPTION', /option drain\.sockets is 0; it must be an integer from 1 to 9007199254740991 \(sockets per batch\)/],
    [{ sockets: 1.5, interval: 200 }, 'FST_WS_INVALID_OPTION', /option drain\.sockets is 1\.5;/],
    [{ sockets: '10', interval: 200 }, 'FST_WS_INVALID_OPTION', /option drain\.sockets is '10';/],
    [{ sockets: 10, interval: 0 }, 'FST_WS_INVALID_OPTION', /option drain\.interval is 0; it must be an integer from 1 to 2147483647 \(milliseconds\)/],
    [{ sockets: 10, interval: 2 ** 31 }, 'FST_WS_INVALID_OPTION', /option drain\.interval is 2147483648;/],
    [{ sockets: 10 }, 'FST_WS_INVALID_OPTION', /option drain\.interval is undefined; it must be an integer from 1/],
    [{ interval: 200 }, 'FST_WS_INVALID_OPTION', /option drain\.sockets is undefined;/],
    [{ sockets: 10, interval: 200, batch: 5 }, 'FST_WS_UNKNOWN_OPTION', /unknown option drain\.batch \(given 5\); the options are sockets, interval/]
  ]
  for (const [drain, code, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => {
      await app.register(fastifyRfc6455, { drain } as never)
      await app.ready()
    }, { name: 'FastifyWebSocketError', code, message }, `drain: ${JSON.stringify(drain)}`)
    await app.close()
  }

  const app = Fastify()
  await app.register(fastifyRfc6455)
  t.throws(() => app.get('/r', { ws: { drain: { sockets: 1, interval: 1 } } as never }, () => {}), {
    code: 'FST_WS_UNKNOWN_OPTION', message: /unknown option ws\.drain .*maxPublishPayload, presence and drain are plugin options only\)/
  }, 'a plugin option only')
  await app.close()
})

test('drain serves the whole server: a later registration may repeat its numbers, not change them', async (t) => {
  const same = Fastify()
  await same.register(fastifyRfc6455, { drain: { sockets: 5, interval: 50 }, broker: new LocalBroker() })
  same.register(async (child) => { await child.register(fastifyRfc6455, { drain: { sockets: 5, interval: 50 } }) })
  await t.resolves(async () => { await same.ready() }, 'the same numbers in another object')
  await same.close()

  for (const drain of [{ sockets: 6, interval: 50 }, { sockets: 5, interval: 51 }]) {
    const app = Fastify()
    await app.register(fastifyRfc6455, { drain: { sockets: 5, interval: 50 } })
    app.register(async (child) => { await child.register(fastifyRfc6455, { drain }) })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_SERVER_OPTION', message: /another drain/ }, JSON.stringify(drain))
    await app.close()
  }

  const unset = Fastify()
  await unset.register(fastifyRfc6455)
  unset.register(async (child) => { await child.register(fastifyRfc6455, { drain: { sockets: 5, interval: 50 } }) })
  await t.rejects(async () => { await unset.ready() }, { code: 'FST_WS_SERVER_OPTION' }, 'none at first, then one')
  await unset.close()
})
