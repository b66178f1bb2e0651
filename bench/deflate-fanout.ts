/**
 * Compressed fan-out: N subscribers that negotiated permessage-deflate on one
 * topic (bench/fanout-server.ts with DEFLATE), one publisher sending JSON text
 * of SIZE bytes with up to WINDOW publishes in flight (its own copy, which it
 * gets uncompressed, is its acknowledgement). Prints one JSON line:
 * deliveries per second, server CPU µs per delivery (from /proc, so less
 * sensitive to a busy machine than the rate), compressed bytes per message on
 * the wire, and server RSS per subscriber once they are connected.
 *
 *   tsx bench/deflate-fanout.ts [--mode takeover|no-context-takeover] [--subscribers 1000]
 *     [--size 4096] [--window 8] [--seconds 5] [--root DIR] [--server rfc6455|ws]
 *
 * `--root DIR`: run DIR/bench/fanout-server.ts instead, i.e. another build of
 * the package (a git worktree of an older commit with this fanout-server.ts), for A/B.
 * `--ratio`: only print what server_no_context_takeover costs in compression
 * ratio on chat-like messages (node:zlib, no server), then exit.
 */
import { createHash } from 'node:crypto'
import net from 'node:net'
import { parseArgs } from 'node:util'
import { constants, createDeflateRaw, deflateRawSync, type DeflateRaw } from 'node:zlib'
import { BENCH, PINNING, exited, freePort, launchNode, waitForPort } from './launch.js'
import { readCpuSeconds, readRssKb } from './proc.js'
import { FrameReader, OP_TEXT, maskedFrame, sleep } from './wire.js'

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'no-context-takeover' },
    subscribers: { type: 'string', default: '1000' },
    size: { type: 'string', default: '4096' },
    window: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
    root: { type: 'string' },
    server: { type: 'string', default: 'rfc6455' },
    ratio: { type: 'boolean', default: false }
  }
})

/** A chat message as examples/chat/server.ts publishes it, with a text of about `textLength` characters. */
function chatMessage (i: number, textLength: number): string {
  let seed = (i + 1) * 2654435761 >>> 0
  let text = ''
  while (text.length < textLength) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
    text += WORDS[seed % WORDS.length] + ((seed >>> 16) % 9 === 0 ? '. ' : ' ')
  }
  const from = createHash('sha1').update(String(i % 50)).digest('hex').slice(0, 32)
  return JSON.stringify({ type: 'message', from, name: `user-${i % 50}`, text: text.trimEnd(), at: 1_765_000_000_000 + i * 1375 })
}

/** Words of chat text, picked pseudo-randomly. */
const WORDS = ('the a to and of in is it you that for on we this be are with have not can at but do just so what if will ' +
  'was my me your our they all out up about get one no from there like know think time now here when would could ' +
  'build deploy test green red review merge branch fix bug issue release server client socket message room topic ' +
  'lunch coffee meeting today tomorrow yesterday morning later thanks please sorry great ok yes sure maybe soon ' +
  'kubernetes redis latency throughput memory cpu disk queue retry timeout error log metric dashboard alert').split(' ')

/**
 * Compressed bytes of a stream of chat messages, as permessage-deflate sends
 * them (§7.2.1: sync flush, tail removed), with context takeover (one
 * compressor for the stream) and without (a fresh one per message).
 */
async function ratio (textLength: number, count: number, threshold: number): Promise<{ raw: number, takeover: number, noContextTakeover: number }> {
  const stream: DeflateRaw = createDeflateRaw({ level: 1, memLevel: 8, windowBits: 15 })
  let raw = 0
  let takeover = 0
  let noContextTakeover = 0
  for (let i = 0; i < count; i++) {
    const message = Buffer.from(chatMessage(i, textLength))
    raw += message.length
    if (message.length < threshold) {
      takeover += message.length
      noContextTakeover += message.length
      continue
    }
    noContextTakeover += deflateRawSync(message, { level: 1, memLevel: 8, windowBits: 15, finishFlush: constants.Z_SYNC_FLUSH }).length - 4
    takeover += await new Promise<number>((resolve) => {
      let bytes = 0
      const onData = (chunk: Buffer): void => { bytes += chunk.length }
      stream.on('data', onData)
      stream.write(message)
      stream.flush(constants.Z_SYNC_FLUSH, () => {
        stream.removeListener('data', onData)
        resolve(bytes - 4)
      })
    })
  }
  stream.close()
  return { raw, takeover, noContextTakeover }
}

if (values.ratio) {
  for (const threshold of [0, 1024]) {
    for (const textLength of [40, 200, 1000, 4000]) {
      const r = await ratio(textLength, 500, threshold)
      console.log(JSON.stringify({
        threshold,
        textLength,
        bytesPerMessage: Math.round(r.raw / 500),
        takeoverRatio: +(r.takeover / r.raw).toFixed(3),
        noContextTakeoverRatio: +(r.noContextTakeover / r.raw).toFixed(3),
        cost: +(r.noContextTakeover / r.takeover).toFixed(2)
      }))
    }
  }
  process.exit(0)
}

const subscribers = Number(values.subscribers)
const size = Number(values.size)
const window = Number(values.window)
const seconds = Number(values.seconds)
const port = await freePort()
const script = `${values.root ?? BENCH.slice(0, -'bench/'.length)}/bench/fanout-server.ts`
const server = launchNode(script, [values.server], {
  core: PINNING?.server ?? null,
  env: { PORT: String(port), DEFLATE: values.mode }
})
server.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk))
await waitForPort(port, 60000)
const pid = server.pid as number

function handshake (deflate: boolean): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.setNoDelay(true)
    socket.once('error', reject)
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      (deflate ? 'Sec-WebSocket-Extensions: permessage-deflate\r\n' : '') + '\r\n')
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.removeListener('data', onData)
      if (!head.subarray(0, 12).toString().includes('101')) reject(new Error(head.toString()))
      else if (deflate && !/permessage-deflate/i.test(head.subarray(0, end).toString())) reject(new Error('permessage-deflate not accepted'))
      else {
        const rest = head.subarray(end + 4)
        if (rest.length > 0) socket.unshift(rest)
        resolve(socket)
      }
    }
    socket.on('data', onData)
  })
}

const rssStart = readRssKb(pid)
let measuring = false
let delivered = 0
let wireBytes = 0
/** Per publish in flight (by sequence number modulo RING), the subscribers that have it. */
const RING = 1024
const have = new Uint32Array(RING)
let completed = 0
const subs: net.Socket[] = []
for (let i = 0; i < subscribers; i += 100) {
  subs.push(...await Promise.all(Array.from({ length: Math.min(100, subscribers - i) }, async () => await handshake(true))))
}
await sleep(0.5)
const rssConnected = readRssKb(pid)
const publisher = await handshake(false)
publisher.resume()
const mask = Buffer.from([1, 2, 3, 4])
/** 64 distinct messages of `size` bytes: chat records, so that they compress as chat does. */
const frames = Array.from({ length: 64 }, (_, m) => {
  let text = ''
  for (let i = 0; text.length < size; i++) text += chatMessage(m * 100 + i, 60) + '\n'
  return maskedFrame(OP_TEXT, Buffer.from(text.slice(0, size)), mask)
})
let sent = 0
const errors = { frames: 0 }
// A publish is complete once every subscriber has it (each gets them in order): then the next is sent.
for (const socket of subs) {
  const reader = new FrameReader(OP_TEXT, -1)
  let received = 0
  socket.on('data', (chunk: Buffer) => {
    const frames = reader.read(chunk)
    if (measuring) {
      delivered += frames
      wireBytes += chunk.length
    }
    for (let i = 0; i < frames; i++) {
      const slot = received++ % RING
      if (++have[slot] === subscribers) {
        have[slot] = 0
        completed++
        publisher.write(frames_[sent++ & 63])
      }
    }
    errors.frames = reader.errors
  })
}
const frames_ = frames
for (let i = 0; i < window; i++) publisher.write(frames[sent++ & 63])
// Warm-up: every subscriber has had a few messages (with context takeover, each has created its compressor), then 1 s.
const warmStart = performance.now()
while (completed < 2 * window && performance.now() - warmStart < 120_000) await sleep(0.1)
const warmupSeconds = (performance.now() - warmStart) / 1000
await sleep(1)
const cpu0 = readCpuSeconds(pid)
const completed0 = completed
measuring = true
const t0 = performance.now()
await sleep(seconds)
measuring = false
const elapsed = (performance.now() - t0) / 1000
const cpu = readCpuSeconds(pid) - cpu0
const published = completed - completed0
const rssEnd = readRssKb(pid)
console.log(JSON.stringify({
  server: values.server,
  root: values.root ?? 'this',
  mode: values.mode,
  subscribers,
  size,
  window,
  deliveriesPerSecond: Math.round(delivered / elapsed),
  publishesPerSecond: Math.round(published / elapsed),
  serverCpuPct: Math.round(cpu / elapsed * 100),
  serverCpuUsPerDelivery: +(cpu * 1e6 / delivered).toFixed(2),
  wireBytesPerDelivery: Math.round(wireBytes / delivered),
  rssKiBPerSubscriberConnected: +((rssConnected - rssStart) / subscribers).toFixed(1),
  rssKiBPerSubscriberAfter: +((rssEnd - rssStart) / subscribers).toFixed(1),
  warmupSeconds: +warmupSeconds.toFixed(1),
  errors: errors.frames
}))
publisher.destroy()
for (const socket of subs) socket.destroy()
server.kill('SIGTERM')
await exited(server)
