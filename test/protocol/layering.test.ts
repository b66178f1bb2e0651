/**
 * The sans-I/O rule: nothing under lib/protocol/ may import node:net, net,
 * fastify, or anything outside lib/protocol/ (another lib/ module, an npm
 * package, or a Node module that does I/O). Node's in-memory modules
 * (node:buffer, node:crypto, node:zlib) are allowed, and one exception by
 * file: frame.ts takes Node's masking routines, pure functions Node exports
 * from node:http (Node 26), through `process.getBuiltinModule`.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'

const PROTOCOL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../lib/protocol')

/** Node built-ins that do no I/O and may be used by the core. */
const ALLOWED_BUILTINS = new Set(['node:buffer', 'node:crypto', 'node:zlib', 'node:util'])

/** More modules one file may take: frame.ts, node:http's websocketMask and websocketUnmask. */
const ALLOWED_IN_FILE: Record<string, string[]> = { 'frame.ts': ['node:http'] }

/**
 * Every module specifier in `source`: static imports and re-exports
 * (including `import type`), side-effect imports, dynamic `import()`, `require()`
 * and `process.getBuiltinModule()`.
 */
function specifiers (source: string): string[] {
  const found: string[] = []
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
    /\brequire\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
    /\bgetBuiltinModule\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g
  ]
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) found.push(match[1])
  }
  return found
}

/** Why importing `specifier` from `file` (inside `root`) breaks the rule, or null when it does not. */
function violation (root: string, file: string, specifier: string): string | null {
  if (specifier.startsWith('.') || specifier.startsWith('/')) {
    const target = resolve(dirname(file), specifier)
    if (target !== root && !target.startsWith(root + sep)) return `${specifier} is outside lib/protocol/`
    return null
  }
  if (specifier === 'net' || specifier === 'node:net') return `${specifier} is network I/O`
  if (specifier === 'fastify' || specifier.startsWith('fastify/') || specifier.startsWith('@fastify/')) return `${specifier} is the framework`
  if (ALLOWED_BUILTINS.has(specifier)) return null
  if (ALLOWED_IN_FILE[relative(root, file)]?.includes(specifier) === true) return null
  return `${specifier} is outside lib/protocol/`
}

function check (root: string, file: string, source: string): string[] {
  return specifiers(source).flatMap((s) => {
    const why = violation(root, file, s)
    return why === null ? [] : [`${relative(root, file)}: ${why}`]
  })
}

function protocolFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return protocolFiles(path)
    return /\.(?:[cm]?ts|[cm]?js)$/.test(entry.name) ? [path] : []
  })
}

test('the checker itself catches each kind of forbidden import', async (t) => {
  const file = join(PROTOCOL_DIR, 'example.ts')
  const bad = [
    "import net from 'node:net'",
    "import { Socket } from 'net'",
    "import type { FastifyInstance } from 'fastify'",
    "export { x } from '../connection.js'",
    "import '../websocket.js'",
    "const m = await import('node:net')",
    "const ws = require('ws')",
    "import {\n  a,\n  b\n} from 'undici'",
    "import { readFile } from 'node:fs'",
    "import http from 'node:http'",
    "const http = process.getBuiltinModule('node:http')"
  ]
  for (const source of bad) t.equal(check(PROTOCOL_DIR, file, source).length, 1, `caught: ${JSON.stringify(source)}`)
  const good = [
    "import { isUtf8 } from 'node:buffer'",
    "import { x } from './frame.js'",
    "import type { y } from './errors.js'",
    "export * from './constants.js'"
  ]
  for (const source of good) t.same(check(PROTOCOL_DIR, file, source), [], `allowed: ${JSON.stringify(source)}`)
})

test('lib/protocol/ imports nothing outside itself but Node\'s in-memory modules (sans-I/O)', async (t) => {
  const files = protocolFiles(PROTOCOL_DIR)
  t.ok(files.length >= 9, `found ${files.length} files`)
  for (const name of ['frame.ts', 'parser.ts', 'message.ts', 'utf8.ts', 'close.ts', 'session.ts', 'handshake.ts']) {
    t.ok(files.some((f) => f.endsWith(sep + name)), `${name} scanned`)
  }
  for (const file of files) {
    const source = readFileSync(file, 'utf8')
    t.ok(specifiers(source).length > 0 || !/\bimport\b/.test(source), `${relative(PROTOCOL_DIR, file)}: imports parsed`)
    t.same(check(PROTOCOL_DIR, file, source), [], relative(PROTOCOL_DIR, file))
  }
})
