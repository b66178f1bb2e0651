import { test } from 'tap'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { SAMPLE_ACCEPT, clientFrame, start, upgradeRequest } from './helpers.js'

/** Refuses with 401 over plain HTTP unless the request carries `Authorization: Bearer good`. */
async function requireToken (request: FastifyRequest, reply: FastifyReply) {
  if (request.headers.authorization !== 'Bearer good') {
    return reply.code(401).header('www-authenticate', 'Bearer').type('text/plain; charset=utf-8').send('token required')
  }
}

for (const hook of ['onRequest', 'preValidation', 'preHandler'] as const) {
  test(`a route-level ${hook} hook refuses with 401 before the 101, or lets the upgrade through`, async (t) => {
    const app = Fastify()
    await app.register(fastifyRfc6455)
    let handlerCalls = 0
    app.get('/private', { ws: true, [hook]: requireToken }, (socket) => {
      handlerCalls++
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
    })
    const h = await start(t, app)

    await t.test('no token: 401 over HTTP, then the server closes the connection', async (t) => {
      const raw = await h.raw()
      raw.write(upgradeRequest('/private'))
      const response = await raw.readHttpResponse()
      t.equal(response.statusLine, 'HTTP/1.1 401 Unauthorized')
      t.equal(response.headers['www-authenticate'], 'Bearer')
      t.equal(response.headers.connection, 'close')
      t.equal(response.headers['content-type'], 'text/plain; charset=utf-8')
      t.equal(response.headers.upgrade, undefined, 'no Upgrade header')
      t.equal(response.headers['sec-websocket-accept'], undefined, 'no Sec-WebSocket-Accept')
      t.equal(response.body.toString(), 'token required')
      await raw.waitForEnd()
      t.equal(raw.unread().length, 0, 'nothing after the response')
      t.equal(handlerCalls, 0, 'the WebSocket handler never ran')
    })

    await t.test('with the token: 101 and the connection echoes', async (t) => {
      const raw = await h.raw()
      raw.write(upgradeRequest('/private', { set: { Authorization: 'Bearer good' } }))
      const response = await raw.readHttpResponse()
      t.equal(response.statusLine, 'HTTP/1.1 101 Switching Protocols')
      t.equal(response.headers['sec-websocket-accept'], SAMPLE_ACCEPT)
      raw.write(clientFrame(Opcode.Text, 'hi'))
      t.same((await raw.readFrame()).bytes, Buffer.from([0x81, 0x02, 0x68, 0x69]), 'echoed text frame "hi"')
      t.equal(handlerCalls, 1)
    })
  })
}
