/**
 * Every relative link of README.md and docs/*.md leads somewhere: the file
 * exists, and a `#fragment` names a heading of it (GitHub's anchors:
 * lowercase, punctuation dropped, spaces as hyphens). Links to other sites
 * are not followed.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import tap from 'tap'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** The text outside fenced code blocks, where links are links. */
function prose (text: string): string {
  let fence: string | null = null
  const kept: string[] = []
  for (const line of text.split('\n')) {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1]
    if (fence === null && marker !== undefined) fence = marker
    else if (fence !== null && /^[`~]+$/.test(line.trim()) && line.trim().startsWith(fence)) fence = null
    else if (fence === null) kept.push(line)
  }
  return kept.join('\n')
}

/** GitHub's anchor of a heading. */
function anchor (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

async function anchors (file: string): Promise<Set<string>> {
  const text = prose(await readFile(file, 'utf8'))
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchor(match[1])))
}

tap.test('relative links of README.md and docs/*.md resolve', async (t) => {
  const files = ['README.md', ...(await readdir(join(root, 'docs'))).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)]
  for (const file of files) {
    const text = prose(await readFile(join(root, file), 'utf8')).replace(/`[^`\n]*`/g, '')
    const broken: string[] = []
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue
      const [path, fragment] = target.split('#', 2)
      const resolved = path === '' ? join(root, file) : normalize(join(root, dirname(file), path))
      if (!existsSync(resolved)) {
        broken.push(`${target}: no file ${relative(root, resolved)}`)
        continue
      }
      if (fragment !== undefined && resolved.endsWith('.md') && !(await anchors(resolved)).has(fragment)) {
        broken.push(`${target}: no heading #${fragment} in ${relative(root, resolved)}`)
      }
    }
    t.same(broken, [], `${file}: every relative link resolves`)
  }
})

tap.test('anchors as GitHub makes them', async (t) => {
  t.equal(anchor('Outgoing messages: schema.send'), 'outgoing-messages-schemasend')
  t.equal(anchor("Large messages and glibc's malloc"), 'large-messages-and-glibcs-malloc')
  t.equal(anchor('HTTP/2'), 'http2')
  t.equal(anchor('Coming from `@fastify/websocket`'), 'coming-from-fastifywebsocket')
})
