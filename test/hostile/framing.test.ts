/**
 * Handshakes whose HTTP framing is ambiguous or wrong: content on an upgrade
 * request (RFC 9110 §7.8: the new protocol starts after the whole request),
 * two Host headers (RFC 9112 §3.2), and over HTTP/2 a `host` that differs
 * from `:authority` or an `:authority` with userinfo (RFC 9113 §8.3.1). Each
 * gets 400 before any frame is read, over every transport it applies to.
 */
import { test } from 'tap'
import { HandshakeRefusedError } from '../../lib/index.js'
import { listen } from '../support/app.js'
import { connectSession, H2WebSocket, http2App } from '../support/http2-client.js'
import { assertStillServes, clientFrame, Opcode, RawClient, startServer, upgradeRequest } from './helpers.js'
import fastifyRfc6455 from '../../lib/index.js'

/** Sends `request` on a fresh connection and returns the response status and body. */
async function answer (port: number, request: string | Buffer): Promise<{ status: number, body: string, frames: number }> {
  const client = await RawClient.connect(port)
  client.write(request)
  await client.waitResponse()
  await client.waitClosed().catch(() => {})
  const result = { status: client.status, body: client.body.toString(), frames: client.frames.length }
  client.destroy()
  return result
}

test('an upgrade request with content gets 400, whatever the framing of the body', async (t) => {
  let opened = 0
  const server = await startServer(t, {
    routes: (app) => app.get('/count', { ws: true }, (socket) => { opened++; socket.on('message', () => socket.send('got')) })
  })
  const head = (extra: string[]): string => upgradeRequest('/count', extra)
  const withLength = await answer(server.port, head(['Content-Length: 5']) + 'hello')
  t.equal(withLength.status, 400, 'Content-Length: 5 and a body: 400')
  t.match(withLength.body, /no content/)
  const chunked = await answer(server.port, head(['Transfer-Encoding: chunked']) + '5\r\nhello\r\n0\r\n\r\n')
  t.equal(chunked.status, 400, 'a chunked body: 400')
  // A body that is a valid masked frame would otherwise be taken as the first message.
  const frame = clientFrame(Opcode.Text, 'smuggled')
  const framed = await answer(server.port, Buffer.concat([Buffer.from(head([`Content-Length: ${frame.length}`])), frame]))
  t.equal(framed.status, 400, 'a body holding a valid frame: 400, not a message')
  t.equal(opened, 0, 'no WebSocket opened')

  const empty = await RawClient.open(server.port, '/count', ['Content-Length: 0'])
  t.pass('Content-Length: 0 is no content: 101')
  empty.destroy()
  await assertStillServes(t, server)
})

test('two Host headers get 400 (RFC 9112 §3.2); one is fine', async (t) => {
  const server = await startServer(t)
  const request = upgradeRequest('/echo').replace('\r\n\r\n', '\r\nHost: evil.example\r\n\r\n')
  const twice = await answer(server.port, request)
  t.equal(twice.status, 400)
  t.match(twice.body, /more than one Host/)
  const once = await RawClient.open(server.port, '/echo')
  once.destroy()
  await assertStillServes(t, server)
})

test('injectWS: a handshake with content gets 400', async (t) => {
  const server = await startServer(t)
  const refused = await server.app.injectWS('/echo', { headers: { 'content-length': '5' } }).then(() => null, (error: unknown) => error)
  t.type(refused, HandshakeRefusedError)
  t.equal((refused as HandshakeRefusedError).statusCode, 400)
})

test('HTTP/2: a host header other than :authority, or :authority with userinfo, gets 400 (RFC 9113 §8.3.1)', async (t) => {
  const app = http2App()
  await app.register(fastifyRfc6455)
  app.get('/echo', { ws: true }, (socket) => { socket.on('message', (data) => socket.send(data.toString())) })
  const port = await listen(app)
  t.teardown(() => app.close())
  const session = await connectSession(port)
  t.teardown(() => session.destroy())

  const other = await H2WebSocket.open(session, '/echo', { headers: { host: 'evil.example' } })
  t.equal(other.status, 400, 'host differs from :authority')
  t.match(await other.reason(), /differs from :authority/)
  // Node 26's HTTP/2 layer refuses such an :authority itself (RST_STREAM PROTOCOL_ERROR) before the app sees
  // the request; Node 20 hands it over, and the plugin answers 400. Either way no WebSocket opens.
  const userinfo = await H2WebSocket.open(session, '/echo', { headers: { ':authority': 'user:secret@127.0.0.1' } })
    .then((ws) => ws, (error: Error) => error)
  if (userinfo instanceof Error) {
    t.match(userinfo.message, /RST_STREAM 1\)/, ':authority with userinfo: reset by Node with PROTOCOL_ERROR')
  } else {
    t.equal(userinfo.status, 400, ':authority with userinfo')
    t.match(await userinfo.reason(), /userinfo/)
  }
  const same = await H2WebSocket.open(session, '/echo', { headers: { host: '127.0.0.1' } })
  t.equal(same.status, 200, 'a host equal to :authority is fine')
  same.stream.close()
})
