/**
 * `socket.sendJSON()` and a route's `schema.send`: values checked through the
 * route's validator compiler before they are sent (FST_WS_INVALID_SEND,
 * nothing sent), `validateSend: false` (plugin or route) skipping the check,
 * routes without `schema.send`, over real sockets and `app.injectWS()`.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import tap from 'tap'
import fastifyRfc6455, { FastifyWebSocketError, HandshakeRefusedError, SendValidationError, type WebSocketOptions } from '../../lib/index.js'
import { captureLogs, start } from '../integration/helpers.js'

const REPLY = {
  type: 'object',
  properties: { kind: { type: 'string', enum: ['reply'] }, n: { type: 'integer' } },
  required: ['kind', 'n'],
  additionalProperties: false
} as const

/**
 * /send: for each text message `n` received, sendJSON({ kind: 'reply', n })
 * when n is a number, else sendJSON of the text as is; what sendJSON threw
 * is reported back with send().
 */
async function sendApp (plugin: { validateSend?: boolean } = {}, route: WebSocketOptions = {}, logs?: ReturnType<typeof captureLogs>): Promise<FastifyInstance> {
  const app = Fastify(logs === undefined ? {} : { logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455, plugin)
  app.get('/send', { ws: route, schema: { send: REPLY } }, (socket) => {
    socket.on('message', (data) => {
      const text = data.toString()
      const value = /^-?\d+$/.test(text) ? { kind: 'reply', n: Number(text) } : JSON.parse(text)
      try {
        socket.sendJSON(value)
      } catch (error) {
        const failure = error as SendValidationError
        socket.send(JSON.stringify({
          threw: failure.code,
          isSendValidationError: failure instanceof SendValidationError,
          message: failure.message,
          path: failure.validation?.[0]?.instancePath,
          value: failure.value
        }))
      }
    })
  })
  app.get('/plain', { ws: true }, (socket) => {
    socket.on('message', (data) => socket.sendJSON(JSON.parse(data.toString())))
  })
  return app
}

tap.test('a value matching schema.send goes out as one text message of JSON', async (t) => {
  const harness = await start(t, await sendApp())
  const client = await harness.client('/send')
  client.send('7')
  const message = await client.nextMessage()
  t.equal(typeof message, 'string', 'a text message')
  t.equal(message, '{"kind":"reply","n":7}')
})

tap.test('a value failing schema.send throws FST_WS_INVALID_SEND with the errors, and nothing is sent', async (t) => {
  const harness = await start(t, await sendApp())
  const client = await harness.client('/send')
  client.send(JSON.stringify({ kind: 'reply', n: 'seven' }))
  const report = JSON.parse(await client.nextMessage() as string)
  t.same(report, {
    threw: 'FST_WS_INVALID_SEND',
    isSendValidationError: true,
    message: 'sent value does not match schema.send: /n must be integer',
    path: '/n',
    value: { kind: 'reply', n: 'seven' }
  })
  client.send(JSON.stringify({ kind: 'other', n: 1, extra: true }))
  const second = JSON.parse(await client.nextMessage() as string)
  t.equal(second.threw, 'FST_WS_INVALID_SEND')
  client.send('8')
  t.equal(await client.nextMessage(), '{"kind":"reply","n":8}', 'the invalid values were not sent: the next message is the next valid one')
})

tap.test('a sendJSON() that throws in a listener fails that connection with 1011, logged; others carry on', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/strict', { ws: true, schema: { send: REPLY } }, (socket) => {
    socket.on('message', (data) => socket.sendJSON({ kind: 'reply', n: data.toString() }))
  })
  const harness = await start(t, app)
  const failing = await harness.client('/strict')
  const other = await harness.client('/strict')
  failing.send('not a number')
  const close = await failing.waitClose()
  t.equal(close.code, 1011)
  const logged = logs.records.find((record) => (record.err as { code?: string } | undefined)?.code === 'FST_WS_INVALID_SEND')
  t.ok(logged, 'the error is logged through request.log')
  t.equal(logged?.level, 50, 'at error level')
  other.send('not a number either')
  t.equal((await other.waitClose()).code, 1011, 'each connection fails alone')
})

tap.test('validateSend: false skips the check, on the plugin or on the route', async (t) => {
  for (const [name, plugin, route] of [
    ['plugin', { validateSend: false }, {}],
    ['route', {}, { validateSend: false }]
  ] as const) {
    await t.test(name, async (t) => {
      const harness = await start(t, await sendApp(plugin, route))
      const client = await harness.client('/send')
      client.send(JSON.stringify({ kind: 'reply', n: 'seven' }))
      t.equal(await client.nextMessage(), '{"kind":"reply","n":"seven"}', 'sent unchecked')
    })
  }
  await t.test('a route may turn it back on', async (t) => {
    const harness = await start(t, await sendApp({ validateSend: false }, { validateSend: true }))
    const client = await harness.client('/send')
    client.send(JSON.stringify({ kind: 'reply', n: 'seven' }))
    t.equal(JSON.parse(await client.nextMessage() as string).threw, 'FST_WS_INVALID_SEND')
  })
})

tap.test('without schema.send any value with a JSON form is sent; undefined throws FST_WS_INVALID_DATA', async (t) => {
  const app = await sendApp()
  app.get('/undefined', { ws: true }, (socket) => {
    socket.on('message', () => {
      try {
        socket.sendJSON(undefined)
      } catch (error) {
        socket.send(`${(error as FastifyWebSocketError).code} ${String(error instanceof FastifyWebSocketError)}`)
      }
    })
  })
  const harness = await start(t, app)
  const client = await harness.client('/plain')
  client.send('[1,"two",{"three":null}]')
  t.equal(await client.nextMessage(), '[1,"two",{"three":null}]')
  const other = await harness.client('/undefined')
  other.send('x')
  t.equal(await other.nextMessage(), 'FST_WS_INVALID_DATA true')
})

tap.test('schema.send through app.injectWS(), with a shared $ref schema and the app\'s Ajv', async (t) => {
  const app = Fastify()
  app.addSchema({ $id: 'reply', ...REPLY })
  await app.register(fastifyRfc6455)
  app.get('/ref', { ws: true, schema: { send: { $ref: 'reply#' } } }, (socket) => {
    socket.on('message', (data) => {
      try {
        socket.sendJSON({ kind: 'reply', n: Number(data.toString()) })
      } catch (error) {
        socket.send((error as FastifyWebSocketError).code)
      }
    })
  })
  t.teardown(() => app.close())
  const client = await app.injectWS('/ref')
  const received: string[] = []
  client.on('message', (data) => received.push(data.toString()))
  client.send('3')
  client.send('3.5')
  await new Promise<void>((resolve) => {
    const check = (): void => { if (received.length === 2) resolve(); else setTimeout(check, 5) }
    check()
  })
  t.same(received, ['{"kind":"reply","n":3}', 'FST_WS_INVALID_SEND'])
  client.terminate()
})

tap.test('a schema.send the validator compiler refuses fails the handshake with 500', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/broken', { ws: true, schema: { send: { type: 'no such type' } } }, () => {})
  t.teardown(() => app.close())
  const error = await app.injectWS('/broken').then(() => undefined, (failure: unknown) => failure)
  t.ok(error instanceof HandshakeRefusedError, 'the handshake is refused')
  t.equal((error as HandshakeRefusedError).statusCode, 500)
})
