/**
 * Prometheus metrics of an app's WebSockets with prom-client: counters and a
 * histogram fed by the plugin's diagnostics channels, gauges and totals read
 * from `app.websocket.stats()` at each scrape. An echo route on `/echo`, the
 * metrics on `/metrics`.
 *   PORT   TCP port (default 3000)
 *   HOST   address to listen on (default 127.0.0.1)
 */
import diagnostics from 'node:diagnostics_channel'
import Fastify from 'fastify'
import fastifyRfc6455, {
  channelNames, type ConnectionCloseMessage, type ConnectionErrorMessage, type ConnectionOpenMessage, type HandshakeRefusedMessage,
  type WebSocketStats
} from 'fastify-rfc6455'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

const app = Fastify()
await app.register(fastifyRfc6455)
app.get('/echo', { ws: true }, (socket) => {
  socket.on('message', (data, isBinary) => {
    socket.send(isBinary ? data : data.toString('utf8'))
  })
})

const register = new Registry()
const registers = [register]

// Read at each scrape: what is open now, per route pattern. A route that had a
// socket keeps its series, at 0 once the last one closed, rather than vanishing.
const routesSeen = new Set<string>()
new Gauge({
  name: 'websocket_connections_open',
  help: 'WebSockets open now, per route pattern.',
  labelNames: ['route'],
  registers,
  collect () {
    const { routes } = app.websocket.stats()
    for (const route of Object.keys(routes)) routesSeen.add(route)
    for (const route of routesSeen) this.set({ route }, routes[route] ?? 0)
  }
})

/**
 * A counter of totals `stats()` keeps (over every connection since the plugin
 * was registered, closed ones included), by direction: a Counter, not a
 * Gauge, since the value only grows and `rate()` must see it as a counter.
 * prom-client counters have no `set()`, so each scrape adds what grew since the last.
 */
function directionCounter (name: string, help: string, inKey: keyof WebSocketStats, outKey: keyof WebSocketStats): void {
  const counted = { in: 0, out: 0 }
  new Counter({
    name,
    help,
    labelNames: ['direction'],
    registers,
    collect () {
      const stats = app.websocket.stats()
      for (const [direction, key] of [['in', inKey], ['out', outKey]] as const) {
        this.inc({ direction }, stats[key] - counted[direction])
        counted[direction] = stats[key]
      }
    }
  })
}
directionCounter('websocket_messages_total', 'WebSocket messages received (in) and sent (out); a publish counts once per socket.',
  'messagesIn', 'messagesOut')
directionCounter('websocket_bytes_total', 'WebSocket bytes read (in) and written (out): frames with their headers, as on the wire.',
  'bytesIn', 'bytesOut')

// Fed by the channels, as each event happens.
const opened = new Counter({
  name: 'websocket_connections_total', help: 'WebSockets opened, per route pattern.', labelNames: ['route'], registers
})
const closed = new Counter({
  name: 'websocket_connections_closed_total',
  help: 'WebSockets closed, per route pattern, close code (1006: no close frame) and who closed first (client, server or none).',
  labelNames: ['route', 'code', 'initiator'],
  registers
})
const duration = new Histogram({
  name: 'websocket_connection_duration_seconds',
  help: 'How long WebSockets stayed open, from the handshake to the end of the connection.',
  labelNames: ['route'],
  buckets: [0.1, 1, 10, 60, 600, 3600],
  registers
})
const errors = new Counter({
  name: 'websocket_errors_total', help: 'WebSockets failed, per error code (such as WS_ERR_INVALID_UTF8).', labelNames: ['code'], registers
})
const refused = new Counter({
  name: 'websocket_handshakes_refused_total', help: 'WebSocket handshakes refused, per HTTP status.', labelNames: ['status'], registers
})

/** A close code as a label: a peer picks any code of 3000-4999, folded into `3xxx` and `4xxx` so that clients cannot add series without bound. */
function codeLabel (code: number): string {
  return code >= 3000 && code <= 4999 ? `${String(code)[0]}xxx` : String(code)
}

diagnostics.subscribe(channelNames.open, (message) => {
  const { route } = message as ConnectionOpenMessage
  routesSeen.add(route)
  opened.inc({ route })
})
diagnostics.subscribe(channelNames.close, (message) => {
  const close = message as ConnectionCloseMessage
  closed.inc({ route: close.route, code: codeLabel(close.code), initiator: close.initiator ?? 'none' })
  duration.observe({ route: close.route }, close.duration / 1000)
})
diagnostics.subscribe(channelNames.error, (message) => {
  errors.inc({ code: (message as ConnectionErrorMessage).code })
})
diagnostics.subscribe(channelNames.refused, (message) => {
  refused.inc({ status: (message as HandshakeRefusedMessage).status })
})

app.get('/metrics', async (_request, reply) => {
  return reply.type(register.contentType).send(await register.metrics())
})

await app.listen({ port, host })
const address = app.server.address() as { port: number }
console.log(`metrics example: http://${host}:${address.port}/metrics, echo on ws://${host}:${address.port}/echo`)
