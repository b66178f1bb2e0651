/**
 * Loading the package leaves Node's bundled undici unloaded. On Node 22 and
 * later an ESM import of `node:http` reads its `WebSocket`, `CloseEvent` and
 * `MessageEvent` getters, which load undici: 2.2-2.7 MB more live heap that
 * every major garbage collection marks (lib/protocol/node-http.ts). Each
 * entry point is imported in a fresh Node process, as an app would.
 */
import { execFileSync } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** Whether importing `specifier` in a fresh process loaded undici. */
function loadsUndici (specifier: string): boolean {
  const script = `await import(${JSON.stringify(specifier)}); console.log(process.moduleLoadList.some((m) => m.includes('undici')))`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' })
  return out.trim() === 'true'
}

/** On Node 20 an ESM import of node:http leaves undici alone: nothing to check there. */
const httpLoadsUndici = loadsUndici('node:http')

test('importing an entry point does not load undici', {
  skip: httpLoadsUndici ? false : `an ESM import of node:http does not load undici on Node ${process.version}`
}, async (t) => {
  for (const entry of ['fastify-rfc6455', 'fastify-rfc6455/compat', 'fastify-rfc6455/redis']) {
    t.notOk(loadsUndici(entry), entry)
  }
})
