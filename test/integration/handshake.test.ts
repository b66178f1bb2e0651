import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { start, upgradeRequest, type UpgradeRequestOptions } from './helpers.js'

/** One refused opening handshake (RFC 6455 §4.2.1, §4.2.2) and the exact answer expected. */
interface Refusal {
  name: string
  request: UpgradeRequestOptions
  statusLine: string
  headers: Record<string, string>
  body: string
}

const BAD_KEY = 'Sec-WebSocket-Key must be the base64 of 16 bytes'

const REFUSALS: Refusal[] = [
  {
    name: 'missing Sec-WebSocket-Key',
    request: { omit: ['Sec-WebSocket-Key'] },
    statusLine: 'HTTP/1.1 400 Bad Request',
    headers: {},
    body: BAD_KEY
  },
  {
    name: 'a Sec-WebSocket-Key that is not the base64 of 16 bytes',
    // 'AQIDBAUGBwgJCgsMDQ4P' is the base64 of 15 bytes.
    request: { set: { 'Sec-WebSocket-Key': 'AQIDBAUGBwgJCgsMDQ4P' } },
    statusLine: 'HTTP/1.1 400 Bad Request',
    headers: {},
    body: BAD_KEY
  },
  {
    name: 'two Sec-WebSocket-Key header lines',
    request: { extraLines: ['Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA=='] },
    statusLine: 'HTTP/1.1 400 Bad Request',
    headers: {},
    body: BAD_KEY
  },
  {
    name: 'Sec-WebSocket-Version: 8',
    request: { set: { 'Sec-WebSocket-Version': '8' } },
    statusLine: 'HTTP/1.1 426 Upgrade Required',
    headers: { 'sec-websocket-version': '13', upgrade: 'websocket' },
    body: 'unsupported Sec-WebSocket-Version; this server speaks 13'
  },
  {
    name: 'a Connection header without the Upgrade token',
    request: { set: { Connection: 'keep-alive' } },
    statusLine: 'HTTP/1.1 400 Bad Request',
    headers: {},
    body: 'Connection header must include "Upgrade"'
  },
  {
    name: 'an Upgrade header without the websocket token',
    request: { set: { Upgrade: 'h2c' } },
    statusLine: 'HTTP/1.1 400 Bad Request',
    headers: {},
    body: 'Upgrade header must include "websocket"'
  },
  {
    name: 'HTTP/1.0',
    request: { httpVersion: '1.0' },
    statusLine: 'HTTP/1.1 400 Bad Request',
    headers: {},
    body: 'WebSocket handshake needs HTTP/1.1 or later'
  }
]

test('handshake refusals through the real server: status, headers, Connection: close, then the server closes', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  let handlerCalls = 0
  app.get('/ws', { ws: true }, () => { handlerCalls++ })
  const h = await start(t, app)

  for (const refusal of REFUSALS) {
    await t.test(refusal.name, async (t) => {
      const raw = await h.raw()
      raw.write(upgradeRequest('/ws', refusal.request))
      const response = await raw.readHttpResponse()
      t.equal(response.statusLine, refusal.statusLine)
      // RFC 7230 §6.7: a response that sends Upgrade also names it in Connection.
      t.equal(response.headers.connection, 'upgrade' in refusal.headers ? 'Upgrade, close' : 'close')
      for (const [name, value] of Object.entries(refusal.headers)) t.equal(response.headers[name], value, name)
      t.equal(response.headers['sec-websocket-accept'], undefined, 'no Sec-WebSocket-Accept')
      t.equal(response.headers['content-type'], 'text/plain; charset=utf-8')
      t.equal(response.body.toString(), refusal.body)
      await raw.waitForEnd()
      t.equal(raw.unread().length, 0, 'nothing after the response')
      t.equal(handlerCalls, 0, 'the handler never ran')
    })
  }
})
