/**
 * How the bench starts its processes: Node with tsx, pinned to one core with
 * taskset when the machine has two or more, and with the open-files limit
 * raised to the hard limit (the idle-memory probe holds thousands of sockets).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import net from 'node:net'
import os from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const BENCH = fileURLToPath(new URL('.', import.meta.url))

/** Cores for the servers and the load client, or null when the processes cannot be pinned. */
export const PINNING: { server: number, client: number } | null =
  os.availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0
    ? { server: 0, client: 1 }
    : null

/** The hard limit on open files: what each process's soft limit is raised to. */
export const FD_LIMIT: number = (() => {
  const out = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()
  return out === 'unlimited' ? Infinity : Number(out) || 1024
})()

export interface LaunchOptions {
  /** Core to pin to, or null for none; ignored when PINNING is null. */
  core: number | null
  env?: Record<string, string>
  /** Node flags, after `--import tsx` (so they may `--import` TypeScript). */
  nodeFlags?: string[]
}

/** Starts `node --import tsx SCRIPT ARGS`, pinned, with the raised fd limit; the child's pid is node's. */
export function launchNode (script: string, args: string[], options: LaunchOptions): ChildProcess {
  return launch([process.execPath, '--import', 'tsx', ...(options.nodeFlags ?? []), script, ...args], options)
}

/** Starts `command` (a program and its arguments), pinned, with the raised fd limit; the child's pid is the program's. */
export function launch (program: string[], options: LaunchOptions): ChildProcess {
  const command = PINNING === null || options.core === null ? program : ['taskset', '-c', String(options.core), ...program]
  // `exec` keeps one process: the pid spawn() reports is the program's.
  const child = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...command], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  closed.set(child, new Promise((resolve) => child.once('close', (code) => resolve(code))))
  return child
}

const closed = new WeakMap<ChildProcess, Promise<number | null>>()

/** Pins every thread of running process `pid` to `core` (threads it starts later inherit it); a no-op when PINNING is null. */
export function pin (pid: number, core: number): void {
  if (PINNING === null) return
  const result = spawnSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`taskset could not pin ${pid}: ${result.stderr}`)
}

/** Calls `onLine` with each line the child writes on stdout. */
export function onLines (child: ChildProcess, onLine: (line: string) => void): void {
  createInterface({ input: child.stdout! }).on('line', onLine)
}

/** Keeps the last lines of the child's stderr, for error messages. */
export function stderrTail (child: ChildProcess): () => string {
  let tail = ''
  child.stderr!.on('data', (chunk: Buffer) => { tail = (tail + chunk.toString()).slice(-4000) })
  return () => tail.trim()
}

/** Resolves with the exit code once a child from launch() has exited and its output has all been read. */
export function exited (child: ChildProcess): Promise<number | null> {
  return closed.get(child) as Promise<number | null>
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Resolves once 127.0.0.1:`port` accepts a connection; rejects after `timeoutMs`. */
export async function waitForPort (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
