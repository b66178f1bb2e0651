/**
 * The Redis broker (`fastify-rfc6455/redis`): carries topic publishes between
 * the instances of an app through Redis pub/sub, with node-redis (the `redis`
 * package, an optional peer dependency). This is the only module that loads a
 * Redis client; the main entry never imports it.
 *
 * ```ts
 * import { RedisBroker } from 'fastify-rfc6455/redis'
 * await app.register(fastifyRfc6455, { broker: new RedisBroker({ url: 'redis://127.0.0.1:6379' }) })
 * ```
 *
 * RedisEmitter publishes and sends cluster requests to such apps from a
 * process without Fastify (a worker, a cron job).
 *
 * @module fastify-rfc6455/redis
 */
export { RedisEmitter, type RedisEmitterOptions } from './redis-emitter.js'
export { RedisBroker, type CommandOptions, type RedisBrokerClient, type RedisBrokerCluster, type RedisBrokerOptions } from './redis-broker.js'
export { BROKER_DROPPED_CHANNEL, type BrokerDroppedMessage, type BrokerDropStats, type DropReason } from './envelope-checks.js'
