/**
 * The package as a consumer gets it: `npm pack` (its `prepack` builds), the
 * tarball unpacked into a scratch project's node_modules, the package's
 * dependencies and peers linked from this repo's node_modules (no network),
 * and the consumer's sources type-checked by the repo's tsc with `strict`,
 * without `skipLibCheck`, `module`/`moduleResolution` `nodenext`. A file left
 * out of `files`, a wrong `exports` entry, a declaration that breaks strict
 * projects or an undeclared dependency of the `.d.ts` fails here.
 *
 * The consumer's sources are test/package/consumer/*.ts (the whole public API)
 * and test/types/routes.types.ts (what must and must not compile), with their
 * imports of lib/ rewritten to the package's name: `npm run typecheck` checks
 * the same files against the sources, this test against the built `.d.ts`.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import tap from 'tap'

const root = fileURLToPath(new URL('../..', import.meta.url))
const repoModules = join(root, 'node_modules')
const name = 'fastify-rfc6455'

/** Relative imports of the package's entry points in the consumer sources, and the specifiers a consumer writes. */
const ENTRY_POINTS: Array<[RegExp, string]> = [
  [/(['"])(?:\.\.\/)+lib\/index\.js\1/g, `'${name}'`],
  [/(['"])(?:\.\.\/)+lib\/pubsub\/redis\.js\1/g, `'${name}/redis'`]
]

interface Run {
  code: number
  output: string
}

function run (file: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false' } },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          reject(error)
          return
        }
        resolve({ code: error === null ? 0 : Number(error.code), output: stdout + stderr })
      })
  })
}

/** Links `node_modules/<pkg>` of the consumer to the repo's copy. */
async function linkFromRepo (consumer: string, pkg: string): Promise<void> {
  const target = join(repoModules, pkg)
  if (!existsSync(target)) throw new Error(`${pkg} is not installed in this repo's node_modules`)
  const link = join(consumer, 'node_modules', pkg)
  await mkdir(dirname(link), { recursive: true })
  await symlink(target, link, 'dir')
}

/** The consumer's copy of a source file, importing the package by name; fails on any other relative import. */
async function consumerSource (file: string): Promise<string> {
  let text = await readFile(file, 'utf8')
  for (const [pattern, specifier] of ENTRY_POINTS) text = text.replace(pattern, specifier)
  const relative = /from\s+['"]\.{1,2}\//.exec(text)
  if (relative !== null) throw new Error(`${file} imports a relative path a consumer cannot: ${relative[0]}`)
  return text
}

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    lib: ['es2023'],
    types: ['node'],
    noEmit: true,
    // The ./redis step checks again: only what changed.
    incremental: true,
    tsBuildInfoFile: 'tsconfig.tsbuildinfo'
  },
  include: ['src']
}

// npm pack builds, and tsc without skipLibCheck checks every .d.ts of fastify and Node's types.
tap.setTimeout(300_000)

tap.test('the packed package type-checks in a strict nodenext consumer, whole API, and loads', async (t) => {
  const scratch = await mkdtemp(join(tmpdir(), 'fastify-rfc6455-consumer-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))

  const packed = await run('npm', ['pack', '--pack-destination', scratch, '--silent'], root)
  t.equal(packed.code, 0, 'npm pack (prepack builds) succeeds', { output: packed.output })
  if (packed.code !== 0) return
  const tarballs = (await readdir(scratch)).filter((file) => file.endsWith('.tgz'))
  t.equal(tarballs.length, 1, 'one tarball')

  const consumer = join(scratch, 'consumer')
  const installed = join(consumer, 'node_modules', name)
  await mkdir(installed, { recursive: true })
  const untar = await run('tar', ['-xzf', join(scratch, tarballs[0]), '-C', installed, '--strip-components=1'], scratch)
  t.equal(untar.code, 0, 'the tarball unpacks', { output: untar.output })

  // What npm would install: the package's dependencies and peers, none other.
  const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>
    peerDependencies?: Record<string, string>
    peerDependenciesMeta?: Record<string, { optional?: boolean }>
  }
  const optional = new Set(Object.entries(manifest.peerDependenciesMeta ?? {})
    .filter(([, meta]) => meta.optional === true).map(([pkg]) => pkg))
  const required = [...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]
    .filter((pkg) => !optional.has(pkg))
  t.same(required.sort(), ['fastify', 'fastify-plugin'], 'runtime: fastify-plugin, and fastify as a peer')
  for (const pkg of [...required, '@types/node']) await linkFromRepo(consumer, pkg)

  const src = join(consumer, 'src')
  await mkdir(src)
  await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  await writeFile(join(consumer, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2))
  const fixtures = join(root, 'test', 'package', 'consumer')
  const sources = [
    ...(await readdir(fixtures)).filter((file) => file.endsWith('.ts') && file !== 'redis.ts').map((file) => join(fixtures, file)),
    join(root, 'test', 'types', 'routes.types.ts')
  ]
  for (const file of sources) await writeFile(join(src, basename(file)), await consumerSource(file))
  const tsc = join(repoModules, '.bin', 'tsc')

  await t.test('the main entry, with only the required dependencies installed', async (t) => {
    const checked = await run(tsc, ['-p', consumer], consumer)
    t.same(diagnostics(checked), [], `tsc -p ${consumer}: no errors`)
    t.equal(checked.code, 0, 'tsc exits 0')

    const script = `import plugin, { fastifyRfc6455, WebSocket, CloseCode } from '${name}'
      import { createRequire } from 'node:module'
      const required = createRequire(import.meta.url)('${name}')
      console.log(JSON.stringify([typeof plugin, fastifyRfc6455 === plugin, required.default === plugin,
        WebSocket.OPEN, CloseCode.GoingAway, import.meta.resolve('${name}').replace(/^.*node_modules\\//, '')]))`
    const loaded = await run(process.execPath, ['--input-type=module', '-e', script], consumer)
    t.equal(loaded.code, 0, 'node loads the package', { output: loaded.output })
    t.same(JSON.parse(loaded.output), ['function', true, true, 1, 1001, `${name}/dist/lib/index.js`],
      'import and require load the packed entry')
  })

  await t.test('the ./redis subpath, with the optional redis peer installed', async (t) => {
    t.ok(optional.has('redis'), 'redis is an optional peer dependency')
    await linkFromRepo(consumer, 'redis')
    for (const pkg of await readdir(join(repoModules, '@redis'))) await linkFromRepo(consumer, `@redis/${pkg}`)
    await writeFile(join(src, 'redis.ts'), await consumerSource(join(fixtures, 'redis.ts')))
    const checked = await run(tsc, ['-p', consumer], consumer)
    t.same(diagnostics(checked), [], `tsc -p ${consumer}: no errors`)
    t.equal(checked.code, 0, 'tsc exits 0')

    const loaded = await run(process.execPath, ['--input-type=module', '-e',
      `const redis = await import('${name}/redis'); console.log(import.meta.resolve('${name}/redis').replace(/^.*node_modules\\//, ''), Object.keys(redis).length > 0)`],
    consumer)
    t.equal(loaded.code, 0, 'node loads the subpath', { output: loaded.output })
    t.equal(loaded.output.trim(), `${name}/dist/lib/pubsub/redis.js true`, 'import loads the packed subpath')
  })
})

/** tsc's error lines (`file(line,col): error TSxxxx: ...`), one per diagnostic. */
function diagnostics (result: Run): string[] {
  return result.output.split('\n').filter((line) => /error TS\d+:/.test(line))
}
