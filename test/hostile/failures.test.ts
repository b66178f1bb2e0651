/**
 * Failures on one connection stay on that connection: an exception in a
 * route handler or an event listener closes it with 1011 and is logged once
 * through request.log; a client that resets the TCP connection (RST) in the
 * middle of a message or of the handshake, or half-closes it (FIN) without a
 * close frame, leaves a close event (1006) and nothing else behind.
 */
import { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { WebSocket as UndiciWebSocket } from 'undici'
import {
  assertStillServes, captureLogs, clientFrame, deferred, echoOn, Opcode, RawClient, sleep, startServer, until, upgradeRequest, within
} from './helpers.js'

interface Case {
  /** Route path and the message of the Error it throws. */
  name: string
  declare (app: FastifyInstance, boom: Error): void
  /** What the raw client does once the handshake is done. */
  provoke? (client: RawClient): void
  /** The close frame the client receives. */
  closeFrame: { code: number, reason: string }
  /** The log line the error must appear in, exactly once. */
  logMsg: string
}

const ON_1011 = 'WebSocket closed with 1011 after an error'
const LISTENER_THREW = 'WebSocket event listener threw'

const cases: Case[] = [
  {
    name: 'sync-handler',
    declare: (app, boom) => app.get('/sync-handler', { ws: true }, () => { throw boom }),
    closeFrame: { code: 1011, reason: '' },
    logMsg: ON_1011
  },
  {
    name: 'async-handler',
    declare: (app, boom) => app.get('/async-handler', { ws: true }, async () => { await sleep(10); throw boom }),
    closeFrame: { code: 1011, reason: '' },
    logMsg: ON_1011
  },
  {
    name: 'message-listener',
    declare: (app, boom) => app.get('/message-listener', { ws: true }, (socket) => { socket.on('message', () => { throw boom }) }),
    provoke: (client) => client.write(clientFrame(Opcode.Text, 'hello')),
    closeFrame: { code: 1011, reason: '' },
    logMsg: ON_1011
  },
  {
    name: 'queued-message-listener',
    // The message arrives before the listener: it is queued, then delivered to a listener that throws.
    declare: (app, boom) => app.get('/queued-message-listener', { ws: true }, async (socket) => {
      await sleep(100)
      socket.on('message', () => { throw boom })
    }),
    provoke: (client) => client.write(clientFrame(Opcode.Text, 'early')),
    closeFrame: { code: 1011, reason: '' },
    logMsg: ON_1011
  },
  {
    name: 'ping-listener',
    declare: (app, boom) => app.get('/ping-listener', { ws: true }, (socket) => { socket.on('ping', () => { throw boom }) }),
    provoke: (client) => client.write(clientFrame(Opcode.Ping, 'p')),
    closeFrame: { code: 1011, reason: '' },
    logMsg: ON_1011
  },
  {
    name: 'pong-listener',
    declare: (app, boom) => app.get('/pong-listener', { ws: true }, (socket) => { socket.on('pong', () => { throw boom }) }),
    provoke: (client) => client.write(clientFrame(Opcode.Pong, 'unsolicited')),
    closeFrame: { code: 1011, reason: '' },
    logMsg: ON_1011
  },
  {
    name: 'drain-listener',
    declare: (app, boom) => app.get('/drain-listener', { ws: true }, (socket) => {
      socket.on('drain', () => { throw boom })
      socket.send(Buffer.alloc(1024 * 1024)) // over highWaterMark: false, then 'drain'
    }),
    closeFrame: { code: 1011, reason: '' },
    logMsg: ON_1011
  },
  {
    name: 'error-listener',
    // An unmasked frame fails the connection with 1002 (§5.1); the 'error' listener then throws.
    declare: (app, boom) => app.get('/error-listener', { ws: true }, (socket) => { socket.on('error', () => { throw boom }) }),
    provoke: (client) => client.write(Buffer.from([0x81, 0x02, 0x68, 0x69])),
    closeFrame: { code: 1002, reason: 'client frame is not masked' },
    logMsg: LISTENER_THREW
  },
  {
    name: 'close-listener',
    declare: (app, boom) => app.get('/close-listener', { ws: true }, (socket) => { socket.on('close', () => { throw boom }) }),
    provoke: (client) => client.write(clientFrame(Opcode.Close, Buffer.from([0x03, 0xe8]))),
    closeFrame: { code: 1000, reason: '' },
    logMsg: LISTENER_THREW
  }
]

test('an exception in a handler or a listener closes that connection only, logged once through request.log', async (t) => {
  const logs = captureLogs()
  const reqIds = new Map<string, string>()
  const server = await startServer(t, {
    app: { logger: { level: 'info', stream: logs.stream } },
    routes (app) {
      // Every handshake's request id, to find its log lines.
      app.addHook('onRequest', async (request) => { reqIds.set(request.url.slice(1), request.id) })
      for (const each of cases) each.declare(app, new Error(`boom in ${each.name}`))
    }
  })
  // A bystander connection, open through every failure.
  const bystander = new UndiciWebSocket(`ws://127.0.0.1:${server.port}/echo`)
  const bystanderClosed = deferred<number>()
  bystander.onclose = (event) => bystanderClosed.resolve(event.code)
  await within(new Promise((resolve) => { bystander.onopen = resolve }), 5000, 'bystander open')

  for (const each of cases) {
    await t.test(each.name, async (t) => {
      const client = await RawClient.open(server.port, `/${each.name}`)
      each.provoke?.(client)
      t.same(await client.waitCloseFrame(5000), each.closeFrame, `close frame ${each.closeFrame.code}`)
      await client.waitClosed(5000).catch(() => client.destroy())
      const message = `boom in ${each.name}`
      await until(() => logs.lines.some((line) => (line.err as { message?: string } | undefined)?.message === message), 2000, 'log line')
        .catch(() => {})
      const lines = logs.lines.filter((line) => (line.err as { message?: string } | undefined)?.message === message)
      t.equal(lines.length, 1, 'logged once')
      t.equal(lines[0]?.level, 50, 'at error level')
      t.equal(lines[0]?.msg, each.logMsg)
      t.equal(lines[0]?.reqId, reqIds.get(each.name), 'through request.log (reqId of the handshake)')
      client.destroy()
    })
  }

  const echoed = await echoOn(bystander, 'still open', 'bystander echo')
  t.equal(echoed, 'still open', 'the bystander connection was not affected')
  bystander.close(1000)
  t.equal(await within(bystanderClosed.promise, 5000, 'bystander close'), 1000)
  t.equal(logs.lines.filter((line) => line.level === 50 && line.msg === ON_1011).length,
    cases.filter((each) => each.logMsg === ON_1011).length, 'no other 1011 logged')
  await assertStillServes(t, server)
})

/** Records the close and error events of `/watched` connections. */
function watched (record: { closes: Array<[number, string]>, errors: string[], handled: number }) {
  return (app: FastifyInstance): void => {
    app.get('/watched', { ws: true }, (socket) => {
      record.handled++
      socket.on('message', (data) => socket.send(data))
      socket.on('error', (error) => record.errors.push(error.code))
      socket.on('close', (code, reason) => record.closes.push([code, reason]))
    })
  }
}

test('an exception in the subprotocol chooser or the origin check: 500 for that handshake only', async (t) => {
  const logs = captureLogs()
  const server = await startServer(t, {
    app: { logger: { level: 'info', stream: logs.stream } },
    routes (app) {
      app.get('/chooser', { ws: { protocols: () => { throw new Error('boom in chooser') } } }, () => {})
      app.get('/origin', { ws: { origin: () => { throw new Error('boom in origin check') } } }, () => {})
    }
  })
  for (const [path, message] of [['/chooser', 'boom in chooser'], ['/origin', 'boom in origin check']]) {
    const client = await RawClient.connect(server.port)
    client.write(upgradeRequest(path, ['Sec-WebSocket-Protocol: chat', 'Origin: http://127.0.0.1']))
    await client.waitResponse()
    t.equal(client.status, 500, `${path}: 500`)
    await client.waitClosed()
    const lines = logs.lines.filter((line) => (line.err as { message?: string } | undefined)?.message === message)
    t.equal(lines.length, 1, `${path}: logged once`)
  }
  t.equal(server.app.websocketClients.size, 0)
  await assertStillServes(t, server)
})

test('a TCP reset in the middle of a message: close event 1006, nothing else', async (t) => {
  const record = { closes: [] as Array<[number, string]>, errors: [] as string[], handled: 0 }
  const server = await startServer(t, { routes: watched(record) })
  const client = await RawClient.open(server.port, '/watched')
  // The first fragment of a text message, a ping between fragments (§5.4), then half a frame.
  client.write(Buffer.concat([clientFrame(Opcode.Text, 'first half', { fin: false }), clientFrame(Opcode.Ping, 'sync')]))
  await client.waitFrames(1)
  t.same(client.frames.map((frame) => [frame.opcode, frame.payload.toString()]), [[Opcode.Pong, 'sync']], 'the server read the fragment and the ping')
  client.write(clientFrame(Opcode.Continuation, 'x'.repeat(100)).subarray(0, 40))
  await sleep(20)
  client.socket.resetAndDestroy()
  await until(() => record.closes.length > 0, 5000, 'server close event')
  t.same(record.closes, [[1006, '']], 'close event 1006')
  t.same(record.errors, [], "no 'error' event: a reset is no protocol error")
  await until(() => server.app.websocketClients.size === 0, 2000, 'websocketClients empty')
  await assertStillServes(t, server)
})

test('a TCP reset in the middle of the request: the handler never runs', async (t) => {
  const record = { closes: [] as Array<[number, string]>, errors: [] as string[], handled: 0 }
  const server = await startServer(t, { routes: watched(record) })
  const client = await RawClient.connect(server.port)
  const request = upgradeRequest('/watched')
  client.write(request.slice(0, 60))
  await sleep(50)
  client.socket.resetAndDestroy()
  await sleep(50)
  t.equal(record.handled, 0, 'no WebSocket')
  t.equal(server.app.websocketClients.size, 0)
  await assertStillServes(t, server)
})

test('a TCP reset while a hook delays the 101: no WebSocket left behind, app.close() completes', async (t) => {
  const record = { closes: [] as Array<[number, string]>, errors: [] as string[], handled: 0 }
  const hookDone = deferred<void>()
  const server = await startServer(t, {
    routes (app) {
      app.get('/delayed', {
        ws: true,
        preHandler: async () => {
          await sleep(200)
          hookDone.resolve()
        }
      }, (socket) => {
        record.handled++
        socket.on('close', (code, reason) => record.closes.push([code, reason]))
      })
    }
  })
  const client = await RawClient.connect(server.port)
  client.write(upgradeRequest('/delayed'))
  await sleep(20)
  client.socket.resetAndDestroy()
  await within(hookDone.promise, 5000, 'the hook finishes')
  await sleep(50)
  // Either the handler never runs, or its WebSocket reports the lost connection.
  if (record.handled > 0) {
    await until(() => record.closes.length > 0, 2000, 'close event of the WebSocket whose socket was reset before the 101')
      .catch((error: Error) => t.fail(error.message))
    t.same(record.closes, [[1006, '']], 'close event 1006')
  }
  t.equal(server.app.websocketClients.size, 0, 'no WebSocket left in websocketClients')
  await server.close(3000).catch((error: Error) => t.fail(error.message))
})

test('a client that half-closes (FIN) without a close frame: the server closes too, close event 1006', async (t) => {
  const record = { closes: [] as Array<[number, string]>, errors: [] as string[], handled: 0 }
  const server = await startServer(t, { plugin: { closeTimeout: 300 }, routes: watched(record) })
  const client = await RawClient.open(server.port, '/watched')
  client.socket.end()
  // RFC 6455 §7.1.5: the TCP connection closed with no close frame: 1006.
  await until(() => record.closes.length > 0, 3000, 'server close event after the client\'s FIN')
    .catch((error: Error) => t.fail(error.message))
  t.same(record.closes, [[1006, '']], 'close event 1006')
  t.equal(client.ended, true, 'the server ended its side too')
  client.destroy()
  await assertStillServes(t, server)
})
