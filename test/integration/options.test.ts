import { test, type Test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { LocalBroker } from '../../lib/pubsub/broker.js'
import { start } from './helpers.js'

/** What an option error must say: its code and the pieces its message names. */
interface Expected {
  code: 'FST_WS_INVALID_OPTION' | 'FST_WS_UNKNOWN_OPTION'
  /** The option's path, as `option <path> is` or `unknown option <path>`. */
  path: string
  /** The value given, as shown. */
  value: string
  /** What is allowed. */
  allowed: string
}

function checkMessage (t: Test, error: unknown, expected: Expected): void {
  const { code, message, name } = error as { code?: string, message?: string, name?: string }
  t.equal(name, 'FastifyWebSocketError')
  t.equal(code, expected.code)
  const named = expected.code === 'FST_WS_INVALID_OPTION' ? `option ${expected.path} is ${expected.value};` : `unknown option ${expected.path} (given ${expected.value});`
  t.ok(message?.includes(named), `${JSON.stringify(message)} names ${expected.path} and ${expected.value}`)
  t.ok(message?.includes(expected.allowed), `${JSON.stringify(message)} says what is allowed: ${expected.allowed}`)
}

/** Registers the plugin with `options` and returns the error that `ready()` rejects with. */
async function registrationError (options: unknown): Promise<unknown> {
  const app = Fastify()
  try {
    await app.register(fastifyRfc6455, options as never)
    await app.ready()
  } catch (error) {
    return error
  } finally {
    await app.close()
  }
  throw new Error(`registration with ${JSON.stringify(options)} succeeded`)
}

/** Declares GET /r with `ws` on an app with the plugin (registered with `plugin`) and returns what `app.get()` throws. */
async function routeError (ws: unknown, plugin: object = {}): Promise<unknown> {
  const app = Fastify()
  await app.register(fastifyRfc6455, plugin)
  try {
    app.get('/r', { ws: ws as never }, () => {})
  } catch (error) {
    return error
  } finally {
    await app.close()
  }
  throw new Error(`declaring ws: ${JSON.stringify(ws)} succeeded`)
}

const INTEGER_BYTES = 'an integer from 0 to 9007199254740991 (bytes)'
const INTEGER_MS = 'an integer from 0 to 2147483647 (milliseconds)'
const POSITIVE_MS = 'an integer from 1 to 2147483647 (milliseconds)'
const WINDOW_BITS = 'an integer from 8 to 15 (bits, RFC 7692 §7.1.2)'
const TOKEN = 'a token (RFC 6455 §4.1)'
const ORIGIN = 'an origin as browsers send it (RFC 6454 §6.2)'

test('the examples of the issue fail at registration, with the option, the value and what is allowed', async (t) => {
  await t.test('maxPayload: -5 (every message would close with 1009)', async (t) => {
    const error = await registrationError({ maxPayload: -5 })
    t.match(error, {
      code: 'FST_WS_INVALID_OPTION',
      message: 'fastify-rfc6455: option maxPayload is -5; it must be an integer from 0 to 9007199254740991 (bytes)'
    })
  })

  await t.test("protocols: 'chat' (a string would match the substring 'ch')", async (t) => {
    const error = await registrationError({ protocols: 'chat' })
    t.match(error, {
      code: 'FST_WS_INVALID_OPTION',
      message: "fastify-rfc6455: option protocols is 'chat'; it must be an array of subprotocol names or a function (offered, request) => string | undefined"
    })
  })

  await t.test('perMessageDeflate.level: 12 (the first compressed message would close with 1011)', async (t) => {
    const error = await registrationError({ perMessageDeflate: { level: 12 } })
    t.match(error, {
      code: 'FST_WS_INVALID_OPTION',
      message: 'fastify-rfc6455: option perMessageDeflate.level is 12; it must be an integer from 0 to 9'
    })
  })
})

/** One rule broken per case: [options, what the error says]. */
const PLUGIN_CASES: Array<[string, Record<string, unknown>, Expected]> = [
  ['maxPayload not an integer', { maxPayload: 1.5 }, { code: 'FST_WS_INVALID_OPTION', path: 'maxPayload', value: '1.5', allowed: 'an integer from 0 to' }],
  ['maxPayload a string', { maxPayload: '1024' }, { code: 'FST_WS_INVALID_OPTION', path: 'maxPayload', value: "'1024'", allowed: 'an integer from 0 to' }],
  ['maxPayload NaN', { maxPayload: NaN }, { code: 'FST_WS_INVALID_OPTION', path: 'maxPayload', value: 'NaN', allowed: 'an integer from 0 to' }],
  ['maxPayload past 2^53-1', { maxPayload: 2 ** 53 }, { code: 'FST_WS_INVALID_OPTION', path: 'maxPayload', value: '9007199254740992', allowed: INTEGER_BYTES }],
  ['closeTimeout negative', { closeTimeout: -1 }, { code: 'FST_WS_INVALID_OPTION', path: 'closeTimeout', value: '-1', allowed: POSITIVE_MS }],
  ['closeTimeout 0 (a closing handshake with no time at all)', { closeTimeout: 0 }, { code: 'FST_WS_INVALID_OPTION', path: 'closeTimeout', value: '0', allowed: POSITIVE_MS }],
  ['closeTimeout past what setTimeout takes', { closeTimeout: 2 ** 31 }, { code: 'FST_WS_INVALID_OPTION', path: 'closeTimeout', value: '2147483648', allowed: POSITIVE_MS }],
  ['idleTimeout not an integer', { idleTimeout: 0.5 }, { code: 'FST_WS_INVALID_OPTION', path: 'idleTimeout', value: '0.5', allowed: INTEGER_MS }],
  ['heartbeatInterval Infinity', { heartbeatInterval: Infinity }, { code: 'FST_WS_INVALID_OPTION', path: 'heartbeatInterval', value: 'Infinity', allowed: INTEGER_MS }],
  ['highWaterMark negative', { highWaterMark: -1 }, { code: 'FST_WS_INVALID_OPTION', path: 'highWaterMark', value: '-1', allowed: INTEGER_BYTES }],
  ['maxBackpressure a string', { maxBackpressure: '16mb' }, { code: 'FST_WS_INVALID_OPTION', path: 'maxBackpressure', value: "'16mb'", allowed: INTEGER_BYTES }],
  ['highWaterMark over the default maxBackpressure', { highWaterMark: 32 * 1024 * 1024 }, {
    code: 'FST_WS_INVALID_OPTION', path: 'highWaterMark', value: '33554432', allowed: 'at most maxBackpressure (16777216 bytes)'
  }],
  ['maxBackpressure under the default highWaterMark', { maxBackpressure: 1000 }, {
    code: 'FST_WS_INVALID_OPTION', path: 'maxBackpressure', value: '1000', allowed: 'at least highWaterMark (65536 bytes)'
  }],
  ['protocols with a separator in a name', { protocols: ['chat', 'my chat'] }, { code: 'FST_WS_INVALID_OPTION', path: 'protocols[1]', value: "'my chat'", allowed: TOKEN }],
  ['protocols with an empty name', { protocols: [''] }, { code: 'FST_WS_INVALID_OPTION', path: 'protocols[0]', value: "''", allowed: TOKEN }],
  ['protocols with a comma list in a name', { protocols: ['a,b'] }, { code: 'FST_WS_INVALID_OPTION', path: 'protocols[0]', value: "'a,b'", allowed: TOKEN }],
  ['protocols with a non-ASCII name', { protocols: ['chät'] }, { code: 'FST_WS_INVALID_OPTION', path: 'protocols[0]', value: "'chät'", allowed: TOKEN }],
  ['protocols with a number', { protocols: [13] }, { code: 'FST_WS_INVALID_OPTION', path: 'protocols[0]', value: '13', allowed: TOKEN }],
  ['origin a single string that is no origin', { origin: 'https://example.com/' }, {
    code: 'FST_WS_INVALID_OPTION', path: 'origin', value: "'https://example.com/'", allowed: "an origin, an array of origins, a function (origin, request) => boolean, or '*' or true for every origin"
  }],
  ['validateSend a string', { validateSend: 'no' }, { code: 'FST_WS_INVALID_OPTION', path: 'validateSend', value: "'no'", allowed: 'true or false' }],
  ['origin false', { origin: false }, { code: 'FST_WS_INVALID_OPTION', path: 'origin', value: 'false', allowed: "'*' or true for every origin" }],
  ['origin with a path (a trailing slash)', { origin: ['https://example.com/'] }, { code: 'FST_WS_INVALID_OPTION', path: 'origin[0]', value: "'https://example.com/'", allowed: ORIGIN }],
  ['origin without a scheme', { origin: ['example.com'] }, { code: 'FST_WS_INVALID_OPTION', path: 'origin[0]', value: "'example.com'", allowed: ORIGIN }],
  ['origin in uppercase', { origin: ['https://a.test', 'https://Example.com'] }, { code: 'FST_WS_INVALID_OPTION', path: 'origin[1]', value: "'https://Example.com'", allowed: ORIGIN }],
  ['perMessageDeflate a string', { perMessageDeflate: 'on' }, {
    code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate', value: "'on'", allowed: 'true, false or an object of threshold, serverNoContextTakeover, clientNoContextTakeover'
  }],
  ['perMessageDeflate.level -1 (zlib would take it as 6)', { perMessageDeflate: { level: -1 } }, {
    code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.level', value: '-1', allowed: 'an integer from 0 to 9'
  }],
  ['perMessageDeflate.memLevel 0', { perMessageDeflate: { memLevel: 0 } }, { code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.memLevel', value: '0', allowed: 'an integer from 1 to 9' }],
  ['perMessageDeflate.memLevel 10', { perMessageDeflate: { memLevel: 10 } }, { code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.memLevel', value: '10', allowed: 'an integer from 1 to 9' }],
  ['perMessageDeflate.serverMaxWindowBits 7', { perMessageDeflate: { serverMaxWindowBits: 7 } }, {
    code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.serverMaxWindowBits', value: '7', allowed: WINDOW_BITS
  }],
  ['perMessageDeflate.clientMaxWindowBits 16', { perMessageDeflate: { clientMaxWindowBits: 16 } }, {
    code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.clientMaxWindowBits', value: '16', allowed: WINDOW_BITS
  }],
  ['perMessageDeflate.threshold negative', { perMessageDeflate: { threshold: -1 } }, { code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.threshold', value: '-1', allowed: INTEGER_BYTES }],
  ['perMessageDeflate.serverNoContextTakeover a string', { perMessageDeflate: { serverNoContextTakeover: 'yes' } }, {
    code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.serverNoContextTakeover', value: "'yes'", allowed: 'true or false'
  }],
  ['perMessageDeflate.clientNoContextTakeover a number', { perMessageDeflate: { clientNoContextTakeover: 1 } }, {
    code: 'FST_WS_INVALID_OPTION', path: 'perMessageDeflate.clientNoContextTakeover', value: '1', allowed: 'true or false'
  }],
  ['an unknown permessage-deflate option', { perMessageDeflate: { windowBits: 10 } }, {
    code: 'FST_WS_UNKNOWN_OPTION', path: 'perMessageDeflate.windowBits', value: '10', allowed: 'threshold, serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits, memLevel, level'
  }],
  ['an unknown plugin option (a typo)', { maxPayLoad: 1024 }, { code: 'FST_WS_UNKNOWN_OPTION', path: 'maxPayLoad', value: '1024', allowed: 'maxPayload, closeTimeout' }],
  ['broker not an object', { broker: 'redis' }, {
    code: 'FST_WS_INVALID_OPTION', path: 'broker', value: "'redis'", allowed: 'an object with the methods start, subscribe, unsubscribe, publish, close'
  }],
  ['broker without close', { broker: { start () {}, subscribe () {}, unsubscribe () {}, publish () {} } }, {
    code: 'FST_WS_INVALID_OPTION', path: 'broker', value: '{ start: [Function: start], subscribe: [Function: subscribe], unsubscribe: [Function: unsubscribe], publish: [Function: publish] }',
    allowed: 'an object with the methods start, subscribe, unsubscribe, publish, close'
  }]
]

test('plugin options: each rule broken fails the registration', async (t) => {
  for (const [name, options, expected] of PLUGIN_CASES) {
    await t.test(name, async (t) => {
      checkMessage(t, await registrationError(options), expected)
    })
  }
})

/** One rule broken per case in a route's `ws`: [ws, plugin options, what the error says]. */
const ROUTE_CASES: Array<[string, unknown, object, Expected]> = [
  ['ws a string', 'yes', {}, { code: 'FST_WS_INVALID_OPTION', path: 'ws', value: "'yes'", allowed: 'true, false or an object of maxPayload, closeTimeout' }],
  ['ws null', null, {}, { code: 'FST_WS_INVALID_OPTION', path: 'ws', value: 'null', allowed: 'true, false or an object of' }],
  ['ws.maxPayload negative', { maxPayload: -5 }, {}, { code: 'FST_WS_INVALID_OPTION', path: 'ws.maxPayload', value: '-5', allowed: 'an integer from 0 to' }],
  ['ws.protocols a string', { protocols: 'chat' }, {}, { code: 'FST_WS_INVALID_OPTION', path: 'ws.protocols', value: "'chat'", allowed: 'an array of subprotocol names' }],
  ['ws.perMessageDeflate.level 12', { perMessageDeflate: { level: 12 } }, {}, {
    code: 'FST_WS_INVALID_OPTION', path: 'ws.perMessageDeflate.level', value: '12', allowed: 'an integer from 0 to 9'
  }],
  ['ws.closeTimeout past what setTimeout takes', { closeTimeout: 2 ** 31 }, {}, { code: 'FST_WS_INVALID_OPTION', path: 'ws.closeTimeout', value: '2147483648', allowed: POSITIVE_MS }],
  ['ws.heartbeatInterval (plugin only)', { heartbeatInterval: 1000 }, {}, {
    code: 'FST_WS_UNKNOWN_OPTION', path: 'ws.heartbeatInterval', value: '1000', allowed: 'onMessage, validateSend, messages (broker, heartbeatInterval, history, maxRecovery, maxHttp2WebSockets, maxPublishPayload, presence and drain are plugin options only)'
  }],
  ['ws.broker (plugin only)', { broker: new LocalBroker() }, {}, {
    code: 'FST_WS_UNKNOWN_OPTION', path: 'ws.broker', value: 'LocalBroker {…}', allowed: '(broker, heartbeatInterval, history, maxRecovery, maxHttp2WebSockets, maxPublishPayload, presence and drain are plugin options only)'
  }],
  ['ws.maxBackpressure under the plugin highWaterMark', { maxBackpressure: 100_000 }, { highWaterMark: 200_000 }, {
    code: 'FST_WS_INVALID_OPTION', path: 'ws.maxBackpressure', value: '100000', allowed: 'at least highWaterMark (200000 bytes)'
  }],
  ['ws.highWaterMark over the plugin maxBackpressure', { highWaterMark: 200_000 }, { maxBackpressure: 100_000 }, {
    code: 'FST_WS_INVALID_OPTION', path: 'ws.highWaterMark', value: '200000', allowed: 'at most maxBackpressure (100000 bytes)'
  }]
]

test('route options: each rule broken in ws: { ... } throws from the route declaration', async (t) => {
  for (const [name, ws, plugin, expected] of ROUTE_CASES) {
    await t.test(name, async (t) => {
      const error = await routeError(ws, plugin)
      checkMessage(t, error, expected)
      t.ok((error as Error).message.startsWith('WebSocket route GET /r: '), 'the message names the route')
    })
  }

  await t.test('a route declared inside a plugin: the error surfaces from ready()', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    app.register(async (child) => {
      child.get('/inner', { ws: { idleTimeout: -1 } }, () => {})
    }, { prefix: '/api' })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_WS_INVALID_OPTION', message: /^WebSocket route GET \/api\/inner: option ws\.idleTimeout is -1;/ })
    await app.close()
  })
})

test('valid options are accepted', async (t) => {
  await t.test('every option at its bounds, undefined values, Fastify register options, a broker, and origin * or true', async (t) => {
    const sets: Array<Record<string, unknown>> = [
      {
        maxPayload: 0,
        closeTimeout: 1,
        highWaterMark: 0,
        maxBackpressure: 0,
        idleTimeout: 2 ** 31 - 1,
        heartbeatInterval: 0,
        protocols: [],
        origin: ['null', 'http://[::1]:8080', 'chrome-extension://abcdef'],
        perMessageDeflate: { threshold: 0, serverMaxWindowBits: 8, clientMaxWindowBits: 15, memLevel: 1, level: 0, serverNoContextTakeover: true, clientNoContextTakeover: false }
      },
      { maxPayload: Number.MAX_SAFE_INTEGER, maxBackpressure: Number.MAX_SAFE_INTEGER, highWaterMark: Number.MAX_SAFE_INTEGER },
      { maxPayload: undefined, protocols: undefined, perMessageDeflate: { level: undefined } },
      { prefix: '/ignored', logLevel: 'warn' },
      { broker: new LocalBroker(), perMessageDeflate: false, origin: '*' },
      { origin: true, perMessageDeflate: true, protocols: () => undefined },
      { origin: () => true, perMessageDeflate: { memLevel: 9, level: 9, serverMaxWindowBits: 15, clientMaxWindowBits: 8 } }
    ]
    for (const options of sets) {
      const app = Fastify()
      await app.register(fastifyRfc6455, options)
      const { heartbeatInterval, broker, prefix, logLevel, ...route } = options
      app.get('/r', { ws: route }, () => {})
      await t.resolves(async () => { await app.ready() }, `accepted: ${JSON.stringify(options)}`)
      await app.close()
    }
  })

  await t.test('a connection through a custom option set: subprotocol by exact name, compression, maxPayload', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455, {
      maxPayload: 2048,
      closeTimeout: 1000,
      highWaterMark: 4096,
      maxBackpressure: 1024 * 1024,
      idleTimeout: 60_000,
      heartbeatInterval: 60_000,
      protocols: ['chat', 'superchat'],
      origin: ['http://127.0.0.1'],
      perMessageDeflate: { threshold: 0, level: 9, memLevel: 9, serverMaxWindowBits: 10 }
    })
    app.get('/echo', { ws: { maxPayload: 1024, protocols: ['chat'] } }, (socket) => {
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : `${socket.protocol}: ${data.toString()}`))
    })
    const h = await start(t, app)
    const client = await h.client('/echo', ['ch', 'chat'])
    t.equal(client.ws.protocol, 'chat', "chosen by exact name: 'ch' is not taken")
    t.match(client.ws.extensions, /^permessage-deflate/, 'permessage-deflate negotiated')
    const text = 'a compressible message '.repeat(40)
    client.send(text)
    t.equal(await client.nextMessage(), `chat: ${text}`, 'echoed through level 9, memLevel 9, a 2^10 window')
    client.send('x'.repeat(1025))
    t.equal((await client.waitClose()).code, 1009, "the route's maxPayload of 1024 applies")
  })
})
