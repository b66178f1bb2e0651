/**
 * Decompression bombs (RFC 7692 §8.1 leaves the limit to the implementation;
 * RFC 6455 §10.4, §7.4.1: 1009 for a message too big to process). With
 * maxPayload 1 MiB, about 100 KB of compressed zeros that would inflate to
 * 100 MiB must fail the connection with 1009 after at most about 1 MiB of
 * output, and this process (which hosts the server) must not grow by
 * anything near 100 MiB.
 */
import { once } from 'node:events'
import { test } from 'tap'
import { constants, createDeflateRaw } from 'node:zlib'
import type { ProtocolError } from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { clientFrame, compressMessage, sampleMemory, start, type Harness, type Teardown } from './helpers.js'

const MiB = 1024 * 1024

/**
 * The compressed form of `size` zero bytes as one message (§7.2.1: raw
 * DEFLATE, sync flush, tail removed), built in 1 MiB steps so that the
 * 100 MiB never exist in this process.
 */
async function compressedZeros (size: number): Promise<Buffer> {
  const deflate = createDeflateRaw({ level: 9 })
  const chunks: Buffer[] = []
  deflate.on('data', (chunk: Buffer) => chunks.push(chunk))
  const step = Buffer.alloc(MiB)
  for (let written = 0; written < size; written += MiB) {
    if (!deflate.write(step.subarray(0, Math.min(MiB, size - written)))) await once(deflate, 'drain')
  }
  await new Promise<void>((resolve) => deflate.flush(constants.Z_SYNC_FLUSH, () => resolve()))
  deflate.close()
  const out = Buffer.concat(chunks)
  return out.subarray(0, out.length - 4)
}

let bombPromise: Promise<Buffer> | null = null
/** The 100 MiB bomb, built once for the file. */
function bomb100MiB (): Promise<Buffer> {
  bombPromise ??= compressedZeros(100 * MiB)
  return bombPromise
}

/** The code and close code of a server-side `error` event. */
type ErrorCodes = [code: string, closeCode: number]

/**
 * An app with maxPayload 1 MiB that answers each message with its length in
 * bytes. The `error` events' codes go to `errors`, the error objects to
 * `kept` when given (an application that keeps them, as error reporters do).
 */
async function sizeApp (t: Teardown, errors: ErrorCodes[], kept?: ProtocolError[]): Promise<Harness> {
  return start(t, { maxPayload: MiB, perMessageDeflate: true }, (app) => {
    app.get('/size', { ws: true }, (socket) => {
      socket.on('error', (error) => {
        errors.push([error.code, error.closeCode])
        kept?.push(error)
      })
      socket.on('message', (data) => socket.send(String(data.length)))
    })
  })
}

test('a 100 MiB bomb of zeros, about 100 KB compressed, fails with 1009 and leaves memory flat', async (t) => {
  const errors: ErrorCodes[] = []
  const harness = await sizeApp(t, errors)
  const bomb = await bomb100MiB()
  t.ok(bomb.length > 50_000 && bomb.length < 150_000, `the bomb is ${bomb.length} bytes compressed, under maxPayload on the wire`)
  const frame = clientFrame(Opcode.Binary, bomb, { rsv1: true })
  const raw = await harness.rawWebSocket('/size', 'permessage-deflate')

  const before = await sampleMemory()
  const peakBefore = process.resourceUsage().maxRSS * 1024
  raw.write(frame)
  t.equal(await raw.readCloseCode(), 1009, 'close frame with 1009, then the TCP connection ends')
  const after = await sampleMemory()
  const peakAfter = process.resourceUsage().maxRSS * 1024

  t.same(errors, [['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009]])
  const growth = {
    rss: after.rss - before.rss,
    peakRss: peakAfter - peakBefore,
    arrayBuffers: after.arrayBuffers - before.arrayBuffers,
    external: after.external - before.external,
    heapUsed: after.heapUsed - before.heapUsed
  }
  t.comment(`memory growth over the bomb (MiB): ${Object.entries(growth).map(([key, bytes]) => `${key} ${(bytes / MiB).toFixed(2)}`).join(', ')}`)
  t.ok(growth.rss < 32 * MiB, `RSS grew by ${(growth.rss / MiB).toFixed(2)} MiB (bound 32 MiB)`)
  t.ok(growth.peakRss < 32 * MiB, `peak RSS grew by ${(growth.peakRss / MiB).toFixed(2)} MiB (bound 32 MiB)`)
  t.ok(growth.arrayBuffers < 32 * MiB, `arrayBuffers grew by ${(growth.arrayBuffers / MiB).toFixed(2)} MiB`)

  const next = await harness.rawWebSocket('/size', 'permessage-deflate')
  next.sendFrame(Opcode.Text, compressMessage(Buffer.from('still served')), { rsv1: true })
  t.equal((await next.readFrame()).payload.toString(), '12', 'another connection is served afterwards')
})

test('the same bomb in 100 fragments of about 1 KB fails with 1009 too', async (t) => {
  const errors: ErrorCodes[] = []
  const harness = await sizeApp(t, errors)
  const bomb = await bomb100MiB()
  const raw = await harness.rawWebSocket('/size', 'permessage-deflate')
  const pieces = 100
  const step = Math.ceil(bomb.length / pieces)
  const frames: Buffer[] = []
  for (let i = 0; i < pieces; i++) {
    const piece = bomb.subarray(i * step, (i + 1) * step)
    frames.push(clientFrame(i === 0 ? Opcode.Binary : Opcode.Continuation, piece, { rsv1: i === 0, fin: i === pieces - 1 }))
  }
  raw.write(Buffer.concat(frames))
  t.equal(await raw.readCloseCode(), 1009)
  t.same(errors, [['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009]])
})

test('the limit is on the inflated size: exactly maxPayload is delivered, one byte more is 1009', async (t) => {
  const errors: ErrorCodes[] = []
  const harness = await sizeApp(t, errors)
  const exact = await harness.rawWebSocket('/size', 'permessage-deflate')
  exact.sendFrame(Opcode.Binary, await compressedZeros(MiB), { rsv1: true })
  t.equal((await exact.readFrame()).payload.toString(), String(MiB), '1 MiB of zeros from about 1 KB: delivered whole')
  const over = await harness.rawWebSocket('/size', 'permessage-deflate')
  over.sendFrame(Opcode.Binary, await compressedZeros(MiB + 1), { rsv1: true })
  t.equal(await over.readCloseCode(), 1009, '1 MiB + 1 byte: 1009')
  t.same(errors, [['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 1009]])
})

test('a 1009 error the application keeps does not keep the inflated megabyte alive', async (t) => {
  // V8 keeps an error's stack frames, with the closures they ran in, until
  // error.stack is read: an error created inside the inflater's data handler
  // keeps that handler's context, and whatever it holds, alive with it.
  const errors: ErrorCodes[] = []
  const kept: ProtocolError[] = []
  const harness = await sizeApp(t, errors, kept)
  const frame = clientFrame(Opcode.Binary, await bomb100MiB(), { rsv1: true })
  const before = await sampleMemory()
  for (let i = 0; i < 10; i++) {
    const raw = await harness.rawWebSocket('/size', 'permessage-deflate')
    raw.write(frame)
    t.equal(await raw.readCloseCode(), 1009)
    raw.destroy()
  }
  const after = await sampleMemory()
  t.equal(kept.length, 10, 'the application holds the 10 errors')
  const growth = (after.arrayBuffers - before.arrayBuffers) / MiB
  t.comment(`arrayBuffers grew by ${growth.toFixed(2)} MiB with 10 errors kept`)
  t.ok(growth < 4, `arrayBuffers grew by ${growth.toFixed(2)} MiB for 10 kept errors (bound 4 MiB; 1 MiB of inflated data each would be 10)`)
})
