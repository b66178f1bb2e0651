/**
 * The load client: a process of its own (pinned to its own core by run.ts)
 * that drives one server through a ClientJob: optionally idle connections
 * first (see idle()), then the phases, printing one JSON line per step on
 * stdout.
 *
 *   node --import tsx bench/client.ts '<ClientJob as JSON>'
 *
 * Built to cost the server's core nothing and its own core little: frames are
 * masked once, up front, and every echo (or publish) is written as a slice of
 * that one buffer; reads land in one shared buffer (`onread`) and are parsed
 * in place (lengths only, no copies); latencies go to a fixed histogram. It is
 * independent of the code under test: it imports nothing from lib/.
 */
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { type EchoLink, type EchoTransport, type HandshakeCycle, driveEcho, driveHandshakes } from './drivers.js'
import type { ClientJob, FanoutPhase, IdleReport, PhaseResult } from './types.js'
import { FrameReader, Histogram, OP_BINARY, OP_CLOSE, OP_PING, SERVER_CLOSE, guardOpening, maskedFrame, measure, phaseResult, sleep } from './wire.js'

const HOST = '127.0.0.1'
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
/** Fan-out: send times of the last FANOUT_RING publishes, a power of two (a subscriber further behind would read a later one's). */
const FANOUT_RING = 1 << 18
/** Fan-out: seconds to wait, after the window, for every subscriber to get every message published. */
const FANOUT_GRACE = 5
/** Connects and upgrades under way at once while connections are opened. */
const OPEN_CONCURRENCY = 128
/** Idle mode: connections opened and closed before the server's memory is first read. */
const WARM_CONNECTIONS = 64

const job = JSON.parse(process.argv[2]) as ClientJob
const request = Buffer.from(
  'GET / HTTP/1.1\r\n' +
  `Host: ${HOST}:${job.port}\r\n` +
  'Upgrade: websocket\r\n' +
  'Connection: Upgrade\r\n' +
  `Sec-WebSocket-Key: ${KEY}\r\n` +
  'Sec-WebSocket-Version: 13\r\n\r\n', 'latin1')

/**
 * Where every link's reads land (net.Socket's `onread`): read in place, no
 * Buffer per read and no stream machinery; what must outlive a read (a
 * frame's partial header, the handshake response) is copied out.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024)

/** One client connection: TCP connect, then (unless raw) the opening handshake, then frames. */
class Link implements EchoLink<Link> {
  readonly socket: net.Socket
  readonly reader: FrameReader
  /** Called with the number of frames each chunk completed. */
  onFrames: (link: Link, frames: number) => void = () => {}
  /** Echo: where this link's send times start in the shared ring, and its oldest one. */
  slot = 0
  head = 0
  /** Fan-out: messages this link has received. */
  received = 0
  private readonly port: number
  private upgraded = false
  private response = ''
  /** What is done with the bytes of each read: the handshake response, then frames. */
  private onChunk: (chunk: Buffer) => void = () => {}

  constructor (reader: FrameReader, port = job.port) {
    this.reader = reader
    this.port = port
    // Node takes `onread` in the constructor too (its types list it for connect() only).
    const options: net.SocketConstructorOpts & net.ConnectOpts = {
      onread: {
        buffer: READ_BUFFER,
        callback: (bytes: number, buffer: Uint8Array): boolean => {
          this.onChunk((buffer as Buffer).subarray(0, bytes))
          return true
        }
      }
    }
    this.socket = new net.Socket(options)
    this.socket.setNoDelay(true)
  }

  open (): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = this.socket
      const { fail, opened } = guardOpening(socket, 'open timed out', reject)
      this.onChunk = (chunk) => {
        if (this.upgraded) {
          const frames = this.reader.read(chunk)
          if (frames > 0) this.onFrames(this, frames)
          return
        }
        this.response += chunk.toString('latin1')
        const end = this.response.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = this.response.slice(0, end)
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(ACCEPT)) {
          fail(new Error(`upgrade refused: ${head.split('\r\n', 1)[0]}`))
          return
        }
        // Bytes after the response's end are frames; only latin1 is used, so characters are bytes.
        const rest = chunk.subarray(chunk.length - (this.response.length - end - 4))
        this.upgraded = true
        this.response = ''
        opened()
        resolve()
        if (rest.length > 0) {
          const frames = this.reader.read(rest)
          if (frames > 0) this.onFrames(this, frames)
        }
      }
      socket.connect(this.port, HOST, () => {
        if (!job.raw) {
          socket.write(request)
          return
        }
        this.upgraded = true
        opened()
        resolve()
      })
    })
  }
}

/** Opens `count` links, `OPEN_CONCURRENCY` at a time; failures are counted, not thrown. */
async function openLinks (count: number, makeReader: () => FrameReader): Promise<{ links: Link[], failed: number }> {
  const links: Link[] = []
  let failed = 0
  let started = 0
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++
      const link = new Link(makeReader())
      try {
        await link.open()
        links.push(link)
      } catch {
        failed++
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(count, OPEN_CONCURRENCY) }, worker))
  return { links, failed }
}

/** Echo over TCP (see bench/drivers.ts). */
const TCP: EchoTransport<Link> = {
  open: openLinks,
  write: (link, data) => link.socket.write(data),
  close: (links) => {
    for (const link of links) link.socket.destroy()
  }
}

/**
 * Fan-out: opens the subscribers, then the publisher, which writes `window`
 * frames and one more for each publish acknowledged (see FanoutPhase). Every
 * subscriber's n-th frame is publish n (the server keeps the order), so its
 * latency is taken against publish n's send time. After the window,
 * publishing stops and what a subscriber has still not received
 * `FANOUT_GRACE` seconds later counts as errors.
 */
async function fanout (phase: FanoutPhase): Promise<PhaseResult> {
  const { size, window } = phase
  const frame = maskedFrame(OP_BINARY, randomBytes(size), randomBytes(4))
  const frames = Buffer.concat(Array.from({ length: window }, () => frame))
  const histogram = new Histogram()
  const { links: subscribers, failed } = await openLinks(phase.subscribers, () => new FrameReader(OP_BINARY, size))
  const publisher = new Link(new FrameReader(OP_BINARY, size), phase.publishPort ?? job.port)
  await publisher.open()
  const ack = phase.publishPort === undefined ? publisher : subscribers[subscribers.length - 1]
  const sent = new Float64Array(FANOUT_RING)
  let published = 0
  let running = true
  let measuring = false
  let count = 0

  const publish = (n: number): void => {
    const now = performance.now()
    for (let i = 0; i < n; i++) sent[(published + i) & (FANOUT_RING - 1)] = now
    published += n
    publisher.socket.write(n === window ? frames : frames.subarray(0, n * frame.length))
  }
  const onAck = (done: number): void => {
    if (!running) return
    if (done > window) {
      ack.reader.errors++
      done = window
    }
    publish(done)
  }
  const onDeliveries = (link: Link, done: number): void => {
    const first = link.received
    link.received += done
    if (link.received > published) link.reader.errors++
    if (measuring) {
      count += done
      const now = performance.now()
      for (let i = 0; i < done; i++) histogram.record((now - sent[(first + i) & (FANOUT_RING - 1)]) * 1000)
    }
    if (link === ack) onAck(done)
  }
  for (const link of subscribers) link.onFrames = onDeliveries
  if (ack === publisher) publisher.onFrames = (_link, done) => onAck(done)

  publish(window)
  let publishedBefore = 0
  const sample = await measure(phase, job, (on) => {
    if (on) publishedBefore = published
    measuring = on
  })
  const publishedInWindow = published - publishedBefore
  running = false
  const behind = (): number => subscribers.reduce((sum, link) => sum + published - link.received, 0)
  for (let waited = 0; waited < FANOUT_GRACE && behind() > 0; waited += 0.05) await sleep(0.05)
  const undelivered = behind()
  publisher.socket.destroy()
  for (const link of subscribers) link.socket.destroy()
  const errors = failed + undelivered + [publisher, ...subscribers].reduce((sum, link) => sum + link.reader.errors, 0)
  return {
    ...phaseResult('fanout', size, sample, count, histogram),
    subscribers: subscribers.length,
    published: publishedInWindow,
    errors
  }
}

/**
 * A handshake cycle (see bench/drivers.ts): TCP connect, upgrade request, 101
 * checked, masked close frame (1000), the server's close frame, the server's
 * FIN, close. With `raw`, the same bytes are sent and their echo awaited,
 * and the client ends the TCP connection.
 */
const handshake: HandshakeCycle = (closeFrame, done) => {
  const socket = new net.Socket()
  let response: Buffer = Buffer.alloc(0)
  let step = 0 // 0: awaiting the 101 (raw: the request's echo), 1: awaiting the close frame, 2: done
  socket.setNoDelay(true)
  socket.setTimeout(10000, () => socket.destroy())
  socket.on('error', () => {})
  socket.on('data', (chunk: Buffer) => {
    response = response.length === 0 ? chunk : Buffer.concat([response, chunk])
    if (step === 0) {
      if (job.raw) {
        if (response.length < request.length) return
        response = response.subarray(request.length)
      } else {
        const end = response.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = response.toString('latin1', 0, end)
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(ACCEPT)) {
          socket.destroy()
          return
        }
        response = response.subarray(end + 4)
      }
      step = 1
      socket.write(closeFrame)
    }
    if (step === 1) {
      const expected = job.raw ? closeFrame : SERVER_CLOSE
      if (response.length < expected.length) return
      if (!response.subarray(0, expected.length).equals(expected)) {
        socket.destroy()
        return
      }
      step = 2
      if (job.raw) socket.end()
    }
  })
  socket.on('close', () => done(step === 2))
  socket.connect(job.port, HOST, () => socket.write(request))
}

/**
 * Idle, driven by lines on stdin, reporting on stdout after each step:
 * warms the server up with a few connections opened and closed ('warm'),
 * then opens `count` connections and leaves them idle ('open'), then pings
 * each once (raw: the ping comes back as sent) and counts replies for up to
 * 10 s ('pinged'), and closes them.
 */
async function idle (count: number): Promise<void> {
  const lines = createInterface({ input: process.stdin })
  const nextLine = (): Promise<void> => new Promise((resolve) => lines.once('line', () => resolve()))
  const report = (event: IdleReport['event'], open: number, failed: number, pongs: number): void => {
    const line: IdleReport = { event, open, failed, pongs }
    process.stdout.write(JSON.stringify(line) + '\n')
  }
  const warm = await openLinks(WARM_CONNECTIONS, () => new FrameReader(-1, -1))
  const closeFrame = maskedFrame(OP_CLOSE, Buffer.from([0x03, 0xe8]), randomBytes(4))
  await Promise.all(warm.links.map((link) => new Promise((resolve) => {
    link.socket.once('close', resolve)
    link.socket.setTimeout(5000, () => link.socket.destroy())
    // The server answers with its close frame and ends the TCP connection; a raw echo needs our FIN.
    if (job.raw) link.socket.end(closeFrame)
    else link.socket.write(closeFrame)
  })))
  await sleep(0.3)
  report('warm', warm.links.length, warm.failed, 0)
  await nextLine()
  const { links, failed } = await openLinks(count, () => new FrameReader(-1, -1))
  report('open', links.length, failed, 0)
  await nextLine()
  let pongs = 0
  const ping = maskedFrame(OP_PING, Buffer.from('ping'), randomBytes(4))
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 10000)
    for (const link of links) {
      link.onFrames = (_link, frames) => {
        pongs += frames
        if (pongs >= links.length) {
          clearTimeout(timer)
          resolve()
        }
      }
      link.socket.write(ping)
    }
    if (links.length === 0) resolve()
  })
  report('pinged', links.length, failed, pongs)
  lines.close()
  for (const link of links) link.socket.destroy()
}

if (job.idle !== undefined) {
  await idle(job.idle)
  // Time for the server to close them before the load.
  await sleep(0.5)
}
for (const phase of job.phases) {
  const result = phase.kind === 'echo' ? await driveEcho(phase, job, TCP) : phase.kind === 'fanout' ? await fanout(phase) : await driveHandshakes(phase, job, handshake)
  process.stdout.write(JSON.stringify(result) + '\n')
  await sleep(0.2)
}
process.exit(0)
