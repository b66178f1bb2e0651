import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { SAMPLE_ACCEPT, start, upgradeRequest } from './helpers.js'

test('subprotocol negotiation (RFC 6455 §4.2.2 step 5.4, §1.9)', async (t) => {
  await t.test("a list: the client's first offer the server speaks is chosen, and both sides agree", async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455, { protocols: ['chat', 'superchat'] })
    app.get('/ws', { ws: true }, (socket) => { socket.send(`server protocol=${socket.protocol}`) })
    const h = await start(t, app)
    const client = await h.client('/ws', ['superchat', 'chat'])
    t.equal(client.ws.protocol, 'superchat', "the client's ws.protocol")
    t.equal(await client.nextMessage(), 'server protocol=superchat', "the server's socket.protocol")
    const single = await h.client('/ws', 'chat')
    t.equal(single.ws.protocol, 'chat')
    t.equal(await single.nextMessage(), 'server protocol=chat')
  })

  await t.test('a chooser function gets the offers in client order and its choice is used', async (t) => {
    const app = Fastify()
    const calls: Array<{ offered: string[], url: string }> = []
    await app.register(fastifyRfc6455, {
      protocols: (offered, request) => {
        calls.push({ offered, url: request.url })
        return offered.includes('v2.json') ? 'v2.json' : undefined
      }
    })
    app.get('/ws', { ws: true }, (socket) => { socket.send(`server protocol=${socket.protocol}`) })
    const h = await start(t, app)
    const client = await h.client('/ws', ['v1.json', 'v2.json'])
    t.equal(client.ws.protocol, 'v2.json')
    t.equal(await client.nextMessage(), 'server protocol=v2.json')
    t.same(calls, [{ offered: ['v1.json', 'v2.json'], url: '/ws' }])
  })

  await t.test('no overlap: the 101 has no Sec-WebSocket-Protocol header', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455, { protocols: ['chat', 'superchat'] })
    app.get('/ws', { ws: true }, (socket) => { socket.send(`server protocol=${JSON.stringify(socket.protocol)}`) })
    const h = await start(t, app)
    const raw = await h.raw()
    raw.write(upgradeRequest('/ws', { set: { 'Sec-WebSocket-Protocol': 'mqtt, wamp' } }))
    const response = await raw.readHttpResponse()
    t.equal(response.statusLine, 'HTTP/1.1 101 Switching Protocols')
    t.same(response.headerLines, [
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}`
    ], 'exactly these header lines, no Sec-WebSocket-Protocol')
    // (undici's WebSocket, as the WHATWG spec says, fails a connection whose offer got no protocol: raw bytes here.)
    const frame = await raw.readFrame()
    t.equal(frame.payload.toString(), 'server protocol=""', "the server's socket.protocol is ''")
  })

  await t.test('a route-level { ws: { protocols } } overrides the plugin option', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455, { protocols: ['chat'] })
    app.get('/default', { ws: true }, (socket) => { socket.send(socket.protocol) })
    app.get('/mqtt', { ws: { protocols: ['mqtt'] } }, (socket) => { socket.send(socket.protocol) })
    const h = await start(t, app)
    const mqtt = await h.client('/mqtt', ['chat', 'mqtt'])
    t.equal(mqtt.ws.protocol, 'mqtt')
    t.equal(await mqtt.nextMessage(), 'mqtt')
    const chat = await h.client('/default', ['chat', 'mqtt'])
    t.equal(chat.ws.protocol, 'chat')
    t.equal(await chat.nextMessage(), 'chat')
  })

  await t.test('a chooser returning a name the client did not offer: 500 over HTTP, no 101', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455, { protocols: () => 'not-offered' })
    let handlerCalls = 0
    app.get('/ws', { ws: true }, () => { handlerCalls++ })
    const h = await start(t, app)
    const raw = await h.raw()
    raw.write(upgradeRequest('/ws', { set: { 'Sec-WebSocket-Protocol': 'chat' } }))
    const response = await raw.readHttpResponse()
    t.equal(response.statusLine, 'HTTP/1.1 500 Internal Server Error')
    t.equal(response.headers.connection, 'close')
    t.equal(response.headers['sec-websocket-accept'], undefined)
    t.match(JSON.parse(response.body.toString()), { statusCode: 500, code: 'FST_WS_INVALID_PROTOCOL_CHOICE' })
    await raw.waitForEnd()
    t.equal(handlerCalls, 0)
  })
})

test('the origin option (RFC 6455 §4.2.2, §10.2)', async (t) => {
  await t.test('a list allows a listed origin and refuses another with 403', async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455, { origin: ['https://good.example'] })
    app.get('/ws', { ws: true }, (socket) => { socket.send('in') })
    const h = await start(t, app)

    const allowed = await h.raw()
    allowed.write(upgradeRequest('/ws', { set: { Origin: 'https://good.example' } }))
    t.equal((await allowed.readHttpResponse()).statusLine, 'HTTP/1.1 101 Switching Protocols', 'listed origin')
    t.same((await allowed.readFrame()).bytes, Buffer.from([0x81, 0x02, 0x69, 0x6e]), 'the handler ran')

    const refused = await h.raw()
    refused.write(upgradeRequest('/ws', { set: { Origin: 'https://evil.example' } }))
    const response = await refused.readHttpResponse()
    t.equal(response.statusLine, 'HTTP/1.1 403 Forbidden', 'unlisted origin')
    t.equal(response.headers.connection, 'close')
    t.equal(response.headers['sec-websocket-accept'], undefined)
    t.equal(response.body.toString(), 'Origin not allowed')
    await refused.waitForEnd()

    const none = await h.raw()
    none.write(upgradeRequest('/ws'))
    t.equal((await none.readHttpResponse()).statusLine, 'HTTP/1.1 101 Switching Protocols', 'no Origin header: not a browser, allowed')
  })

  await t.test('a function decides from the origin and the request', async (t) => {
    const app = Fastify()
    const seen: Array<[string | undefined, string]> = []
    await app.register(fastifyRfc6455, {
      origin: (origin, request) => {
        seen.push([origin, request.url ?? ''])
        return origin !== undefined && origin.endsWith('.trusted.example')
      }
    })
    app.get('/ws', { ws: true }, (socket) => { socket.send('in') })
    const h = await start(t, app)

    const allowed = await h.raw()
    allowed.write(upgradeRequest('/ws', { set: { Origin: 'https://app.trusted.example' } }))
    t.equal((await allowed.readHttpResponse()).statusLine, 'HTTP/1.1 101 Switching Protocols')

    const refused = await h.raw()
    refused.write(upgradeRequest('/ws?from=evil', { set: { Origin: 'https://trusted.example.evil' } }))
    const response = await refused.readHttpResponse()
    t.equal(response.statusLine, 'HTTP/1.1 403 Forbidden')
    t.equal(response.headers.connection, 'close')
    await refused.waitForEnd()

    const none = await h.raw()
    none.write(upgradeRequest('/ws'))
    t.equal((await none.readHttpResponse()).statusLine, 'HTTP/1.1 403 Forbidden', 'the function is asked about a missing Origin too')

    t.same(seen, [
      ['https://app.trusted.example', '/ws'],
      ['https://trusted.example.evil', '/ws?from=evil'],
      [undefined, '/ws']
    ])
  })
})
