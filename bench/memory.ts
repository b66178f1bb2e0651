/**
 * Idle memory per connection: a fresh server process, warmed up by a few
 * connections opened and closed, then its resident set size (VmRSS, after a
 * full GC) before and after a load client opens N connections and leaves
 * them idle: (after - before) / N. The live JS heap and external memory are
 * read the same way, a finer view of what each connection keeps. Each
 * connection is pinged at the end to show it was really open, then closed.
 */
import type { LoadClient } from './load.js'
import { readRssKb } from './proc.js'
import type { Server } from './servers.js'

export interface MemoryResult {
  conns: number
  open: number
  failed: number
  pongs: number
  beforeKb: number
  afterKb: number
  /** KiB of RSS per open connection. */
  perConnKb: number
  /** KiB of live JS heap (heapUsed after a full GC) per open connection: the objects a connection keeps. */
  heapPerConnKb: number
  /** KiB outside the JS heap that V8 knows of (Buffers' memory and the like) per open connection. */
  externalPerConnKb: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * After a full garbage collection: the JS heap in use, the memory of
 * Buffers and other objects outside it, and VmRSS once it stops moving
 * (two readings 250 ms apart within 0.5%, or the last after `maxMs`).
 */
async function settledMemory (server: Server, maxMs: number): Promise<{ rssKb: number, heapKb: number, externalKb: number }> {
  const usage = await server.memoryUsage()
  let last = readRssKb(server.pid)
  for (let waited = 0; waited < maxMs; waited += 250) {
    await sleep(250)
    const now = readRssKb(server.pid)
    if (Math.abs(now - last) <= last * 0.005) break
    last = now
  }
  return { rssKb: readRssKb(server.pid), heapKb: usage.heapUsed / 1024, externalKb: usage.external / 1024 }
}

/**
 * Measures `server`, which must be fresh: nothing but its start-up has run.
 * `client` was started for it with `idle: conns`. `settleMs`: how long RSS
 * may take to stop moving before it is read anyway.
 */
export async function measureIdleMemory (server: Server, client: LoadClient, conns: number, settleMs: number): Promise<MemoryResult> {
  // The client's warm-up compiles and allocates what any connection needs, so that it is not counted per connection.
  await client.idleStep()
  const before = await settledMemory(server, settleMs)
  const report = await client.idleStep('open')
  const after = await settledMemory(server, settleMs)
  const pinged = await client.idleStep('ping')
  server.checkAlive()
  return {
    conns,
    open: report.open,
    failed: report.failed,
    pongs: pinged.pongs,
    beforeKb: before.rssKb,
    afterKb: after.rssKb,
    perConnKb: (after.rssKb - before.rssKb) / report.open,
    heapPerConnKb: (after.heapKb - before.heapKb) / report.open,
    externalPerConnKb: (after.externalKb - before.externalKb) / report.open
  }
}
