/**
 * The servers of `npm run bench -- --cases overhead`: examples/echo.ts's
 * echo route (text stays text, binary stays binary, on path `/`) on a given
 * build of the plugin, in one of three forms:
 *   node --import tsx bench/overhead-server.ts plain|subscribers|json
 *   PLUGIN       the build's entry point, such as /tmp/x/dist/lib/index.js
 *                (default: this tree's dist/lib/index.js)
 *   PORT, MAX_PAYLOAD as examples/echo.ts
 *   plain        the echo route as examples/echo.ts declares it
 *   subscribers  the same, with a subscriber on each of the plugin's
 *                diagnostics channels (each counts what it gets)
 *   json         a route with `messages: 'json'` and a `schema.message`:
 *                each text message is parsed, validated, and echoed as
 *                JSON.stringify() of the parsed value (the same bytes for
 *                the load client's `{"n":"…"}`); binary messages are refused
 */
import diagnostics from 'node:diagnostics_channel'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import type fastifyRfc6455 from 'fastify-rfc6455'

/** The channels of lib/diagnostics.ts (channelNames), by name, so that this file loads against builds without them. */
const CHANNELS = [
  'fastify-rfc6455:connection:open',
  'fastify-rfc6455:connection:close',
  'fastify-rfc6455:connection:error',
  'fastify-rfc6455:handshake:refused'
]

/** What `schema.message` of the json form accepts: the load client's messages. */
const MESSAGE_SCHEMA = {
  type: 'object',
  properties: { n: { type: 'string', maxLength: 1 << 20 } },
  required: ['n'],
  additionalProperties: false
}

const form = process.argv[2]
if (form !== 'plain' && form !== 'subscribers' && form !== 'json') throw new Error(`unknown form ${form}: plain, subscribers or json`)
const entry = process.env.PLUGIN ?? new URL('../dist/lib/index.js', import.meta.url).pathname
const plugin = (await import(pathToFileURL(entry).href)).default as typeof fastifyRfc6455
const port = Number(process.env.PORT ?? 9001)
const maxPayload = process.env.MAX_PAYLOAD === undefined ? undefined : Number(process.env.MAX_PAYLOAD)

const published: Record<string, number> = {}
if (form === 'subscribers') {
  for (const name of CHANNELS) {
    published[name] = 0
    diagnostics.subscribe(name, () => { published[name]++ })
  }
  process.once('exit', () => process.stderr.write(`published: ${JSON.stringify(published)}\n`))
}

const app = Fastify({ logger: false })
await app.register(plugin, { maxPayload })
if (form === 'json') {
  app.get('/', { ws: { messages: 'json' }, schema: { message: MESSAGE_SCHEMA } }, (socket) => {
    socket.on('message', (data) => {
      socket.send(JSON.stringify(data))
    })
  })
} else {
  app.get('/', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => {
      socket.send(isBinary ? data : data.toString('utf8'))
    })
  })
}
await app.listen({ port, host: '127.0.0.1' })
console.log(`overhead echo server (${form}, ${entry}) on ws://127.0.0.1:${port}/`)
