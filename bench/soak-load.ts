/**
 * The load of `npm run soak` (bench/soak.ts), in its own process, `ws` clients
 * on real TCP sockets to 127.0.0.1:
 *   node --import tsx bench/soak-load.ts PORT LONG_LIVED CHURN
 * LONG_LIVED connections stay open and each sends a message every 0.5-3 s;
 * CHURN loops each open a connection, send 1-8 messages, close it, pause
 * 0-50 ms and start again. Half the connections offer permessage-deflate.
 * A message is 16 B to 256 KiB (log-uniform): text, incompressible binary or
 * compressible binary, a third each. A churn connection ends one of three ways:
 *   clean      every echo received, then a closing handshake (1000)
 *   close-now  a closing handshake right after the last send: every echo
 *              must still arrive before the server's close frame
 *   abrupt     0-30 ms after the last send, the TCP connection is destroyed
 *              without a close frame (ws terminate()), mid-frame at times
 * Every echo is checked against what was sent, in order, byte for byte.
 *
 * Commands on stdin, one a line: `stats` prints the counters (LoadCounters)
 * as one JSON line; `stop` ends the churn, closes every long-lived
 * connection with a closing handshake, prints the counters and exits.
 * Prints `ready` once the long-lived connections are open; exits when stdin ends.
 */
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'

export interface LoadCounters {
  /** Connections opened (handshake completed), long-lived and churn. */
  opened: number
  /** Connections whose handshake failed. */
  failedOpens: number
  /** Connections open now, on the client's side. */
  open: number
  /** Connections closed by a closing handshake the client started, the server answering 1000. */
  closedClean: number
  /** Connections destroyed without a close frame. */
  closedAbrupt: number
  /** Connections the client did not close (or whose close code was not 1000). */
  closedUnexpectedly: number
  /** Messages sent, and their payload bytes. */
  sent: number
  sentBytes: number
  /** Messages echoed byte for byte, in order. */
  echoed: number
  /** Echoes that did not match the next message awaiting one (bytes, or text/binary). */
  mismatched: number
  /** Messages sent on connections destroyed without a close frame, not echoed before that. */
  lostOnAbrupt: number
  /** Messages sent on connections closed any other way, not echoed before the close: lost. */
  missing: number
  /** 'error' events, and the first few messages. */
  errors: number
  errorSamples: string[]
}

const [port, longLived, churn] = process.argv.slice(2).map(Number)
const url = `ws://127.0.0.1:${port}/`
const MIN_SIZE_LOG2 = 4
const MAX_SIZE_LOG2 = 18
const POOL_SIZE = 2 ** MAX_SIZE_LOG2 * 2

const counters: LoadCounters = {
  opened: 0,
  failedOpens: 0,
  open: 0,
  closedClean: 0,
  closedAbrupt: 0,
  closedUnexpectedly: 0,
  sent: 0,
  sentBytes: 0,
  echoed: 0,
  mismatched: 0,
  lostOnAbrupt: 0,
  missing: 0,
  errors: 0,
  errorSamples: []
}

/** Incompressible bytes, and ASCII JSON-like text (compressible), that payloads are slices of. */
const RANDOM = randomBytes(POOL_SIZE)
const TEXT = Buffer.from(Array.from({ length: POOL_SIZE / 32 }, (_, i) =>
  `{"id":${i},"v":"${(i * 7919 % 100000).toString(36)}"}`).join('\n').slice(0, POOL_SIZE), 'latin1')

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const randomInt = (n: number): number => Math.floor(Math.random() * n)

/** One client connection: what it sent, in order, until each echo comes back. */
class Tracked {
  readonly ws: WebSocket
  readonly closed: Promise<{ code: number, clean: boolean }>
  private readonly pending: Array<{ data: Buffer, binary: boolean }> = []
  private drainWaiters: Array<() => void> = []

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const expected = this.pending.shift()
      if (expected !== undefined && expected.binary === isBinary && expected.data.equals(data)) counters.echoed++
      else counters.mismatched++
      if (this.pending.length === 0) for (const resolve of this.drainWaiters.splice(0)) resolve()
    })
    this.closed = new Promise((resolve) => ws.once('close', (code) => {
      counters.open--
      resolve({ code, clean: code === 1000 })
    }))
  }

  /** Opens a connection, offering permessage-deflate or not; null when the handshake fails. */
  static open (deflate: boolean): Promise<Tracked | null> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { perMessageDeflate: deflate })
      ws.on('error', (err) => {
        counters.errors++
        if (counters.errorSamples.length < 5) counters.errorSamples.push(err.message)
      })
      let isOpen = false
      ws.once('open', () => {
        isOpen = true
        counters.opened++
        counters.open++
        resolve(new Tracked(ws))
      })
      ws.once('unexpected-response', () => ws.terminate())
      ws.once('close', () => {
        if (isOpen) return
        counters.failedOpens++
        resolve(null)
      })
    })
  }

  get inFlight (): number {
    return this.pending.length
  }

  /** Sends one message of 16 B to 256 KiB: text, incompressible or compressible binary. */
  send (): void {
    const size = Math.round(2 ** (MIN_SIZE_LOG2 + Math.random() * (MAX_SIZE_LOG2 - MIN_SIZE_LOG2)))
    const kind = randomInt(3)
    const pool = kind === 1 ? RANDOM : TEXT
    const offset = randomInt(POOL_SIZE - size)
    const data = pool.subarray(offset, offset + size)
    this.pending.push({ data, binary: kind !== 0 })
    counters.sent++
    counters.sentBytes += size
    if (kind === 0) this.ws.send(pool.toString('latin1', offset, offset + size))
    else this.ws.send(data, { binary: true })
  }

  /** Resolves true once every message sent has been echoed, false after `timeoutMs`. */
  drained (timeoutMs: number): Promise<boolean> {
    if (this.pending.length === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      this.drainWaiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  /** Starts the closing handshake with 1000 and resolves once the TCP connection is closed; counts what was not echoed. */
  async close (): Promise<void> {
    this.ws.close(1000)
    const { clean } = await this.closed
    if (clean) counters.closedClean++
    else counters.closedUnexpectedly++
    counters.missing += this.pending.splice(0).length
  }

  /** Destroys the TCP connection without a close frame; what was not echoed is lost on purpose. */
  async terminate (): Promise<void> {
    this.ws.terminate()
    await this.closed
    counters.closedAbrupt++
    counters.lostOnAbrupt += this.pending.splice(0).length
  }
}

let stopping = false

async function churnLoop (): Promise<void> {
  while (!stopping) {
    const conn = await Tracked.open(Math.random() < 0.5)
    if (conn !== null) {
      const messages = 1 + randomInt(8)
      for (let i = 0; i < messages; i++) conn.send()
      const end = Math.random()
      if (end < 0.4) {
        await conn.drained(30_000)
        await conn.close()
      } else if (end < 0.7) {
        await conn.close()
      } else {
        const wait = randomInt(3) === 0 ? 0 : randomInt(30)
        if (wait > 0) await sleep(wait)
        await conn.terminate()
      }
    }
    await sleep(randomInt(50))
  }
}

const lived: Tracked[] = []
/** The next send of each long-lived connection. */
const timers = new Map<Tracked, NodeJS.Timeout>()

async function openLongLived (): Promise<void> {
  for (let i = 0; i < longLived; i++) {
    const conn = await Tracked.open(i % 2 === 0)
    if (conn === null) continue
    lived.push(conn)
    conn.closed.then(() => {
      if (!stopping) {
        counters.closedUnexpectedly++
        counters.missing += conn.inFlight
      }
    }, () => {})
    const tick = (): void => {
      if (conn.ws.readyState !== WebSocket.OPEN) return
      conn.send()
      timers.set(conn, setTimeout(tick, 500 + randomInt(2500)))
    }
    timers.set(conn, setTimeout(tick, randomInt(3000)))
  }
}

function print (line: string): void {
  process.stdout.write(line + '\n')
}

await openLongLived()
print('ready')
const churning = Array.from({ length: churn }, () => churnLoop())

async function stop (): Promise<void> {
  stopping = true
  for (const timer of timers.values()) clearTimeout(timer)
  await Promise.all(churning)
  await Promise.all(lived.map((conn) => conn.close()))
  print(JSON.stringify(counters))
  process.exit(0)
}

const commands = createInterface({ input: process.stdin })
commands.on('line', (line) => {
  if (line === 'stats') print(JSON.stringify(counters))
  else if (line === 'stop') stop().catch((err) => { console.error(err); process.exit(1) })
})
commands.on('close', () => { if (!stopping) process.exit(0) })
