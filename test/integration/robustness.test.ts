import { test, type Test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { captureLogs, delay, start, upgradeRequest, withTimeout, type Harness, type TestClient } from './helpers.js'

/**
 * Records the process's unhandled rejections while a test runs. Node's default
 * for one is to end the process with exit code 1; with this listener it goes
 * on, so that the test can show there was none.
 */
function watchUnhandledRejections (t: Test): unknown[] {
  const seen: unknown[] = []
  const record = (reason: unknown): void => { seen.push(reason) }
  process.on('unhandledRejection', record)
  t.teardown(() => { process.off('unhandledRejection', record) })
  return seen
}

/** The log records whose `err.message` is `message`. */
function errorRecords (records: Array<Record<string, unknown>>, message: string): Array<Record<string, unknown>> {
  return records.filter((r) => (r.err as { message?: string } | undefined)?.message === message)
}

/** The reqId Fastify gave the request to `url` (its 'incoming request' record). */
function reqIdOf (records: Array<Record<string, unknown>>, url: string): unknown {
  return records.find((r) => r.msg === 'incoming request' && (r.req as { url?: string } | undefined)?.url === url)?.reqId
}

/** A connection opened before the failure keeps echoing, and a new one opens. */
async function checkOthers (t: Test, h: Harness, bystander: TestClient): Promise<void> {
  bystander.send('still here')
  t.equal(await bystander.nextMessage(), 'still here', 'another connection keeps echoing')
  const fresh = await h.client('/echo')
  fresh.send('new one')
  t.equal(await fresh.nextMessage(), 'new one', 'and a new connection works')
  fresh.ws.close(1000)
  await fresh.waitClose()
}

test('an event listener that returns a rejected promise does what a throwing one does', async (t) => {
  const unhandled = watchUnhandledRejections(t)
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  const closeListenerDone: Array<() => void> = []
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  app.get('/async-message', { ws: true }, (socket) => {
    socket.on('message', async () => {
      await delay(5)
      throw new Error('async message listener')
    })
  })
  app.get('/async-ping', { ws: true }, (socket) => {
    socket.on('ping', async () => { throw new Error('async ping listener') })
  })
  app.get('/async-close', { ws: true }, (socket) => {
    socket.on('close', async () => {
      closeListenerDone.shift()?.()
      throw new Error('async close listener')
    })
  })
  const h = await start(t, app)
  const bystander = await h.client('/echo')

  await t.test("an async 'message' listener: 1011 to that client, logged once through request.log", async (t) => {
    const client = await h.client('/async-message')
    client.send('trigger')
    const close = await client.waitClose()
    t.equal(close.code, 1011, 'close code 1011')
    t.equal(close.reason, '', 'no reason: nothing of the server internals is sent')
    const records = errorRecords(logs.records, 'async message listener')
    t.equal(records.length, 1, 'logged once')
    t.equal(records[0]?.level, 50, 'at level error')
    t.equal(records[0]?.reqId, reqIdOf(logs.records, '/async-message'), "through request.log (the request's reqId)")
    await checkOthers(t, h, bystander)
  })

  await t.test("an async 'ping' listener: the pong is sent, then 1011", async (t) => {
    const raw = await h.rawWebSocket('/async-ping')
    raw.sendFrame(Opcode.Ping, 'hello')
    const pong = await raw.readFrame()
    t.same([pong.opcode, pong.payload.toString()], [Opcode.Pong, 'hello'], 'the automatic pong')
    t.equal(await raw.readCloseCode(), 1011, 'close code 1011')
    t.equal(errorRecords(logs.records, 'async ping listener').length, 1, 'logged once')
    await checkOthers(t, h, bystander)
  })

  await t.test("an async 'close' listener: the connection is already closed, the rejection is logged once", async (t) => {
    const client = await h.client('/async-close')
    const listenerRan = new Promise<void>((resolve) => closeListenerDone.push(resolve))
    client.ws.close(1000)
    t.equal((await client.waitClose()).code, 1000, 'a normal closing handshake')
    await withTimeout(listenerRan, "the server's close listener")
    await delay(20)
    const records = errorRecords(logs.records, 'async close listener')
    t.equal(records.length, 1, 'logged once')
    t.equal(records[0]?.reqId, reqIdOf(logs.records, '/async-close'), 'through request.log')
    await checkOthers(t, h, bystander)
  })

  t.same(unhandled, [], 'no unhandled rejection: the process would have gone on')
})

test('an async origin check or subprotocol chooser is awaited; its rejection gets 500 for that handshake only', async (t) => {
  const unhandled = watchUnhandledRejections(t)
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  app.get('/origin', {
    ws: {
      origin: async (origin) => {
        await delay(5)
        return origin === 'https://good.example'
      }
    }
  }, (socket) => { socket.send('in') })
  app.get('/origin-rejects', { ws: { origin: async () => { throw new Error('origin check rejected') } } }, () => {})
  app.get('/chooser', {
    ws: {
      protocols: async (offered) => {
        await delay(5)
        return offered.find((name) => name.startsWith('v2.'))
      }
    }
  }, (socket) => { socket.send(socket.protocol) })
  app.get('/chooser-rejects', { ws: { protocols: async () => { throw new Error('chooser rejected') } } }, () => {})
  app.get('/hook-rejects', { ws: true, preHandler: async () => { throw new Error('hook rejected') } }, () => {})
  app.get('/hook-throws', { ws: true, onRequest: (_request, _reply, _done) => { throw new Error('hook threw') } }, () => {})
  const h = await start(t, app)
  const bystander = await h.client('/echo')

  await t.test('an async origin check: its false refuses with 403, its true accepts', async (t) => {
    const refused = await h.raw()
    t.equal((await refused.handshake('/origin', { set: { Origin: 'https://evil.example' } })).status, 403, 'a refused origin')
    const accepted = await h.raw()
    t.equal((await accepted.handshake('/origin', { set: { Origin: 'https://good.example' } })).status, 101, 'an allowed origin')
    const frame = await accepted.readFrame()
    t.equal(frame.payload.toString(), 'in', 'the handler ran')
  })

  await t.test('an async subprotocol chooser: its choice is the subprotocol', async (t) => {
    const client = await h.client('/chooser', ['v1.chat', 'v2.chat'])
    t.equal(client.ws.protocol, 'v2.chat', 'Sec-WebSocket-Protocol')
    t.equal(await client.nextMessage(), 'v2.chat', 'socket.protocol')
  })

  const failing: Array<[string, string, string[]]> = [
    ['/origin-rejects', 'origin check rejected', ['Origin: https://any.example']],
    ['/chooser-rejects', 'chooser rejected', ['Sec-WebSocket-Protocol: chat']],
    ['/hook-rejects', 'hook rejected', []],
    ['/hook-throws', 'hook threw', []]
  ]
  for (const [path, message, lines] of failing) {
    await t.test(`${message}: 500, logged once`, async (t) => {
      const raw = await h.raw()
      raw.write(upgradeRequest(path, { extraLines: lines }))
      const response = await raw.readHttpResponse()
      t.equal(response.status, 500, '500')
      await raw.waitForEnd()
      t.equal(errorRecords(logs.records, message).length, 1, 'logged once')
      await checkOthers(t, h, bystander)
    })
  }
  t.same(unhandled, [], 'no unhandled rejection')
})

test('app.close() ends within closeTimeout whatever the close listeners do', async (t) => {
  const cases: Array<[string, (socket: import('../../lib/index.js').WebSocket) => void]> = [
    ['a close listener that throws', (socket) => {
      socket.on('close', () => { throw new Error('close listener threw') })
    }],
    ['a close listener that rejects', (socket) => {
      socket.on('close', async () => { throw new Error('close listener rejected') })
    }]
  ]
  for (const [label, handler] of cases) {
    await t.test(label, async (t) => {
      const unhandled = watchUnhandledRejections(t)
      const app = Fastify()
      await app.register(fastifyRfc6455, { closeTimeout: 300 })
      app.get('/ws', { ws: true }, (socket) => {
        handler(socket)
        socket.send('ready')
      })
      const h = await start(t, app)
      const answering = await h.client('/ws')
      t.equal(await answering.nextMessage(), 'ready', 'open')
      // One that never answers the close frame, so that the close timer is what ends it.
      const silent = await h.rawWebSocket('/ws')
      await silent.readFrame()

      await withTimeout(app.close(), 'app.close()', 3000)
      t.equal((await answering.waitClose()).code, 1001, 'the client that answers got 1001')
      await silent.waitForEnd()
      t.equal(app.websocketClients.size, 0, 'websocketClients empty')
      t.same(unhandled, [], 'no unhandled rejection')
    })
  }
})
