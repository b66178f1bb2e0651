/**
 * Per-message hooks (`onMessage`, plugin and route): the order parse,
 * validate, hooks (the plugin's, then the route's), listeners; transforming,
 * dropping, closing; errors as listener errors (1011, logged once); async
 * hooks keeping the order; and the option checks, on real sockets.
 */
import Fastify from 'fastify'
import tap from 'tap'
import fastifyRfc6455, { type MessageHook } from '../../lib/index.js'
import { captureLogs, delay, start } from '../integration/helpers.js'

tap.test('parse, validate, then the plugin hooks, then the route hooks, then the listeners', async (t) => {
  const app = Fastify()
  const trace: string[] = []
  await app.register(fastifyRfc6455, {
    onMessage: (message) => { trace.push(`plugin:${JSON.stringify(message.data)}`) }
  })
  app.get('/order', {
    ws: {
      messages: 'json',
      onMessage: [
        (message) => { trace.push(`route1:${JSON.stringify(message.data)}`) },
        (message) => {
          trace.push('route2')
          message.data = { n: (message.data as { n: number }).n * 10 }
        }
      ]
    },
    schema: { message: { type: 'object', properties: { n: { type: 'integer' }, tag: { type: 'string', default: 'v' } } } }
  }, (socket) => {
    socket.on('message', (data) => {
      trace.push(`listener:${JSON.stringify(data)}`)
      socket.send(JSON.stringify(trace))
    })
  })
  const harness = await start(t, app)
  const client = await harness.client('/order')
  client.send('{"n":4}')
  t.same(JSON.parse(await client.nextMessage() as string), [
    'plugin:{"n":4,"tag":"v"}',
    'route1:{"n":4,"tag":"v"}',
    'route2',
    'listener:{"n":40}'
  ], 'the hooks saw the parsed, validated (defaulted) value; the listener the transformed one')
})

tap.test('a hook returning false drops the message; hooks run on Buffer routes too', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/drop', {
    ws: { onMessage: (message) => String(message.data) !== 'secret' }
  }, async (socket) => {
    for await (const { data } of socket) socket.send(`got ${data.toString()}`)
  })
  const harness = await start(t, app)
  const client = await harness.client('/drop')
  client.send('a')
  client.send('secret')
  client.send('b')
  t.equal(await client.nextMessage(), 'got a')
  t.equal(await client.nextMessage(), 'got b', 'the dropped message never reached the loop')
})

tap.test('a hook may close the connection', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  let delivered = 0
  app.get('/close', {
    ws: {
      onMessage: (message, socket) => {
        if (String(message.data) === 'bye') {
          socket.close(4000, 'hook said so')
          return false
        }
      }
    }
  }, (socket) => {
    socket.on('message', () => { delivered++ })
  })
  const harness = await start(t, app)
  const client = await harness.client('/close')
  client.send('hello')
  client.send('bye')
  const close = await client.waitClose()
  t.equal(close.code, 4000)
  t.equal(close.reason, 'hook said so')
  t.equal(delivered, 1)
})

tap.test('a hook that throws, or rejects, closes with 1011 and is logged once', async (t) => {
  for (const [name, hook] of [
    ['throws', () => { throw new Error('hook failed') }],
    ['rejects', async () => { throw new Error('hook failed') }]
  ] as Array<[string, MessageHook]>) {
    const logs = captureLogs()
    const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
    await app.register(fastifyRfc6455)
    let delivered = 0
    app.get('/fail', { ws: { onMessage: hook } }, (socket) => {
      socket.on('message', () => { delivered++ })
    })
    const harness = await start(t, app)
    const client = await harness.client('/fail')
    client.send('x')
    t.equal((await client.waitClose()).code, 1011, `a hook that ${name}`)
    t.equal(delivered, 0)
    const logged = logs.records.filter((record) => (record.err as { message?: string } | undefined)?.message === 'hook failed')
    t.equal(logged.length, 1, 'logged once')
    t.equal(logged[0]?.level, 50, 'at error level')
  }
})

tap.test('async hooks keep the messages in order', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const delays = [30, 0, 20, 0, 10]
  app.get('/async', {
    ws: {
      onMessage: async (message) => {
        const index = Number(String(message.data))
        await delay(delays[index % delays.length])
        message.data = Buffer.from(`#${index}`)
      }
    }
  }, (socket) => {
    socket.on('message', (data) => socket.send(data.toString()))
  })
  const harness = await start(t, app)
  const client = await harness.client('/async')
  for (let i = 0; i < 10; i++) client.send(String(i))
  const received: string[] = []
  for (let i = 0; i < 10; i++) received.push(await client.nextMessage() as string)
  t.same(received, ['#0', '#1', '#2', '#3', '#4', '#5', '#6', '#7', '#8', '#9'])
})

tap.test('hooks get the request of the handshake', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get<{ Params: { room: string } }>('/room/:room', {
    ws: {
      onMessage: (message, _socket, request) => {
        message.data = Buffer.from(`${(request.params as { room: string }).room}:${String(message.data)}`)
      }
    }
  }, (socket) => {
    socket.on('message', (data) => socket.send(data.toString()))
  })
  const harness = await start(t, app)
  const client = await harness.client('/room/lobby')
  client.send('hi')
  t.equal(await client.nextMessage(), 'lobby:hi')
})

tap.test('the new options are checked at startup', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  t.throws(() => app.get('/a', { ws: { onMessage: 'nope' as unknown as MessageHook } }, (socket) => socket.close()), {
    code: 'FST_WS_INVALID_OPTION', message: /option ws\.onMessage is 'nope'; it must be a function/
  })
  t.throws(() => app.get('/b', { ws: { onMessage: [() => {}, 1 as unknown as MessageHook] } }, (socket) => socket.close()), {
    code: 'FST_WS_INVALID_OPTION', message: /option ws\.onMessage\[1\] is 1; it must be a function/
  })
  t.throws(() => app.get('/c', { ws: { messages: 'xml' as 'json' } }, (socket) => socket.close()), {
    code: 'FST_WS_INVALID_OPTION', message: /option ws\.messages is 'xml'; it must be 'buffer' or 'json'/
  })
  t.throws(() => app.get('/d', { ws: { invalidMessages: 'ignore' as 'emit' } }, (socket) => socket.close()), {
    code: 'FST_WS_INVALID_OPTION', message: /option ws\.invalidMessages is 'ignore'; it must be 'close' or 'emit'/
  })
  await app.close()

  const plugin = Fastify()
  await t.rejects(async () => { await plugin.register(fastifyRfc6455, { messages: 'json' } as object) }, {
    code: 'FST_WS_UNKNOWN_OPTION', message: /unknown option messages .*\(messages is a route option only\)/
  })
  const hooks = Fastify()
  await t.rejects(async () => { await hooks.register(fastifyRfc6455, { onMessage: {} as MessageHook }) }, {
    code: 'FST_WS_INVALID_OPTION', message: /option onMessage is \{\}; it must be a function/
  })
})
