import { test, type Test } from 'tap'
import Fastify, { type FastifyServerOptions } from 'fastify'
import fastifyRfc6455, { type WebSocketOptions } from '../../lib/index.js'
import { captureLogs, start, type Harness } from './helpers.js'

/** An app with one `ws: true` route, `/ws`, with these options. */
async function serve (t: Test, ws: WebSocketOptions | true, app: FastifyServerOptions = {}): Promise<Harness> {
  const fastify = Fastify(app)
  await fastify.register(fastifyRfc6455)
  fastify.get('/ws', { ws }, (socket) => { socket.send('in') })
  return start(t, fastify)
}

/** The status of a handshake to `/ws` with these headers (Host replaced when given). */
async function status (h: Harness, headers: Record<string, string>): Promise<number> {
  const raw = await h.raw()
  const response = await raw.handshake('/ws', { set: headers })
  raw.reset()
  return response.status
}

test('by default, a handshake from a browser page of another host gets 403 (cross-site WebSocket hijacking)', async (t) => {
  const logs = captureLogs()
  const fastify = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await fastify.register(fastifyRfc6455)
  fastify.get('/ws', { ws: true }, (socket) => { socket.send('in') })
  const h = await start(t, fastify)
  const self = `127.0.0.1:${h.port}`

  const cases: Array<[string, Record<string, string>, number]> = [
    ['no Origin (not a browser)', {}, 101],
    ['Origin of the same host and port', { Host: self, Origin: `http://${self}` }, 101],
    ['the same host and port over another scheme (TLS ended by a proxy)', { Host: self, Origin: `https://${self}` }, 101],
    ['host names compare case-insensitively', { Host: `LocalHost:${h.port}`, Origin: `http://localhost:${h.port}` }, 101],
    ['a Host without a port and an Origin on http\'s default port', { Host: 'app.example', Origin: 'http://app.example' }, 101],
    ['a Host without a port and an Origin on https\'s default port', { Host: 'app.example', Origin: 'https://app.example' }, 101],
    ['Host with :443 and an https Origin without a port', { Host: 'app.example:443', Origin: 'https://app.example' }, 101],
    ['Host with :80 and an http Origin with :80 written out', { Host: 'app.example:80', Origin: 'http://app.example:80' }, 101],
    ['IPv6 host', { Host: `[::1]:${h.port}`, Origin: `http://[::1]:${h.port}` }, 101],
    ['another host', { Origin: 'https://evil.example' }, 403],
    ['the same host name on another port', { Host: self, Origin: 'http://127.0.0.1:1' }, 403],
    ['a Host without a port and an Origin on a port of its own', { Host: 'app.example', Origin: 'http://app.example:8080' }, 403],
    ['Host with :443 and an http Origin (port 80)', { Host: 'app.example:443', Origin: 'http://app.example' }, 403],
    ['a host name that only starts with the Host', { Host: 'app.example', Origin: 'https://app.example.evil.example' }, 403],
    ['a host name that only ends with the Host', { Host: 'app.example', Origin: 'https://evilapp.example' }, 403],
    ['an opaque origin (sandboxed page, file:)', { Origin: 'null' }, 403]
  ]
  for (const [label, headers, expected] of cases) {
    t.equal(await status(h, headers), expected, `${label}: ${expected}`)
  }
  const refusals = logs.records.filter((r) => r.msg === 'WebSocket handshake refused: Origin not allowed')
  t.equal(refusals.length, cases.filter((c) => c[2] === 403).length, 'each refusal logged through request.log')

  const client = await h.client('/ws')
  t.equal(await client.nextMessage(), 'in', 'a client that sends no Origin (undici) connects')
})

test('behind a trusted proxy, X-Forwarded-Host is the host an Origin must match', async (t) => {
  const trusted = await serve(t, true, { trustProxy: '127.0.0.1' })
  const forwarded = { Host: `127.0.0.1:${trusted.port}`, 'X-Forwarded-Host': 'chat.example', Origin: 'https://chat.example' }
  t.equal(await status(trusted, forwarded), 101, 'trusted proxy: the forwarded host')
  t.equal(await status(trusted, { ...forwarded, Origin: `http://127.0.0.1:${trusted.port}` }), 403, 'trusted proxy: not the address the proxy used')
  const untrusted = await serve(t, true)
  t.equal(await status(untrusted, { ...forwarded, Host: `127.0.0.1:${untrusted.port}` }), 403, 'without trustProxy the header is ignored')
})

test("origin: '*' or true allows every origin; a list or a check replaces the same-host rule", async (t) => {
  for (const origin of ['*', true] as const) {
    const h = await serve(t, { origin })
    t.equal(await status(h, { Origin: 'https://evil.example' }), 101, `${String(origin)}: any origin`)
    t.equal(await status(h, { Origin: 'null' }), 101, `${String(origin)}: even an opaque one`)
  }
  const listed = await serve(t, { origin: ['https://app.example'] })
  t.equal(await status(listed, { Origin: 'https://app.example' }), 101, 'list: a listed origin of another host')
  t.equal(await status(listed, { Origin: `http://127.0.0.1:${listed.port}` }), 403, 'list: the same host, not listed')
  t.equal(await status(listed, {}), 101, 'list: no Origin')
  const checked = await serve(t, { origin: (origin) => origin === undefined })
  t.equal(await status(checked, {}), 101, 'check: its true')
  t.equal(await status(checked, { Origin: `http://127.0.0.1:${checked.port}` }), 403, 'check: its false, even for the same host')
})
