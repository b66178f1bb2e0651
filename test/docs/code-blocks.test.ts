/**
 * Every code block of README.md and docs/*.md, checked as a user would run
 * it: against the packed package (test/docs/packed.ts), imported as
 * `fastify-rfc6455`, `fastify-rfc6455/redis`, `fastify-rfc6455/compat`.
 *
 * The conventions (docs/CONTRIBUTING-docs.md says the same for writers):
 * - ```ts (or ```typescript) blocks are type-checked, each as its own module,
 *   by tsc with `strict`, `module`/`moduleResolution` `nodenext`, no
 *   `skipLibCheck`, top-level await allowed. Nothing runs.
 * - ```js (or ```javascript) blocks run, each alone, with
 *   `node --test --test-timeout=10000` in the consumer project (an ES module
 *   with the package installed): they must exit 0 within a minute. Write
 *   tests (node:test) or scripts that end by themselves.
 * - A fragment gets a prelude, code put before it and not shown: one or more
 *   HTML comments right before the fence (blank lines between them allowed).
 *   `<!-- prelude: app -->` names preludes of PRELUDES below; a comment
 *   starting `<!-- prelude` followed by a line break holds the code itself:
 *
 *     <!-- prelude: app
 *     declare function enrich (data: unknown): Promise<unknown>
 *     -->
 *
 *   names `app`, then adds the lines after the first. Errors are reported at
 *   the block's line in the Markdown file.
 * - Other blocks (```sh, ```text, no language...) are not checked.
 */
import { readdir, readFile, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import tap from 'tap'
import { packedConsumer, root, run } from './packed.js'

/**
 * The named preludes. Their imports take names a page would not use, so that
 * a block may import `Fastify` or the plugin itself.
 */
const PRELUDES: Record<string, string> = {
  /** `app`: a Fastify app with the plugin registered. */
  app: `import PreludeFastify from 'fastify'
import preludePlugin from 'fastify-rfc6455'
const app = PreludeFastify()
await app.register(preludePlugin)`,
  /** `fastify`: a Fastify app without the plugin (the block registers it). */
  fastify: `import PreludeFastify from 'fastify'
const app = PreludeFastify()`,
  /** `typebox`: an app with the plugin, TypeBox's `Type` and `TypeBoxTypeProvider`, and a message schema `Chat` ({ room, text }). */
  typebox: `import PreludeFastify from 'fastify'
import preludePlugin from 'fastify-rfc6455'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
const app = PreludeFastify()
await app.register(preludePlugin)
const Chat = Type.Object({ room: Type.String(), text: Type.String({ maxLength: 500 }) })`
}

interface Block {
  /** The Markdown file, relative to the repo. */
  file: string
  /** Line of the block's first code line in the file, from 1. */
  line: number
  lang: 'ts' | 'js'
  code: string
  prelude: string
  /** Problems with the block's comments (an unknown prelude name). */
  problems: string[]
}

const LANGS: Record<string, 'ts' | 'js'> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js' }

/** The ts and js blocks of a Markdown text, with their preludes. */
function extractBlocks (file: string, text: string): Block[] {
  const lines = text.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i])
    if (open === null) continue
    const [, indent, fence, info] = open
    let end = i + 1
    while (end < lines.length && !(lines[end].trim().startsWith(fence) && /^[`~]+$/.test(lines[end].trim()))) end++
    const lang = LANGS[info.toLowerCase()]
    if (lang !== undefined) {
      const code = lines.slice(i + 1, end).map((line) => line.startsWith(indent) ? line.slice(indent.length) : line).join('\n')
      blocks.push({ file, line: i + 2, lang, code, ...prelude(lines, i) })
    }
    i = end
  }
  return blocks
}

/** The prelude declared by the HTML comments right before the fence at line `fence`. */
function prelude (lines: string[], fence: number): { prelude: string, problems: string[] } {
  const comments: string[] = []
  let i = fence - 1
  while (i >= 0) {
    if (lines[i].trim() === '') {
      i--
      continue
    }
    if (!lines[i].trim().endsWith('-->')) break
    let start = i
    while (start >= 0 && !lines[start].includes('<!--')) start--
    if (start < 0) break
    const comment = lines.slice(start, i + 1).map((line) => line.trim()).join('\n')
    comments.unshift(comment.slice(comment.indexOf('<!--') + 4, comment.lastIndexOf('-->')))
    i = start - 1
  }
  const parts: string[] = []
  const problems: string[] = []
  for (const comment of comments) {
    const match = /^\s*prelude(?::([^\n]*))?(?:\n([\s\S]*))?$/.exec(comment)
    if (match === null) continue
    const [, names = '', code = ''] = match
    for (const name of names.split(/[\s,]+/).filter((n) => n !== '')) {
      if (PRELUDES[name] === undefined) problems.push(`unknown prelude "${name}" (known: ${Object.keys(PRELUDES).join(', ')})`)
      else parts.push(PRELUDES[name])
    }
    if (code.trim() !== '') parts.push(code.replace(/\s+$/, ''))
  }
  return { prelude: parts.join('\n'), problems }
}

/** README.md and every docs/*.md, relative to the repo. */
async function markdownFiles (): Promise<string[]> {
  const docs = (await readdir(join(root, 'docs'))).filter((file) => file.endsWith('.md')).sort().map((file) => `docs/${file}`)
  return ['README.md', ...docs]
}

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    moduleDetection: 'force',
    target: 'es2022',
    lib: ['es2023'],
    types: ['node'],
    noEmit: true
  },
  include: ['blocks/**/*.ts']
}

/** A block's file name in the consumer project. */
function fileName (block: Block): string {
  return `${block.file.replace(/[^\w.-]/g, '_')}_L${block.line}.${block.lang === 'ts' ? 'ts' : 'js'}`
}

/** The block as written to the project, and how many lines its prelude takes. */
function source (block: Block): { text: string, offset: number } {
  if (block.prelude === '') return { text: block.code, offset: 0 }
  return { text: `${block.prelude}\n${block.code}\n`, offset: block.prelude.split('\n').length }
}

/** A synthetic page with one wrong block: shows the check fails, at the right line. */
const BROKEN_PAGE = 'test/docs/broken.md'
const BROKEN = `# A page

<!-- prelude: app -->

\`\`\`ts
app.get('/x', { ws: true }, (socket) => {
  socket.sendd('x')
})
\`\`\`
`

// npm pack builds; tsc without skipLibCheck reads every .d.ts of fastify, redis and Node.
tap.setTimeout(600_000)

tap.test('the code blocks of README.md and docs/*.md', async (t) => {
  const files = await markdownFiles()
  const blocks: Block[] = []
  for (const file of files) blocks.push(...extractBlocks(file, await readFile(join(root, file), 'utf8')))
  const broken = extractBlocks(BROKEN_PAGE, BROKEN)
  t.ok(blocks.some((block) => block.file === 'README.md' && block.lang === 'ts'), 'the README has TypeScript blocks')

  const consumer = await packedConsumer()
  t.teardown(() => consumer.remove())
  await mkdir(join(consumer.dir, 'blocks'))
  await writeFile(join(consumer.dir, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2))
  const byName = new Map<string, { block: Block, offset: number }>()
  for (const block of [...blocks, ...broken]) {
    const { text, offset } = source(block)
    byName.set(fileName(block), { block, offset })
    await writeFile(join(consumer.dir, 'blocks', fileName(block)), text)
  }

  const tsc = await run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', consumer.dir], consumer.dir)
  /** tsc's errors as `file.md:line: message`, by Markdown file. */
  const errors = new Map<string, string[]>()
  for (const line of tsc.output.split('\n')) {
    const match = /^blocks\/([^(]+)\((\d+),(\d+)\): (error TS\d+: .*)$/.exec(line)
    if (match === null) {
      if (/error TS\d+/.test(line)) t.fail(`tsc: ${line}`)
      continue
    }
    const [, name, row, , message] = match
    const entry = byName.get(name)
    if (entry === undefined) {
      t.fail(`tsc: ${line}`)
      continue
    }
    const at = Number(row) - entry.offset
    const where = at >= 1 ? `${entry.block.file}:${entry.block.line + at - 1}` : `${entry.block.file}:${entry.block.line} (prelude line ${row})`
    errors.set(entry.block.file, [...(errors.get(entry.block.file) ?? []), `${where}: ${message}`])
  }

  t.test('a wrong block fails the check, reported at its line', async (t) => {
    t.match(errors.get(BROKEN_PAGE) ?? [], [/^test\/docs\/broken\.md:7: error TS2551: Property 'sendd' does not exist/])
  })

  for (const file of files) {
    const own = blocks.filter((block) => block.file === file)
    if (own.length === 0) continue
    t.test(file, async (t) => {
      t.same(own.flatMap((block) => block.problems.map((problem) => `${file}:${block.line}: ${problem}`)), [], 'preludes are known')
      const ts = own.filter((block) => block.lang === 'ts')
      if (ts.length > 0) t.same(errors.get(file) ?? [], [], `${ts.length} TypeScript blocks compile`)
      for (const block of own.filter((block) => block.lang === 'js')) {
        const ran = await run(process.execPath, ['--test', '--test-timeout=10000', join('blocks', fileName(block))], consumer.dir, 60_000)
        t.equal(ran.code, 0, `${file}:${block.line}: the JavaScript block runs`, { output: ran.output })
      }
    })
  }
})

tap.test('block extraction: fences, languages, preludes', async (t) => {
  const page = [
    '<!-- prelude: app -->', '', '```ts', 'one', '```', '',
    'text', '```js', 'two', '```', '',
    '<!-- prelude: fastify', 'declare const x: number', '-->', '```typescript', 'three', '```', '',
    '- a list', '', '  ```ts', '  four', '  ```', '',
    '<!-- prelude: nothing -->', '```ts', 'five', '```', '```sh', 'npm test', '```'
  ].join('\n')
  const blocks = extractBlocks('page.md', page)
  t.same(blocks.map((block) => [block.line, block.lang, block.code]),
    [[4, 'ts', 'one'], [9, 'js', 'two'], [16, 'ts', 'three'], [22, 'ts', 'four'], [27, 'ts', 'five']])
  t.equal(blocks[0].prelude, PRELUDES.app)
  t.equal(blocks[1].prelude, '', 'a comment before text is not a prelude of the next block')
  t.equal(blocks[2].prelude, `${PRELUDES.fastify}\ndeclare const x: number`)
  t.same(blocks[4].problems, ['unknown prelude "nothing" (known: app, fastify, typebox)'])
})
