/**
 * `ws: { messages: 'json' }` with `schema.message`: parsing, validation
 * through Fastify's own validator compiler (Ajv options, `addSchema` `$ref`s,
 * `setValidatorCompiler`, a route's `validatorCompiler`, TypeBox), the close
 * codes of refused messages (1007, 1003), `invalidMessages: 'emit'`, and the
 * startup errors, on real sockets.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import tap from 'tap'
import { Type } from 'typebox'
import fastifyRfc6455, { MessageValidationError } from '../../lib/index.js'
import { captureLogs, clientFrame, start, upgradeRequest, withTimeout } from '../integration/helpers.js'

const POINT = {
  type: 'object',
  properties: { x: { type: 'integer' }, y: { type: 'integer' } },
  required: ['x', 'y'],
  additionalProperties: false
} as const

/** A JSON route at /points echoing what its listener got, as JSON. */
async function pointsApp (options: { logs?: ReturnType<typeof captureLogs>, invalidMessages?: 'close' | 'emit' } = {}): Promise<FastifyInstance> {
  const app = Fastify(options.logs === undefined ? {} : { logger: { level: 'info', stream: options.logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/points', {
    ws: { messages: 'json', invalidMessages: options.invalidMessages },
    schema: { message: POINT }
  }, (socket) => {
    socket.on('message', (point, isBinary) => socket.send(JSON.stringify({ point, isBinary })))
    socket.on('invalid', (error) => socket.send(JSON.stringify({ invalid: error.code, closeCode: error.closeCode, validation: error.validation?.[0]?.instancePath, data: error.data.toString() })))
  })
  return app
}

tap.test('a valid message reaches the listener parsed', async (t) => {
  const harness = await start(t, await pointsApp())
  const client = await harness.client('/points')
  client.send(JSON.stringify({ x: 1, y: 2 }))
  t.same(JSON.parse(await client.nextMessage() as string), { point: { x: 1, y: 2 }, isBinary: false })
})

tap.test('a message failing the schema closes with 1007, logged at info through request.log', async (t) => {
  const logs = captureLogs()
  const harness = await start(t, await pointsApp({ logs }))
  const client = await harness.client('/points')
  client.send(JSON.stringify({ x: 1, y: 'two' }))
  const close = await client.waitClose()
  t.equal(close.code, 1007)
  t.match(close.reason, /^message does not match the schema: \/y must be integer/)
  const record = logs.records.find((entry) => entry.code === 'WS_ERR_INVALID_MESSAGE')
  t.ok(record, 'logged')
  t.equal(record?.level, 30, 'at info')
  t.ok(typeof record?.reqId === 'string', 'through request.log (it carries the request id)')
})

tap.test('a text message that is not JSON closes with 1007', async (t) => {
  const harness = await start(t, await pointsApp())
  const client = await harness.client('/points')
  client.send('{ not json')
  const close = await client.waitClose()
  t.equal(close.code, 1007)
  t.match(close.reason, /^message is not JSON/)
})

tap.test('a binary message on a JSON route closes with 1003 (Unsupported Data)', async (t) => {
  const harness = await start(t, await pointsApp())
  const client = await harness.client('/points')
  client.send(new TextEncoder().encode(JSON.stringify({ x: 1, y: 2 })))
  t.equal((await client.waitClose()).code, 1003)
})

tap.test('what follows a refused message in the same read is not delivered', async (t) => {
  const harness = await start(t, await pointsApp())
  const raw = await harness.rawWebSocket('/points')
  raw.write(Buffer.concat([
    clientFrame(0x1, Buffer.from('nope')),
    clientFrame(0x1, Buffer.from(JSON.stringify({ x: 1, y: 2 })))
  ]))
  const frame = await withTimeout(raw.readFrame(), 'a frame')
  t.equal(frame.opcode, 0x8, 'the first frame back is the close, no echo before it')
  t.equal(frame.payload.readUInt16BE(0), 1007)
})

tap.test("invalidMessages: 'emit' emits invalid with the errors and keeps the connection", async (t) => {
  const harness = await start(t, await pointsApp({ invalidMessages: 'emit' }))
  const client = await harness.client('/points')
  client.send(JSON.stringify({ x: 1 }))
  t.same(JSON.parse(await client.nextMessage() as string),
    { invalid: 'WS_ERR_INVALID_MESSAGE', closeCode: 1007, validation: '', data: '{"x":1}' })
  client.send('[')
  t.match(JSON.parse(await client.nextMessage() as string), { invalid: 'WS_ERR_INVALID_JSON', closeCode: 1007 })
  client.send(new Uint8Array([1]))
  t.match(JSON.parse(await client.nextMessage() as string), { invalid: 'WS_ERR_UNSUPPORTED_DATA', closeCode: 1003 })
  client.send(JSON.stringify({ x: 3, y: 4 }))
  t.same(JSON.parse(await client.nextMessage() as string), { point: { x: 3, y: 4 }, isBinary: false })
  t.equal(client.ws.readyState, client.ws.OPEN)
})

tap.test("messages: 'json' without a schema parses, and the iterator yields the values", async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/any', { ws: { messages: 'json' } }, async (socket) => {
    for await (const { data } of socket) socket.send(JSON.stringify({ type: Array.isArray(data) ? 'array' : typeof data }))
  })
  const harness = await start(t, app)
  const client = await harness.client('/any')
  client.send('[1]')
  client.send('"s"')
  client.send('3')
  t.same(JSON.parse(await client.nextMessage() as string), { type: 'array' })
  t.same(JSON.parse(await client.nextMessage() as string), { type: 'string' })
  t.same(JSON.parse(await client.nextMessage() as string), { type: 'number' })
})

tap.test("the app's Ajv options apply: coerceTypes: false refuses what the default coerces", async (t) => {
  const app = Fastify({ ajv: { customOptions: { coerceTypes: false } } })
  await app.register(fastifyRfc6455)
  app.get('/strict', { ws: { messages: 'json' }, schema: { message: POINT } }, (socket) => {
    socket.on('message', (point) => socket.send(JSON.stringify(point)))
  })
  const harness = await start(t, app)
  const client = await harness.client('/strict')
  client.send(JSON.stringify({ x: 5, y: 6 }))
  t.same(JSON.parse(await client.nextMessage() as string), { x: 5, y: 6 })
  client.send(JSON.stringify({ x: '5', y: 6 }))
  t.equal((await client.waitClose()).code, 1007)
})

tap.test("Fastify's default Ajv options apply (useDefaults, coerceTypes) and shared schemas resolve through $ref", async (t) => {
  const app = Fastify()
  app.addSchema({ $id: 'point', ...POINT, properties: { ...POINT.properties, label: { type: 'string', default: 'none' } } })
  await app.register(fastifyRfc6455)
  app.get('/ref', { ws: { messages: 'json' }, schema: { message: { $ref: 'point#' } } }, (socket) => {
    socket.on('message', (point) => socket.send(JSON.stringify(point)))
  })
  const harness = await start(t, app)
  const client = await harness.client('/ref')
  client.send(JSON.stringify({ x: '5', y: 6 }))
  t.same(JSON.parse(await client.nextMessage() as string), { x: 5, y: 6, label: 'none' })
  client.send(JSON.stringify({ x: 'five', y: 6 }))
  t.equal((await client.waitClose()).code, 1007)
})

tap.test('Ajv may coerce the message itself, not only its properties', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/number', { ws: { messages: 'json' }, schema: { message: { type: 'integer' } } }, (socket) => {
    socket.on('message', (value) => socket.send(typeof value))
  })
  const harness = await start(t, app)
  const client = await harness.client('/number')
  client.send('"42"')
  t.equal(await client.nextMessage(), 'number')
})

tap.test('setValidatorCompiler is honoured, and a route validatorCompiler over it', async (t) => {
  const app = Fastify()
  const compiled: string[] = []
  app.setValidatorCompiler(({ schema }) => {
    compiled.push('instance')
    const allowed = (schema as { const: string }).const
    return (data: unknown) => data === allowed ? { value: `${String(data)}!` } : { error: new Error(`not ${allowed}`) }
  })
  await app.register(fastifyRfc6455)
  app.get('/instance', { ws: { messages: 'json' }, schema: { message: { const: 'a' } } }, (socket) => {
    socket.on('message', (value) => socket.send(String(value)))
  })
  app.get('/route', {
    ws: { messages: 'json' },
    schema: { message: { const: 'b' } },
    validatorCompiler: () => {
      compiled.push('route')
      return (data: unknown) => data === 'b'
    }
  }, (socket) => {
    socket.on('message', (value) => socket.send(String(value)))
  })
  const harness = await start(t, app)
  const first = await harness.client('/instance')
  first.send('"a"')
  t.equal(await first.nextMessage(), 'a!', 'the compiler replaced the value ({ value })')
  first.send('"z"')
  const close = await first.waitClose()
  t.equal(close.code, 1007)
  t.match(close.reason, /not a/)
  const second = await harness.client('/route')
  second.send('"b"')
  t.equal(await second.nextMessage(), 'b')
  const third = await harness.client('/route')
  third.send('"b"')
  t.equal(await third.nextMessage(), 'b')
  t.same(compiled, ['instance', 'route'], 'each schema compiled once, by the compiler in effect for its route')
})

tap.test('an async schema ($async, Ajv) is awaited, messages kept in order', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/async', {
    ws: { messages: 'json', invalidMessages: 'emit' },
    schema: { message: { $async: true, type: 'integer', maximum: 9 } }
  }, (socket) => {
    socket.on('message', (value) => socket.send(String(value)))
    socket.on('invalid', (error) => socket.send(`invalid ${error.code} ${error.validation?.[0]?.keyword}`))
  })
  const harness = await start(t, app)
  const client = await harness.client('/async')
  for (const value of ['1', '2', '30', '4']) client.send(value)
  t.equal(await client.nextMessage(), '1')
  t.equal(await client.nextMessage(), '2')
  t.equal(await client.nextMessage(), 'invalid WS_ERR_INVALID_MESSAGE maximum')
  t.equal(await client.nextMessage(), '4')
})

tap.test('TypeBox schemas validate through the default compiler', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/typebox', {
    ws: { messages: 'json' },
    schema: { message: Type.Object({ text: Type.String({ maxLength: 5 }) }) }
  }, (socket) => {
    socket.on('message', (message) => socket.send((message as { text: string }).text.toUpperCase()))
  })
  const harness = await start(t, app)
  const client = await harness.client('/typebox')
  client.send(JSON.stringify({ text: 'hello' }))
  t.equal(await client.nextMessage(), 'HELLO')
  client.send(JSON.stringify({ text: 'too long' }))
  t.equal((await client.waitClose()).code, 1007)
})

tap.test('a schema the compiler refuses answers the handshake with 500', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/broken', { ws: { messages: 'json' }, schema: { message: { type: 'no-such-type' } } }, (socket) => socket.close())
  const harness = await start(t, app)
  const raw = await harness.raw()
  raw.write(upgradeRequest('/broken'))
  const response = await raw.readHttpResponse()
  t.equal(response.status, 500)
})

tap.test("schema.message without messages: 'json' fails at declaration", async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  t.throws(() => app.get('/x', { ws: true, schema: { message: POINT } }, (socket) => socket.close()), {
    code: 'FST_WS_INVALID_OPTION',
    message: /option ws\.messages is undefined; it must be 'json' on a route with schema\.message/
  })
  t.throws(() => app.get('/y', { ws: { messages: 'buffer' }, schema: { message: POINT } }, (socket) => socket.close()), {
    code: 'FST_WS_INVALID_OPTION'
  })
  await withTimeout(app.close(), 'close')
})

tap.test('MessageValidationError is exported, a ProtocolError with the payload', async (t) => {
  const error = new MessageValidationError('WS_ERR_INVALID_JSON', 1007, 'message is not JSON', Buffer.from('x'))
  t.equal(error.name, 'MessageValidationError')
  t.equal(error.closeCode, 1007)
  t.equal(error.data.toString(), 'x')
})
