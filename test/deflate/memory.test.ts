/**
 * What permessage-deflate costs per connection. An idle connection with
 * permessage-deflate negotiated must hold no zlib context (they are made on
 * the first message that needs one); after one compressed message each way,
 * a connection with context takeover holds two (its compressor and its
 * decompressor), and one without context takeover holds none again.
 *
 * zlib contexts are counted exactly through async_hooks (resource type
 * ZLIB); memory is sampled after a full GC in this process, which holds the
 * server and the 200 raw clients (node:net sockets, no zlib of their own
 * while measured): the figures are an upper bound of the server's share.
 */
import { test, type Test } from 'tap'
import type { FastifyRfc6455Options } from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import {
  clientFrame, compressMessage, echoRoute, perUnitKiB, pseudoRandomText, sampleMemory, start, ZlibProbe,
  type RawClient
} from './helpers.js'

const CONNECTIONS = 200
/** Per-connection bound for an idle connection, in KiB (a compressor alone is over 256 KiB). */
const IDLE_BOUND_KIB = 64

/** One masked, compressed 2000-byte text message, built before any measure (zlib on the client side). */
const MESSAGE = clientFrame(Opcode.Text, compressMessage(Buffer.from(pseudoRandomText(2000))), { rsv1: true })

async function run (t: Test, label: string, options: FastifyRfc6455Options, offer: string, openAfterTraffic: number): Promise<void> {
  const harness = await start(t, options, (app) => echoRoute(app))
  // Warm up every code path once (handshake, inflate, deflate) so that the
  // measures below see connections only.
  const warm = await harness.rawWebSocket('/echo?compress=always', offer)
  warm.write(MESSAGE)
  t.equal((await warm.readFrame()).bytes[0], 0xc1, 'warm-up echo compressed')
  warm.closeAndDestroy()

  const probe = new ZlibProbe().enable()
  t.teardown(() => probe.disable())
  const base = await sampleMemory()
  const clients: RawClient[] = []
  for (let i = 0; i < CONNECTIONS; i++) clients.push(await harness.rawWebSocket('/echo?compress=always', offer))
  t.equal(clients.every((client) => client.response?.headers['sec-websocket-extensions'] !== undefined), true,
    'permessage-deflate negotiated on every connection')
  const idle = await sampleMemory()
  t.equal(probe.created, 0, `${label}: ${CONNECTIONS} idle connections created no zlib context`)
  const idlePer = perUnitKiB(base, idle, CONNECTIONS)
  t.comment(`${label}, idle, per connection (KiB): ${JSON.stringify(idlePer)}`)
  t.ok(idlePer.rss < IDLE_BOUND_KIB, `idle RSS per connection ${idlePer.rss} KiB < ${IDLE_BOUND_KIB} KiB`)
  t.ok(idlePer.external + idlePer.arrayBuffers < IDLE_BOUND_KIB,
    `idle external + arrayBuffers per connection ${(idlePer.external + idlePer.arrayBuffers).toFixed(1)} KiB < ${IDLE_BOUND_KIB} KiB`)

  // One connection at a time: memory that one connection frees can serve the
  // next, so what the sample shows is what the connections hold, not a peak.
  let compressed = 0
  for (const client of clients) {
    client.write(MESSAGE)
    if ((await client.readFrame()).bytes[0] === 0xc1) compressed++
  }
  t.equal(compressed, CONNECTIONS, 'one compressed message each way on every connection')
  const busy = await sampleMemory()
  t.equal(probe.created, 2 * CONNECTIONS, `${label}: one decompressor and one compressor made per connection`)
  t.equal(probe.open, openAfterTraffic, `${label}: ${openAfterTraffic} zlib contexts still open after the messages`)
  const busyPer = perUnitKiB(base, busy, CONNECTIONS)
  t.comment(`${label}, after one compressed message each way, per connection (KiB): ${JSON.stringify(busyPer)}`)

  for (const client of clients) client.closeAndDestroy()
}

test('context takeover: nothing held while idle, two zlib contexts per connection after traffic', async (t) => {
  await run(t, 'context takeover', { perMessageDeflate: true }, 'permessage-deflate', 2 * CONNECTIONS)
})

test('no context takeover either way: nothing held while idle, nothing held after traffic', async (t) => {
  await run(t, 'no context takeover', { perMessageDeflate: true },
    'permessage-deflate; server_no_context_takeover; client_no_context_takeover', 0)
})
