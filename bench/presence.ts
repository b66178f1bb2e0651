/**
 * Presence (`--cases presence`, docs/presence-and-control.md): a topic with
 * MEMBERS members over two instances (bench/presence-server.ts, each in its
 * own process) on a redis-server of this case's own, the clients (`ws`) in
 * this process:
 * - what a member costs: in Redis (`used_memory` before and after, over
 *   MEMBERS) and in an instance's process (JS heap and Buffers after a full
 *   GC, tracked sockets against as many untracked ones);
 * - the join storm: the time from opening MEMBERS connections at once to
 *   the last one's `track()` resolved;
 * - listing the members (`app.websocket.cluster.presence()`), in ms.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createClient } from 'redis'
import WebSocket from 'ws'
import { BENCH, exited, freePort, launchNode, onLines, waitForPort } from './launch.js'

const MEMBERS = 10_000
const INSTANCES = 2

export interface PresenceResults {
  members: number
  /** Bytes of Redis memory per member. */
  redisBytesPerMember: number
  /** Bytes of an instance's JS heap and Buffers per tracked socket, beyond an untracked socket's. */
  processBytesPerMember: number
  /** Milliseconds from opening every connection to the last track() resolved. */
  stormMs: number
  /** Milliseconds to list the members. */
  listMs: number
}

export async function runPresence (log: (line: string) => void): Promise<PresenceResults> {
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--logfile', ''], { stdio: 'ignore' })
  const servers: ChildProcess[] = []
  try {
    await waitForPort(port, 10_000)
    const url = `redis://127.0.0.1:${port}`
    const ports = await Promise.all(Array.from({ length: INSTANCES }, async () => {
      const child = launchNode(`${BENCH}presence-server.ts`, [], { core: null, env: { REDIS_URL: url }, nodeFlags: ['--expose-gc'] })
      servers.push(child)
      return await new Promise<number>((resolve, reject) => {
        onLines(child, (line) => { if (line.startsWith('{"listening"')) resolve((JSON.parse(line) as { listening: number }).listening) })
        exited(child).then((code) => reject(new Error(`presence server exited (${code})`)), reject)
      })
    }))
    const memory = async (): Promise<number> => {
      const figures = await Promise.all(ports.map(async (p) => ((await (await fetch(`http://127.0.0.1:${p}/memory`)).json()) as { bytes: number }).bytes))
      return figures.reduce((a, b) => a + b, 0)
    }
    const untracked = await open(ports, false)
    const base = await memory()
    await close(untracked)
    const redisBefore = await usedMemory(url)
    const started = performance.now()
    const tracked = await open(ports, true)
    const stormMs = performance.now() - started
    log(`presence: ${MEMBERS} members joined over ${INSTANCES} instances in ${stormMs.toFixed(0)} ms`)
    const redisAfter = await usedMemory(url)
    const processBytesPerMember = ((await memory()) - base) / MEMBERS
    const listed = (await (await fetch(`http://127.0.0.1:${ports[0]}/members`)).json()) as { count: number, ms: number }
    if (listed.count !== MEMBERS) throw new Error(`presence: listed ${listed.count} members, expected ${MEMBERS}`)
    await close(tracked)
    return { members: MEMBERS, redisBytesPerMember: (redisAfter - redisBefore) / MEMBERS, processBytesPerMember, stormMs, listMs: listed.ms }
  } finally {
    for (const child of servers) child.kill('SIGKILL')
    redis.kill('SIGKILL')
  }
}

/** Opens MEMBERS sockets spread over the instances at once; resolves once each said `ok`. */
async function open (ports: number[], track: boolean): Promise<WebSocket[]> {
  return await Promise.all(Array.from({ length: MEMBERS }, (_, i) => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${ports[i % ports.length]}/p?id=member-${i}&track=${track ? 1 : 0}`)
    ws.once('message', () => resolve(ws))
    ws.once('error', reject)
  })))
}

/** Redis's `used_memory`, in bytes. */
async function usedMemory (url: string): Promise<number> {
  const client = createClient({ url })
  await client.connect()
  try {
    return Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1])
  } finally {
    client.destroy()
  }
}

async function close (sockets: WebSocket[]): Promise<void> {
  await Promise.all(sockets.map((ws) => new Promise((resolve) => { ws.once('close', resolve); ws.close() })))
}

export function renderPresence (r: PresenceResults): string {
  return [
    `Presence: one topic, ${r.members.toLocaleString('en-US')} members over ${INSTANCES} instances (one redis-server)`,
    '',
    '| | |',
    '|---|---:|',
    `| Redis memory per member | ${Math.round(r.redisBytesPerMember)} B |`,
    `| process memory per member (JS heap + Buffers, beyond the socket) | ${Math.round(r.processBytesPerMember)} B |`,
    `| join storm: ${r.members.toLocaleString('en-US')} connections at once, to the last track() | ${(r.stormMs / 1000).toFixed(2)} s |`,
    `| listing the members (cluster.presence()) | ${r.listMs.toFixed(1)} ms |`
  ].join('\n')
}
