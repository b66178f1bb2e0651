/**
 * Runs @fastify/websocket's own test suite against `fastify-rfc6455/compat`.
 *
 * The published package comes from the npm registry (`npm pack`, which
 * takes it from npm's cache when `npm ci` put it there); its
 * `test/*.test.js` are run with `node --test` after one change: each
 * `require('..')` is pointed at `fastify-rfc6455/compat`, the built entry
 * (`npm run build` first) reached through a link to this repository. The
 * tests' own dependencies (`fastify`, `ws`, `split2`) come from this
 * repository's node_modules.
 *
 * Prints each test that fails, with the first line of its error, then
 * `compat suite: <passed> of <total> passed, <failed> failed`, and the same
 * figures as one line of JSON for test/compat/upstream.test.ts. Exits 1 when
 * fewer than COMPAT_MIN_PASS tests pass (default 58; docs/migrating.md lists
 * why each of the others fails).
 *
 *   npm run build && npx tsx scripts/compat-suite.ts
 *
 * FASTIFY_WEBSOCKET_VERSION picks another published version (default 11.3.6).
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const work = join(root, '.compat-suite')
const version = process.env.FASTIFY_WEBSOCKET_VERSION ?? '11.3.6'
const minimum = Number(process.env.COMPAT_MIN_PASS ?? 58)
const REQUIRE_PARENT = "require('..')"

/** One test of the suite as node's TAP reporter tells it. */
interface Result {
  name: string
  ok: boolean
  skipped: boolean
  /** The first line of the failure's message, '' when it passed. */
  error: string
}

/** Unpacks the published package into `work` and points its tests at the compat entry; returns the test files. */
async function prepare (): Promise<{ dir: string, files: string[] }> {
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { recursive: true })
  const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', work, `@fastify/websocket@${version}`],
    { cwd: work, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } }).trim().split('\n').pop() as string
  execFileSync('tar', ['xzf', join(work, tarball), '-C', work])
  const dir = join(work, 'package')
  const files = (await readdir(join(dir, 'test'))).filter((name) => name.endsWith('.test.js')).sort()
  if (files.length === 0) throw new Error(`@fastify/websocket@${version} has no test/*.test.js in its tarball`)
  for (const file of files) {
    const path = join(dir, 'test', file)
    const source = await readFile(path, 'utf8')
    if (!source.includes(REQUIRE_PARENT)) throw new Error(`${file} has no ${REQUIRE_PARENT} to point at the compat entry`)
    await writeFile(path, source.replaceAll(REQUIRE_PARENT, "require('fastify-rfc6455/compat')"))
  }
  await mkdir(join(dir, 'node_modules'), { recursive: true })
  await symlink(root, join(dir, 'node_modules', 'fastify-rfc6455'), 'dir')
  return { dir, files: files.map((file) => join('test', file)) }
}

/** How long a test may go without reporting before it counts as hung and its process is killed. */
const IDLE_MS = Number(process.env.COMPAT_TEST_TIMEOUT ?? 15_000)

/** The names of the top-level tests of a file, in order: `test('name', ...)` at the start of a line. */
function testNames (source: string): string[] {
  return [...source.matchAll(/^test\((['"`])(.*?)\1/gm)].map((match) => match[2])
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

/**
 * Runs the named tests of one file in one process, with node's test runner
 * and its TAP reporter; kills it when no test has reported for IDLE_MS.
 * Resolves to the TAP output and whether it was killed.
 */
function runTests (dir: string, file: string, names: string[]): Promise<{ tap: string, killed: boolean }> {
  const patterns = names.map((name) => `--test-name-pattern=^${escapeRegExp(name)}$`)
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--test-reporter=tap', ...patterns, file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let tap = ''
    let killed = false
    let timer = setTimeout(kill, IDLE_MS)
    function kill (): void {
      killed = true
      child.kill('SIGKILL')
    }
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      tap += chunk
      if (/^(not )?ok \d+ /m.test(chunk)) {
        clearTimeout(timer)
        timer = setTimeout(kill, IDLE_MS)
      }
    })
    child.stderr.resume()
    child.on('error', reject)
    child.on('close', () => {
      clearTimeout(timer)
      resolve({ tap, killed })
    })
  })
}

/**
 * Runs every test of a file: all in one process, and when a test hangs or
 * crashes its process (so that the tests after it never report), that test
 * counts as failed and the ones after it run again in a new process.
 */
async function runFile (dir: string, file: string): Promise<Result[]> {
  let remaining = testNames(await readFile(join(dir, file), 'utf8'))
  const results: Result[] = []
  while (remaining.length > 0) {
    const { tap, killed } = await runTests(dir, file, remaining)
    const reported = parse(tap).filter((result) => remaining.includes(result.name))
    results.push(...reported)
    const done = new Set(reported.map((result) => result.name))
    remaining = remaining.filter((name) => !done.has(name))
    if (remaining.length === 0) break
    const [stuck, ...rest] = remaining
    results.push({ name: stuck, ok: false, skipped: false, error: killed ? `no result within ${IDLE_MS} ms (hung)` : 'its process exited' })
    remaining = rest
  }
  return results
}

/** The top-level tests of node's TAP output (`ok N - name`, `not ok N - name`, unindented) and their errors; tests left out by a name pattern are not results. */
function parse (tap: string): Result[] {
  const results: Result[] = []
  const lines = tap.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const match = /^(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b(.*))?$/.exec(lines[i])
    if (match === null || (match[4] ?? '').includes('does not match pattern')) continue
    const ok = match[1] === undefined
    let error = ''
    if (!ok) {
      for (let j = i + 1; j < lines.length && lines[j].startsWith('  '); j++) {
        const field = /^ {2}error: (.*)$/.exec(lines[j])
        if (field === null) continue
        error = field[1] === '|-' || field[1] === '>-' ? (lines[j + 1] ?? '').trim() : field[1].replace(/^'|'$/g, '')
        break
      }
    }
    results.push({ name: match[2].replace(/\\#/g, '#'), ok, skipped: match[3] !== undefined, error })
  }
  return results
}

if (!existsSync(join(root, 'dist', 'lib', 'compat.js'))) {
  console.error('dist/lib/compat.js is missing: run npm run build first')
  process.exit(2)
}
const { dir, files } = await prepare()
const started = Date.now()
const results: Result[] = []
for (const file of files) results.push(...await runFile(dir, file))
const failed = results.filter((result) => !result.ok)
const passed = results.filter((result) => result.ok && !result.skipped).length
for (const result of failed) console.log(`not ok - ${result.name}: ${result.error}`)
console.log(`compat suite: ${passed} of ${results.length} passed, ${failed.length} failed ` +
  `(@fastify/websocket ${version}, Node ${process.version}, ${((Date.now() - started) / 1000).toFixed(1)} s)`)
console.log(JSON.stringify({ version, total: results.length, passed, failed: failed.map((result) => result.name) }))
process.exitCode = passed >= minimum ? 0 : 1
