/**
 * The API reference (`npm run docs`, typedoc.config.mjs) builds from the
 * public docstrings with TypeDoc's validation as errors: a public export (or
 * a member of one) without a docstring, a `{@link}` to nothing, or a public
 * signature naming a type the package does not export fails here, so it
 * fails CI. The entry points are the package's `exports`.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import tap from 'tap'

const root = fileURLToPath(new URL('../..', import.meta.url))
const typedoc = join(root, 'node_modules', '.bin', 'typedoc')

interface Run {
  code: number
  output: string
}

function run (args: string[], cwd = root): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(typedoc, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== 'number') {
        reject(error)
        return
      }
      resolve({ code: error === null ? 0 : Number(error.code), output: stdout + stderr })
    })
  })
}

/** TypeDoc's warning and error lines, without colours. */
function problems (result: Run): string[] {
  return result.output.replace(/\u001b\[[0-9;]*m/g, '').split('\n').filter((line) => /\[(warning|error)\]/.test(line))
}

// TypeDoc type-checks the whole library first.
tap.setTimeout(180_000)

tap.test('every public export is documented: typedoc with validation exits 0', async (t) => {
  const result = await run(['--emit', 'none'])
  t.same(problems(result), [], 'no warning or error')
  t.equal(result.code, 0, 'typedoc exits 0')
})

tap.test('the entry points are the package exports, and an undocumented export fails the same validation', async (t) => {
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }
  const config = (await import(new URL('../../typedoc.config.mjs', import.meta.url).href) as { default: { entryPoints: string[] } }).default
  const subpaths = Object.entries(manifest.exports).filter(([, entry]) => typeof entry === 'object').map(([subpath]) => subpath)
  t.equal(config.entryPoints.length, subpaths.length, `one entry point per export (${subpaths.join(', ')})`)
  t.ok(config.entryPoints.includes('lib/index.ts'), 'lib/index.ts is an entry point')

  const scratch = await realpath(await mkdtemp(join(tmpdir(), 'fastify-rfc6455-typedoc-')))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  // The repo's configuration, its entry points and tsconfig swapped for a scratch file's.
  await writeFile(join(scratch, 'entry.ts'), '/** Documented. */\nexport const documented = 1\nexport const undocumented = 2\n')
  await writeFile(join(scratch, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', noEmit: true }, files: ['entry.ts']
  }))
  await writeFile(join(scratch, 'typedoc.config.mjs'), `import base from ${JSON.stringify(join(root, 'typedoc.config.mjs'))}
export default { ...base, entryPoints: ['entry.ts'], tsconfig: 'tsconfig.json', intentionallyNotExported: [] }
`)
  const result = await run(['--emit', 'none', '--options', 'typedoc.config.mjs'], scratch)
  t.not(result.code, 0, 'typedoc fails')
  t.match(problems(result).join('\n'), /undocumented .*does not have any documentation/, 'and names the export')
})
