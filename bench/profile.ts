/**
 * --profile: runs one server under `node --cpu-prof` through one run and
 * summarizes the .cpuprofile V8 writes at exit: where the time went by area
 * (our code, Fastify, Node internals, GC, native), the functions with the
 * most self time, and the inclusive time of our own functions.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LoadClient } from './load.js'
import { ROOT } from './launch.js'
import { fanoutLabel, sizeLabel } from './report.js'
import { Server, type ServerSpec } from './servers.js'
import type { Phase, PhaseResult } from './types.js'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, samples: number[], timeDeltas: number[] }

/** Where a function's code lives, for the summary by area. */
function area (url: string, name: string): string {
  if (name === '(garbage collector)') return 'garbage collector'
  if (name === '(idle)' || name === '(program)' || name === '(root)') return name
  if (url === '') return 'native (V8 builtins, C++)'
  if (url.includes('/dist/lib/') || url.includes('/lib/protocol/') || url.startsWith(`file://${ROOT}lib/`)) return 'fastify-rfc6455 (lib/)'
  if (url.includes('/node_modules/')) return `node_modules/${url.split('/node_modules/').pop()!.split('/').slice(0, url.includes('/node_modules/@') ? 2 : 1).join('/')}`
  if (url.startsWith('node:')) return 'Node internals'
  return 'other'
}

function shortUrl (url: string): string {
  const local = url.replace(`file://${ROOT}`, '')
  const modules = local.lastIndexOf('node_modules/')
  return modules >= 0 ? local.slice(modules + 'node_modules/'.length) : local
}

function key (frame: CallFrame): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
  return frame.url === '' ? name : `${name}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
}

export interface ProfileSummary {
  /** Milliseconds sampled, idle excluded. */
  busyMs: number
  areas: Array<[string, number]>
  self: Array<[string, number]>
  /** Our functions by inclusive time. */
  ours: Array<[string, number]>
}

/** Summarizes the samples taken between `fromUs` and `toUs` (monotonic clock, as the profile's timestamps). */
export function summarize (profile: CpuProfile, fromUs: number, toUs: number): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  let time = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i]
    if (time < fromUs || time > toUs) continue
    // timeDeltas[i + 1] is the time from sample i to the next one: sample i's share.
    const id = profile.samples[i]
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0))
  }
  const selfByKey = new Map<string, number>()
  const areas = new Map<string, number>()
  let busy = 0
  for (const node of profile.nodes) {
    const time = self.get(node.id) ?? 0
    if (time === 0) continue
    const where = area(node.callFrame.url, node.callFrame.functionName)
    areas.set(where, (areas.get(where) ?? 0) + time)
    if (where === '(idle)') continue
    busy += time
    selfByKey.set(key(node.callFrame), (selfByKey.get(key(node.callFrame)) ?? 0) + time)
  }
  // Inclusive time of each function, counted once per stack even when it recurses.
  const inclusive = new Map<string, number>()
  const onStack = new Map<string, number>()
  const walk = (node: ProfileNode): number => {
    const k = key(node.callFrame)
    onStack.set(k, (onStack.get(k) ?? 0) + 1)
    let total = self.get(node.id) ?? 0
    for (const child of node.children ?? []) total += walk(byId.get(child)!)
    onStack.set(k, onStack.get(k)! - 1)
    if (onStack.get(k) === 0) inclusive.set(k, (inclusive.get(k) ?? 0) + total)
    return total
  }
  walk(profile.nodes[0])
  const sorted = (map: Map<string, number>): Array<[string, number]> => [...map].sort((a, b) => b[1] - a[1])
  return {
    busyMs: busy / 1000,
    areas: sorted(areas).filter(([name]) => name !== '(idle)'),
    self: sorted(selfByKey),
    ours: sorted(inclusive).filter(([k]) => k.includes('dist/lib/'))
  }
}

function what (result: PhaseResult): string {
  if (result.kind === 'echo') return `${sizeLabel(result.size)} echo`
  if (result.kind === 'fanout') return `${fanoutLabel(result.subscribers ?? 0, result.size)} fan-out`
  return 'handshakes'
}

export function renderProfile (label: string, result: PhaseResult, summary: ProfileSummary): string {
  const pct = (us: number): string => `${(us / 10 / summary.busyMs).toFixed(1).padStart(5)}%`
  return [
    `Profile of ${label}, ${what(result)} under --cpu-prof: ` +
      `${Math.round(result.perSecond).toLocaleString('en-US')}/s ` +
      `(profiler on), CPU server ${Math.round(result.serverCpu)}% / client ${Math.round(result.clientCpu)}% / others ${Math.round(result.otherCpu)}%;`,
    `${Math.round(summary.busyMs)} ms of busy samples in the ${result.seconds.toFixed(1)} s measured window (idle excluded)`,
    '',
    'By area (self time):',
    ...summary.areas.filter(([, us]) => us / 10 / summary.busyMs >= 0.1).map(([name, us]) => `  ${pct(us)}  ${name}`),
    '',
    'Top functions by self time:',
    ...summary.self.slice(0, 30).map(([name, us]) => `  ${pct(us)}  ${name}`),
    '',
    'Our functions by inclusive time (callees included):',
    ...summary.ours.slice(0, 20).map(([name, us]) => `  ${pct(us)}  ${name}`)
  ].join('\n')
}

/** Starts `spec` with --cpu-prof, runs `phase`, stops it, and summarizes the profile. */
export async function profileServer (spec: ServerSpec, phase: Phase): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rfc6455-prof-'))
  try {
    const server = await Server.start(spec, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '250'])
    let result: PhaseResult
    try {
      [result] = await new LoadClient(server, [phase]).phases(1, () => {})
    } finally {
      await server.stop()
    }
    // One profile per thread (tsx's loader runs on one of its own): the main thread's is the largest.
    const files = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))
      .map((name) => path.join(dir, name)).sort((a, b) => statSync(b).size - statSync(a).size)
    if (files.length === 0) throw new Error(`${spec.label} wrote no .cpuprofile`)
    const profile = JSON.parse(readFileSync(files[0], 'utf8')) as CpuProfile
    return renderProfile(spec.label, result, summarize(profile, result.startUs, result.endUs))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
