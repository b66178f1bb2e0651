/**
 * A Redis broker that cannot connect at startup fails the plugin's
 * registration with FST_WS_REDIS_CONNECT and the Redis client's error as
 * `cause`, before Fastify's pluginTimeout (10 s) would end the app with
 * AVV_ERR_PLUGIN_EXEC_TIMEOUT, and logs no outage ("until it is back") for a
 * connection that never was.
 */
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { RedisBroker } from '../../lib/pubsub/redis.js'
import { freePort, skipWithoutRedis, startRedis } from '../support/redis.js'

/** What `app.ready()` rejects with, and the app's log lines. */
async function startupError (url: string): Promise<{ error: { code?: string, cause?: { code?: string, message?: string } }, logs: Array<{ msg: string }> }> {
  const logs: Array<{ msg: string }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => logs.push(JSON.parse(line) as { msg: string }) } } })
  app.register(fastifyRfc6455, { broker: new RedisBroker({ url }) })
  try {
    await app.ready()
  } catch (error) {
    return { error: error as never, logs }
  } finally {
    await app.close()
  }
  throw new Error(`the app started with ${url}`)
}

test('Redis refuses the connection: FST_WS_REDIS_CONNECT with ECONNREFUSED as cause', async (t) => {
  const port = await freePort()
  const { error, logs } = await startupError(`redis://127.0.0.1:${port}`)
  t.equal(error.code, 'FST_WS_REDIS_CONNECT', 'not AVV_ERR_PLUGIN_EXEC_TIMEOUT')
  t.equal(error.cause?.code, 'ECONNREFUSED', "the Redis client's error as cause")
  t.notOk(logs.some((line) => line.msg.includes('until it is back')), 'no outage logged')
})

test('Redis answers an error to the connection: FST_WS_REDIS_CONNECT with it as cause', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const { error } = await startupError(`${redis.url}/99`)
  t.equal(error.code, 'FST_WS_REDIS_CONNECT')
  t.match(error.cause?.message, /DB index is out of range/)
})
