/**
 * The layout by layer: lib/ has a folder per layer and imports point down.
 * - No import circle anywhere in lib/, type-only imports included, as dpdm
 *   (a maintained dependency analyser) finds them.
 * - Each folder imports only the layers below it (the table below) and the
 *   root modules they share (errors.ts; builtins.ts, Node modules taken
 *   without an ESM import; options.ts and diagnostics.ts for the
 *   handshakes). The root glue may import anything.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseCircular, parseDependencyTree } from 'dpdm'
import { test } from 'tap'

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '../../lib')

/** What each layer may import: folders under lib/, or root modules as `errors.ts`. */
const ALLOWED: Record<string, string[]> = {
  protocol: ['protocol'],
  transport: ['protocol', 'transport', 'builtins.ts'],
  socket: ['protocol', 'transport', 'socket', 'errors.ts'],
  pubsub: ['protocol', 'socket', 'pubsub', 'errors.ts', 'builtins.ts'],
  handshake: ['protocol', 'transport', 'socket', 'handshake', 'errors.ts', 'options.ts', 'diagnostics.ts', 'builtins.ts']
}

function libFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return libFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

/** Relative module specifiers of `source`: imports and re-exports, type-only ones included. */
function relativeImports (source: string): string[] {
  return [...source.matchAll(/\b(?:import|export)\s+(?:type\s+)?[^'"`;]*?\bfrom\s*'(\.[^']+)'/g)].map((m) => m[1])
}

/** The layer a lib/ file belongs to: its folder, or its own name (such as errors.ts) at the root. */
function layerOf (file: string): string {
  const parts = relative(LIB, file).split(sep)
  return parts[0]
}

/** The imports of `file` that its layer may not make. */
function violations (file: string, source: string): string[] {
  const allowed = ALLOWED[layerOf(file)]
  if (allowed === undefined) return []
  return relativeImports(source).flatMap((specifier) => {
    const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'))
    return allowed.includes(layerOf(target)) ? [] : [`${relative(LIB, file)} imports ${specifier}`]
  })
}

/**
 * The import circles dpdm finds from `entries` (paths relative to `cwd`,
 * resolved with the tsconfig.json there), and the relative imports it could
 * not resolve: a circle through one of those would go unseen.
 */
async function analyse (entries: string[], cwd: string): Promise<{ circles: string[][], unresolved: string[] }> {
  const tree = await parseDependencyTree(entries, { cwd, context: cwd, transform: false, skipDynamicImports: false })
  const unresolved = Object.values(tree).flatMap((deps) => (deps ?? [])
    .filter((d) => d.request.startsWith('.') && d.id === null)
    .map((d) => `${d.issuer}: ${d.request}`))
  return { circles: parseCircular(tree), unresolved }
}

test('lib/ has no import circle, type-only imports included', async (t) => {
  const files = libFiles(LIB)
  t.ok(files.length >= 30, `scanned ${files.length} files`)
  const { circles, unresolved } = await analyse(files.map((f) => relative(process.cwd(), f)), process.cwd())
  t.same(unresolved, [], 'every relative import resolved')
  t.same(circles, [], circles.map((c) => c.join(' -> ')).join('\n'))
})

test('the circle check finds a type-only circle', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'a.ts'), "import type { B } from './b.js'\nexport interface A { b?: B }\n")
  writeFileSync(join(dir, 'b.ts'), "import type { A } from './a.js'\nexport interface B { a?: A }\n")
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' } }))
  const { circles, unresolved } = await analyse(['a.ts'], dir)
  t.same(unresolved, [])
  t.same(circles, [['a.ts', 'b.ts']], 'one circle')
})

test('each layer imports only the layers below it', async (t) => {
  const files = libFiles(LIB)
  for (const layer of Object.keys(ALLOWED)) t.ok(files.some((f) => layerOf(f) === layer), `lib/${layer}/ exists`)
  for (const file of files) t.same(violations(file, readFileSync(file, 'utf8')), [], relative(LIB, file))
})

test('the layer check catches an upward import', async (t) => {
  t.same(violations(join(LIB, 'socket', 'x.ts'), "import type { SocketRegistry } from '../registry.js'"), ['socket/x.ts imports ../registry.js'])
  t.same(violations(join(LIB, 'transport', 'x.ts'), "import { WebSocket } from '../socket/websocket.js'"), ['transport/x.ts imports ../socket/websocket.js'])
  t.same(violations(join(LIB, 'pubsub', 'x.ts'), "export { x } from '../handshake/upgrade.js'"), ['pubsub/x.ts imports ../handshake/upgrade.js'])
  t.same(violations(join(LIB, 'socket', 'x.ts'), "import { toPayload } from './payload.js'"), [])
})
