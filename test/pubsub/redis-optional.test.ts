/**
 * `redis` is an optional peer dependency: the main entry never loads it, only
 * the `fastify-rfc6455/redis` subpath (lib/pubsub/redis.ts) does. Checked in a
 * fresh process, where loading the `redis` package (CommonJS) shows in
 * `require.cache`, and in the sources: lib/pubsub/redis.ts is the only module
 * that imports a Redis client, and nothing imports it.
 */
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const LIB = join(ROOT, 'lib')

/** Runs `source` as an ES module under tsx in the repo root; resolves with its stdout. */
function runModule (source: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], { cwd: ROOT }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${error.message}\n${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

/** Prints how many modules of the redis packages (redis, @redis/*) are loaded after each import, as JSON. */
const PROBE = `
import { createRequire } from 'node:module'
const cache = createRequire(import.meta.url).cache
const redisModules = () => Object.keys(cache).filter((path) => /[\\\\/]node_modules[\\\\/](?:redis|@redis)[\\\\/]/.test(path)).length
const main = await import('./lib/index.ts')
const afterMain = redisModules()
const subpath = await import('./lib/pubsub/redis.ts')
console.log(JSON.stringify({ plugin: typeof main.default, afterMain, broker: typeof subpath.RedisBroker, afterSubpath: redisModules() }))
`

test('importing the main entry does not load redis; the subpath does', async (t) => {
  const result = JSON.parse(await runModule(PROBE))
  t.equal(result.plugin, 'function', 'the main entry loaded')
  t.equal(result.afterMain, 0, 'no module of redis or @redis/* loaded by the main entry')
  t.equal(result.broker, 'function', 'the subpath loaded')
  t.ok(result.afterSubpath > 0, 'the subpath loads redis (the probe sees it when it is there)')
})

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sources(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

test('lib/pubsub/redis-broker.ts is the only module importing a Redis client, and only the fastify-rfc6455/redis entry and its emitter import it', async (t) => {
  const clients = /\bfrom\s+['"](?:redis|ioredis|@redis\/[^'"]+)['"]|\bimport\s*\(\s*['"](?:redis|ioredis|@redis\/[^'"]+)['"]/
  const importsBroker = /['"][./]+(?:pubsub\/)?redis(?:-broker|-emitter)?\.js['"]/
  const files = sources(LIB)
  t.ok(files.length > 10, 'the scan sees lib/')
  t.same(files.filter((file) => clients.test(readFileSync(file, 'utf8'))).map((file) => relative(ROOT, file)), ['lib/pubsub/redis-broker.ts'])
  t.same(files.filter((file) => importsBroker.test(readFileSync(file, 'utf8'))).map((file) => relative(ROOT, file)).sort(),
    ['lib/pubsub/redis-emitter.ts', 'lib/pubsub/redis.ts'])
})
