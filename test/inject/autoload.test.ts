/**
 * app.injectWS() in an app built with @fastify/autoload: the plugin loaded
 * from plugins/, a route loaded from routes/rooms/ under the prefix /rooms in
 * an encapsulated instance with its own onRequest hook (test/inject/autoload-app).
 */
import { once } from 'node:events'
import { join } from 'node:path'
import autoload from '@fastify/autoload'
import Fastify, { type FastifyInstance } from 'fastify'
import { test } from 'tap'
import { HandshakeRefusedError } from '../../lib/index.js'
import { withTimeout } from '../support/app.js'

const APP = join(import.meta.dirname, 'autoload-app')

async function build (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(autoload, { dir: join(APP, 'plugins') })
  await app.register(autoload, { dir: join(APP, 'routes') })
  return app
}

test('a route autoloaded under a prefix takes an injected WebSocket through its own hook', async (t) => {
  const app = await build()
  t.teardown(() => app.close())
  const client = await app.injectWS('/rooms/lobby', { headers: { authorization: 'Bearer member' } })
  client.send('hello')
  const [data] = await withTimeout(once(client, 'message'), 'the echo') as [Buffer]
  t.equal(data.toString(), 'lobby: hello', 'the params of the prefixed route')
  t.equal(app.websocket.stats().routes['/rooms/:room'], 1, 'the socket counts under the route with its prefix')
  const closed = once(client, 'close')
  await app.close()
  t.same(await withTimeout(closed, 'the close'), [1001, 'server shutting down'], 'app.close() closes it with 1001')
})

test('the autoloaded route\'s hook refuses a handshake without the header with its 401', async (t) => {
  const app = await build()
  t.teardown(() => app.close())
  const error = await app.injectWS('/rooms/lobby').then(() => null, (failure: unknown) => failure)
  t.ok(error instanceof HandshakeRefusedError)
  t.equal((error as HandshakeRefusedError).statusCode, 401)
  t.equal((error as HandshakeRefusedError).body, 'members only')
})
