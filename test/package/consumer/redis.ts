/**
 * A consumer's use of the `fastify-rfc6455/redis` subpath with the optional
 * `redis` peer installed. Never run: `npm run typecheck` checks it against
 * lib/, and test/package/consumer.test.ts against the packed package, where
 * the import of lib/pubsub/redis.js becomes 'fastify-rfc6455/redis'.
 */
import Fastify from 'fastify'
import { createClient, createCluster } from 'redis'
import fastifyRfc6455, { type Broker } from '../../../lib/index.js'
import { RedisBroker, type RedisBrokerClient, type RedisBrokerCluster, type RedisBrokerOptions } from '../../../lib/pubsub/redis.js'

/** Compiles only when `value` is assignable to T. */
function expectType<T> (_value: T): void {}

export async function redisChecks (): Promise<void> {
  const url = 'redis://127.0.0.1:6379'
  const app = Fastify()
  await app.register(fastifyRfc6455, { broker: new RedisBroker({ url }) })

  const options: RedisBrokerOptions = {
    url,
    sharded: false,
    prefix: 'app:',
    connectTimeout: 5000,
    closeTimeout: 1000,
    maxPendingPublishes: 100
  }
  const client = createClient({ url })
  await client.connect()
  const cluster = createCluster({ rootNodes: [{ url }] })
  await cluster.connect()
  expectType<RedisBrokerClient>(client)
  expectType<RedisBrokerCluster>(cluster)
  const brokers: Broker[] = [
    new RedisBroker(options),
    new RedisBroker({ clientOptions: { url, RESP: 3 } }),
    new RedisBroker({ cluster: { rootNodes: [{ url }] } }),
    new RedisBroker({ client, subscriber: client.duplicate() }),
    new RedisBroker({ clusterClient: cluster })
  ]
  expectType<number>(brokers.length)
  // @ts-expect-error the broker takes a node-redis client, not any object with publish()
  expectType<RedisBrokerOptions>({ client: { publish: () => 1 } })
  // @ts-expect-error sharded is a boolean
  expectType<RedisBrokerOptions>({ url, sharded: 'yes' })
}
