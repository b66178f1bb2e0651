/**
 * The load client (bench/client.ts, or the server's `client`) as the parent sees it: a process of its
 * own on the client core, told its job on the command line, answering with
 * one JSON line per step; in idle mode it waits for a line on stdin between
 * steps.
 */
import type { ChildProcess } from 'node:child_process'
import { BENCH, PINNING, exited, launchNode, onLines, stderrTail } from './launch.js'
import type { Server } from './servers.js'
import type { ClientJob, IdleReport, Phase, PhaseResult } from './types.js'

export class LoadClient {
  private readonly server: Server
  private readonly child: ChildProcess
  private readonly stderr: () => string
  private readonly lines: string[] = []
  private wake: (() => void) | null = null

  /**
   * Starts a client for `server`: with `idle`, it first holds that many idle
   * connections (see IdleReport), then runs `phases`; the CPU time of
   * `peerPids` is sampled beside the server's.
   */
  constructor (server: Server, phases: Phase[], options: { idle?: number, peerPids?: number[] } = {}) {
    this.server = server
    const job: ClientJob = {
      port: server.port, raw: server.spec.raw, serverPid: server.pid, peerPids: options.peerPids, phases, idle: options.idle
    }
    this.child = launchNode(server.spec.client ?? `${BENCH}client.ts`, [JSON.stringify(job)], { core: PINNING?.client ?? 1 })
    this.stderr = stderrTail(this.child)
    onLines(this.child, (line) => {
      this.lines.push(line)
      this.wake?.()
    })
  }

  /** Idle mode: resolves with the next report; `command` first tells the client to go on. */
  async idleStep (command?: 'open' | 'ping'): Promise<IdleReport> {
    if (command !== undefined) this.child.stdin!.write(command + '\n')
    return JSON.parse(await this.nextLine()) as IdleReport
  }

  /** Collects the results of the `count` phases, `onResult` seeing each as it comes, and waits for the client to exit. */
  async phases (count: number, onResult: (result: PhaseResult) => void): Promise<PhaseResult[]> {
    const results: PhaseResult[] = []
    while (results.length < count) {
      const result = JSON.parse(await this.nextLine()) as PhaseResult
      results.push(result)
      onResult(result)
    }
    const code = await exited(this.child)
    if (code !== 0) throw new Error(`load client against ${this.server.spec.label} exited with ${code}:\n${this.stderr()}`)
    return results
  }

  private async nextLine (): Promise<string> {
    const done = exited(this.child)
    while (this.lines.length === 0) {
      const code = await Promise.race([done, new Promise<'line'>((resolve) => { this.wake = () => resolve('line') })])
      this.wake = null
      if (code !== 'line' && this.lines.length === 0) {
        this.server.checkAlive()
        throw new Error(`load client against ${this.server.spec.label} exited with ${code}:\n${this.stderr()}`)
      }
    }
    return this.lines.shift()!
  }
}
