/**
 * --cases overhead: what the observability and validation work costs the
 * echo's hot path. Ours (bench/overhead-server.ts, examples/echo.ts's route)
 * on four servers, each in its own process on the server core, measured in
 * turn, round after round:
 *   before            the package built from git ref `--baseline` (the
 *                     commit before the observability work)
 *   now               this tree's build (dist/), no channel subscriber
 *   now+subscribers   the same, a subscriber on every diagnostics channel
 *   now+json          the same, on a `messages: 'json'` route with a
 *                     `schema.message`: validation on
 * before and now echo binary messages and text ones (a JSON document each);
 * now+subscribers binary ones only, now+json text ones only (it refuses
 * binary): its ratio to before's text echo is what parsing, validating and
 * re-serialising each message costs, over echoing its bytes.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BENCH, ROOT } from './launch.js'
import { LoadClient } from './load.js'
import { Server, type ServerSpec } from './servers.js'
import type { EchoPhase, PhaseResult } from './types.js'

/** One row: an echo size and kind of message, and each server's best round (absent: not run on that server). */
export interface OverheadRow {
  size: number
  text: boolean
  results: Record<string, PhaseResult>
}

export interface OverheadResult {
  /** The ref built as `before`, and the commit it named. */
  ref: string
  commit: string
  /** Column order; the first, `before`, is the one ratios are taken against. */
  servers: Array<{ name: string, label: string }>
  rows: OverheadRow[]
}

/**
 * The package as it was at `ref`: its lib/ and build files from `git
 * archive`, compiled with this tree's TypeScript and node_modules (a
 * symlink). Kept in the system's temporary directory, one per commit, and
 * reused. Returns the commit and the build's entry point.
 */
function buildBaseline (ref: string): { commit: string, entry: string } {
  const commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--verify', `${ref}^{commit}`], { encoding: 'utf8' }).trim()
  const dir = join(tmpdir(), `fastify-rfc6455-build-${commit}`)
  const entry = join(dir, 'dist', 'lib', 'index.js')
  if (existsSync(entry)) return { commit, entry }
  const building = `${dir}.${process.pid}`
  rmSync(building, { recursive: true, force: true })
  mkdirSync(building)
  try {
    execFileSync('sh', ['-c', 'git -C "$1" archive "$2" lib tsconfig.json tsconfig.build.json package.json | tar -x -C "$3"',
      'sh', ROOT, commit, building])
    symlinkSync(join(ROOT, 'node_modules'), join(building, 'node_modules'))
    execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { cwd: building, stdio: 'pipe' })
    rmSync(dir, { recursive: true, force: true })
    renameSync(building, dir)
  } catch (error) {
    rmSync(building, { recursive: true, force: true })
    const out = (error as { stdout?: Buffer }).stdout?.toString() ?? ''
    throw new Error(`could not build ${ref} (${commit}): ${(error as Error).message}\n${out}`)
  }
  return { commit, entry }
}

/**
 * Runs `rounds` rounds of `echo` (binary, then text) on the four servers in
 * turn, `before` built from `ref`, after one uncounted warm-up round; each
 * figure from the round with the highest rate.
 */
export async function runOverhead (
  ref: string,
  rounds: number,
  echo: EchoPhase[],
  progress: (label: string) => (result: PhaseResult) => void,
  log: (line: string) => void
): Promise<OverheadResult> {
  log(`overhead: building ${ref}`)
  const { commit, entry } = buildBaseline(ref)
  const now = join(ROOT, 'dist', 'lib', 'index.js')
  const binary = echo.map((phase): EchoPhase => ({ ...phase, text: false }))
  const text = echo.map((phase): EchoPhase => ({ ...phase, text: true }))
  const short = commit.slice(0, 7)
  const planned: Array<{ spec: ServerSpec, phases: EchoPhase[] }> = [
    { spec: overheadSpec('before', `before (${short})`, 'plain', entry), phases: [...binary, ...text] },
    { spec: overheadSpec('now', 'now', 'plain', now), phases: [...binary, ...text] },
    { spec: overheadSpec('now+subscribers', 'now + channel subscribers', 'subscribers', now), phases: binary },
    { spec: overheadSpec('now+json', 'now, messages: \'json\' + schema', 'json', now), phases: text }
  ]
  const perRound = new Map<string, PhaseResult[][]>()
  const running = await Server.startAll(planned.map((p) => p.spec))
  try {
    // Round 0 warms every server up (the JIT, the first buffers) and is not counted: the first phase on a fresh process would pay for it.
    for (let round = 0; round <= rounds; round++) {
      log(round === 0 ? 'overhead, warm-up round (not counted)' : `overhead, round ${round} of ${rounds}`)
      for (const [i, { spec, phases }] of planned.entries()) {
        const client = new LoadClient(running[i], phases)
        let done = 0
        const results = await client.phases(phases.length, (result) => {
          if (round > 0) progress(`${spec.label}, ${phases[done].text === true ? 'text (JSON)' : 'binary'}`)(result)
          done++
        })
        if (round > 0) perRound.set(spec.name, [...(perRound.get(spec.name) ?? []), results])
      }
    }
  } finally {
    await Promise.all(running.map((server) => server.stop()))
  }
  const rows: OverheadRow[] = [...binary, ...text].map((phase) => {
    const results: Record<string, PhaseResult> = {}
    for (const { spec, phases } of planned) {
      const i = phases.indexOf(phase)
      if (i < 0) continue
      results[spec.name] = perRound.get(spec.name)!.map((round) => round[i]).reduce((a, b) => b.perSecond > a.perSecond ? b : a)
    }
    return { size: phase.size, text: phase.text === true, results }
  })
  return { ref, commit, servers: planned.map(({ spec }) => ({ name: spec.name, label: spec.label })), rows }
}

function overheadSpec (name: string, label: string, form: 'plain' | 'subscribers' | 'json', entry: string): ServerSpec {
  return { name, label, script: `${BENCH}overhead-server.ts`, args: [form], raw: false, env: { PLUGIN: entry } }
}
