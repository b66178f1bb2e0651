/**
 * What both load clients (bench/client.ts over TCP, bench/h2client.ts over
 * HTTP/2 streams) share: masked client frames, counting server frames in
 * place, a latency histogram, the guard of an opening, and a measured
 * window (its CPU sampling and its PhaseResult). The phase drivers built on
 * them are in bench/drivers.ts. Independent of the code under test: nothing from lib/.
 */
import type { EventEmitter } from 'node:events'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { readCpuSeconds, readMachineTicks } from './proc.js'
import type { ClientJob, PhaseResult } from './types.js'

export const OP_TEXT = 0x1
export const OP_BINARY = 0x2
export const OP_CLOSE = 0x8
export const OP_PING = 0x9
export const OP_PONG = 0xa
/** The server's close frame echoing code 1000, unmasked (RFC 6455 §5.5.1). */
export const SERVER_CLOSE = Buffer.from([0x88, 0x02, 0x03, 0xe8])

/** One masked client frame (RFC 6455 §5.2, §5.3). */
export function maskedFrame (opcode: number, payload: Buffer, mask: Buffer): Buffer {
  const length = payload.length
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8
  const frame = Buffer.allocUnsafe(2 + extra + 4 + length)
  frame[0] = 0x80 | opcode
  if (extra === 0) {
    frame[1] = 0x80 | length
  } else if (extra === 2) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  const at = 2 + extra
  mask.copy(frame, at)
  for (let i = 0; i < length; i++) frame[at + 4 + i] = payload[i] ^ mask[i & 3]
  return frame
}

/**
 * Log-linear histogram of microseconds: exact below 64, then 32 buckets per
 * power of two (about 3% wide). Fixed size, no allocation per sample.
 */
export class Histogram {
  private readonly counts = new Float64Array(64 + 26 * 32)
  total = 0

  record (us: number): void {
    const v = us < 0 ? 0 : Math.min(us, 0x7fffffff) | 0
    let index = v
    if (v >= 64) {
      const exponent = 31 - Math.clz32(v)
      index = 64 + (exponent - 6) * 32 + ((v >>> (exponent - 5)) - 32)
    }
    this.counts[index]++
    this.total++
  }

  /** The value at quantile `q` (0..1): the middle of its bucket. */
  quantile (q: number): number {
    if (this.total === 0) return NaN
    const rank = Math.ceil(q * this.total)
    let seen = 0
    for (let index = 0; index < this.counts.length; index++) {
      seen += this.counts[index]
      if (seen >= rank) {
        if (index < 64) return index
        const exponent = 6 + Math.floor((index - 64) / 32)
        const mantissa = 32 + ((index - 64) % 32)
        return (mantissa + 0.5) * 2 ** (exponent - 5)
      }
    }
    return NaN
  }

  reset (): void {
    this.counts.fill(0)
    this.total = 0
  }
}

/**
 * Counts whole frames in a byte stream without copying it: server frames,
 * or with `raw` the client's own masked frames coming back. A frame whose
 * opcode or payload length is not the expected one counts as an error. With
 * an expected opcode, a ping or pong (the server's heartbeat ping, every
 * 30 s by default) is skipped: neither a frame of the phase nor an error.
 */
export class FrameReader {
  errors = 0
  private remaining = 0
  /** The frame whose payload is being skipped is a ping or pong: not counted when it ends. */
  private control = false
  private partial: Buffer | null = null

  /** `opcode` and `length` expected of every frame; -1 accepts any. */
  constructor (private readonly opcode: number, private readonly length: number) {}

  /** Returns how many frames `chunk` completed. */
  read (chunk: Buffer): number {
    if (this.partial !== null) {
      chunk = Buffer.concat([this.partial, chunk])
      this.partial = null
    }
    const end = chunk.length
    let pos = 0
    let frames = 0
    while (pos < end) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, end - pos)
        this.remaining -= take
        pos += take
        if (this.remaining === 0 && !this.control) frames++
        continue
      }
      if (end - pos < 2) {
        this.partial = Buffer.from(chunk.subarray(pos))
        break
      }
      const b0 = chunk[pos]
      const b1 = chunk[pos + 1]
      let length = b1 & 0x7f
      const extra = length === 126 ? 2 : length === 127 ? 8 : 0
      const headerLength = 2 + extra + ((b1 & 0x80) !== 0 ? 4 : 0)
      if (end - pos < headerLength) {
        this.partial = Buffer.from(chunk.subarray(pos))
        break
      }
      if (extra === 2) length = chunk.readUInt16BE(pos + 2)
      else if (extra === 8) length = chunk.readUInt32BE(pos + 2) * 0x100000000 + chunk.readUInt32BE(pos + 6)
      const opcode = b0 & 0x0f
      this.control = this.opcode >= 0 && (opcode === OP_PING || opcode === OP_PONG)
      if (!this.control && ((this.opcode >= 0 && opcode !== this.opcode) || (this.length >= 0 && length !== this.length))) this.errors++
      pos += headerLength
      this.remaining = length
      if (length === 0 && !this.control) frames++
    }
    return frames
  }
}

/**
 * Guards the opening of `target` (a socket, an HTTP/2 session): its first
 * 'error', or `timeout` after 20 s, calls `fail`, which destroys it and
 * rejects with the error. `opened()` ends the guard; errors after it are
 * ignored (a phase counts what goes wrong).
 */
export function guardOpening (target: EventEmitter & { destroy: () => void }, timeout: string, reject: (error: Error) => void): { fail: (error: Error) => void, opened: () => void } {
  const timer = setTimeout(() => fail(new Error(timeout)), 20000)
  const fail = (error: Error): void => {
    clearTimeout(timer)
    target.destroy()
    reject(error)
  }
  target.once('error', fail)
  const opened = (): void => {
    clearTimeout(timer)
    target.off('error', fail)
    target.on('error', () => {})
  }
  return { fail, opened }
}

export const sleep = (seconds: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, seconds * 1000))

export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n)

/** Samples CPU over one measured window: this process, the server, its peers, everything else, and the hypervisor's steal. */
export class Window {
  private readonly serverPid: number
  private readonly peerPids: number[]
  private start = 0
  private startUs = 0
  private cpu = process.cpuUsage()
  private server = 0
  private peers: number[] = []
  private machine = readMachineTicks()

  /** `serverPid`: the server process; `peerPids`: more processes sampled beside it. */
  constructor (serverPid: number, peerPids: number[] = []) {
    this.serverPid = serverPid
    this.peerPids = peerPids
  }

  begin (): void {
    this.startUs = monotonicUs()
    this.start = performance.now()
    this.cpu = process.cpuUsage()
    this.server = readCpuSeconds(this.serverPid)
    this.peers = this.peerPids.map(readCpuSeconds)
    this.machine = readMachineTicks()
  }

  end (): Pick<PhaseResult, 'seconds' | 'clientCpu' | 'serverCpu' | 'otherCpu' | 'peerCpu' | 'steal' | 'startUs' | 'endUs'> {
    const endUs = monotonicUs()
    const seconds = (performance.now() - this.start) / 1000
    const cpu = process.cpuUsage(this.cpu)
    const machine = readMachineTicks()
    const total = machine.total - this.machine.total
    const clientCpu = (cpu.user + cpu.system) / 1e6 / seconds * 100
    const serverCpu = (readCpuSeconds(this.serverPid) - this.server) / seconds * 100
    const peerCpu = this.peerPids.map((pid, i) => (readCpuSeconds(pid) - this.peers[i]) / seconds * 100)
    const busyCpu = (total - (machine.idle - this.machine.idle)) / total * os.availableParallelism() * 100
    return {
      seconds,
      clientCpu,
      serverCpu,
      otherCpu: Math.max(0, busyCpu - clientCpu - serverCpu - peerCpu.reduce((a, b) => a + b, 0)),
      peerCpu,
      steal: (machine.steal - this.machine.steal) / total * 100,
      startUs: this.startUs,
      endUs
    }
  }
}

/** What Window.end() gives: the window's length, its CPU figures and its place on the monotonic clock. */
export type Sample = ReturnType<Window['end']>

/**
 * Waits out the phase's `warmup` seconds, then samples one measured window
 * of `duration` seconds, calling `measuring(true)` as it begins and
 * `measuring(false)` as it ends.
 */
export async function measure (phase: { warmup: number, duration: number }, job: ClientJob, measuring: (on: boolean) => void): Promise<Sample> {
  await sleep(phase.warmup)
  const window = new Window(job.serverPid, job.peerPids)
  window.begin()
  measuring(true)
  await sleep(phase.duration)
  measuring(false)
  return window.end()
}

/** A phase's result but for `errors` (and fan-out's own fields): `count` over the window, `size`-byte payloads, latencies from `histogram`. */
export function phaseResult (kind: PhaseResult['kind'], size: number, sample: Sample, count: number, histogram: Histogram): Omit<PhaseResult, 'errors'> {
  return {
    kind,
    size,
    ...sample,
    count,
    perSecond: count / sample.seconds,
    mbPerSecond: count * size / sample.seconds / 1e6,
    p50us: histogram.quantile(0.5),
    p99us: histogram.quantile(0.99)
  }
}
