/**
 * A scratch consumer project with the package installed as a user gets it,
 * the mechanism of test/package/consumer.test.ts: `npm pack` (its `prepack`
 * builds), the tarball unpacked into the project's node_modules, and the
 * packages the docs import linked from this repo's node_modules (no network).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))
const repoModules = join(root, 'node_modules')

export interface Run {
  code: number
  output: string
}

/** Runs `file` with `args` in `cwd`: its exit code and its output, stdout then stderr. */
export function run (file: string, args: string[], cwd: string, timeout = 0): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false' } },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number' && error.killed !== true) {
          reject(error)
          return
        }
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, output: stdout + stderr })
      })
  })
}

export interface Consumer {
  /** The project's directory: package.json (`"type": "module"`), node_modules. */
  dir: string
  /** Removes the scratch directory. */
  remove (): Promise<void>
}

/**
 * Packs the package and installs it in a new scratch project, beside the
 * repo's dependencies and devDependencies (fastify, redis, ws, typebox...:
 * what the docs' examples import). Throws with npm's output when packing fails.
 */
export async function packedConsumer (): Promise<Consumer> {
  const scratch = await realpath(await mkdtemp(join(tmpdir(), 'fastify-rfc6455-docs-')))
  const remove = (): Promise<void> => rm(scratch, { recursive: true, force: true })
  try {
    const packed = await run('npm', ['pack', '--pack-destination', scratch, '--silent'], root)
    if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.output}`)
    const tarball = (await readdir(scratch)).find((file) => file.endsWith('.tgz'))
    if (tarball === undefined) throw new Error('npm pack wrote no tarball')

    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
      name: string, dependencies?: Record<string, string>, devDependencies?: Record<string, string>
    }
    const dir = join(scratch, 'consumer')
    const installed = join(dir, 'node_modules', manifest.name)
    await mkdir(installed, { recursive: true })
    const untar = await run('tar', ['-xzf', join(scratch, tarball), '-C', installed, '--strip-components=1'], scratch)
    if (untar.code !== 0) throw new Error(`tar failed:\n${untar.output}`)

    const linked = [...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.devDependencies ?? {})]
    if (existsSync(join(repoModules, '@redis'))) {
      for (const pkg of await readdir(join(repoModules, '@redis'))) linked.push(`@redis/${pkg}`)
    }
    for (const pkg of linked) {
      const target = join(repoModules, pkg)
      if (!existsSync(target)) throw new Error(`${pkg} is not installed in this repo's node_modules: npm ci`)
      const link = join(dir, 'node_modules', pkg)
      await mkdir(dirname(link), { recursive: true })
      await symlink(target, link, 'dir')
    }
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'docs-consumer', private: true, type: 'module' }))
    return { dir, remove }
  } catch (error) {
    await remove()
    throw error
  }
}
