/**
 * Loading the package leaves alone what it does not need of Node
 * (lib/builtins.ts). On Node 22 and later an ESM import of a built-in reads
 * every export of it: `node:http`'s `WebSocket` loads Node's bundled
 * undici (2.2-2.7 MB more live heap), `node:util`'s getters load
 * `worker_threads` (0.4-0.5 MB with the rest they load). And node:zlib is
 * loaded only once permessage-deflate is negotiated. Each entry point is
 * imported in a fresh Node process, as an app would.
 */
import { execFileSync } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const ENTRY_POINTS = ['fastify-rfc6455', 'fastify-rfc6455/compat', 'fastify-rfc6455/redis']

/** The built-in modules (`process.moduleLoadList`'s `NativeModule` names) that importing `specifier` in a fresh process loaded. */
function loads (specifier: string): string[] {
  const script = `await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(process.moduleLoadList))`
  // Without tap's NODE_OPTIONS, which tap puts back into any environment a
  // test gives a child: its --import hooks load worker_threads themselves.
  const out = execFileSync('sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, '--input-type=module', '-e', script],
    { cwd: ROOT, encoding: 'utf8' })
  return (JSON.parse(out) as string[]).filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length))
}

/** Whether `module` is among `loaded`, itself or (undici) its bundled copy's parts. */
const has = (loaded: string[], module: string): boolean => loaded.some((m) => m === module || m.startsWith(`internal/deps/${module}/`))

/** On Node 20 ESM imports of node:http and node:util load nothing more: nothing to check there. */
const httpLoadsUndici = has(loads('node:http'), 'undici')
const utilLoadsWorkers = has(loads('node:util'), 'worker_threads')

test('importing an entry point does not load undici', {
  skip: httpLoadsUndici ? false : `an ESM import of node:http does not load undici on Node ${process.version}`
}, async (t) => {
  for (const entry of ENTRY_POINTS) t.notOk(has(loads(entry), 'undici'), entry)
})

test('importing an entry point does not load worker_threads', {
  skip: utilLoadsWorkers ? false : `an ESM import of node:util does not load worker_threads on Node ${process.version}`
}, async (t) => {
  for (const entry of ENTRY_POINTS) t.notOk(has(loads(entry), 'worker_threads'), entry)
})

test('importing an entry point does not load node:zlib', async (t) => {
  t.ok(has(loads('node:zlib'), 'zlib'), 'the check sees node:zlib when it is loaded')
  for (const entry of ENTRY_POINTS) t.notOk(has(loads(entry), 'zlib'), entry)
})
