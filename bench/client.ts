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
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { readCpuSeconds, readMachineTicks } from './proc.js'
import type { ClientJob, EchoPhase, FanoutPhase, HandshakePhase, IdleReport, PhaseResult } from './types.js'

const HOST = '127.0.0.1'
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
const OP_BINARY = 0x2
const OP_CLOSE = 0x8
const OP_PING = 0x9
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

/** One masked client frame (RFC 6455 §5.2, §5.3). */
function maskedFrame (opcode: number, payload: Buffer, mask: Buffer): Buffer {
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
class Histogram {
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
 * opcode or payload length is not the expected one counts as an error.
 */
class FrameReader {
  errors = 0
  private remaining = 0
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
        if (this.remaining === 0) frames++
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
      if ((this.opcode >= 0 && (b0 & 0x0f) !== this.opcode) || (this.length >= 0 && length !== this.length)) this.errors++
      pos += headerLength
      this.remaining = length
      if (length === 0) frames++
    }
    return frames
  }
}

/**
 * Where every link's reads land (net.Socket's `onread`): read in place, no
 * Buffer per read and no stream machinery; what must outlive a read (a
 * frame's partial header, the handshake response) is copied out.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024)

/** One client connection: TCP connect, then (unless raw) the opening handshake, then frames. */
class Link {
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
      const timer = setTimeout(() => fail(new Error('open timed out')), 20000)
      const fail = (error: Error): void => {
        clearTimeout(timer)
        socket.destroy()
        reject(error)
      }
      socket.once('error', fail)
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
        clearTimeout(timer)
        socket.off('error', fail)
        socket.on('error', () => {})
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
        clearTimeout(timer)
        socket.off('error', fail)
        socket.on('error', () => {})
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

const sleep = (seconds: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, seconds * 1000))

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n)

/** Samples CPU over one measured window: this process, the server, its peers, everything else, and the hypervisor's steal. */
class Window {
  private start = 0
  private startUs = 0
  private cpu = process.cpuUsage()
  private server = 0
  private peers: number[] = []
  private machine = readMachineTicks()

  begin (): void {
    this.startUs = monotonicUs()
    this.start = performance.now()
    this.cpu = process.cpuUsage()
    this.server = readCpuSeconds(job.serverPid)
    this.peers = (job.peerPids ?? []).map(readCpuSeconds)
    this.machine = readMachineTicks()
  }

  end (): Pick<PhaseResult, 'seconds' | 'clientCpu' | 'serverCpu' | 'otherCpu' | 'peerCpu' | 'steal' | 'startUs' | 'endUs'> {
    const endUs = monotonicUs()
    const seconds = (performance.now() - this.start) / 1000
    const cpu = process.cpuUsage(this.cpu)
    const machine = readMachineTicks()
    const total = machine.total - this.machine.total
    const clientCpu = (cpu.user + cpu.system) / 1e6 / seconds * 100
    const serverCpu = (readCpuSeconds(job.serverPid) - this.server) / seconds * 100
    const peerCpu = (job.peerPids ?? []).map((pid, i) => (readCpuSeconds(pid) - this.peers[i]) / seconds * 100)
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

/**
 * Echo: every link writes `window` frames, then answers each echoed frame
 * with a new one, all in one write per chunk read.
 */
async function echo (phase: EchoPhase): Promise<PhaseResult> {
  const { size, window } = phase
  const frame = maskedFrame(OP_BINARY, randomBytes(size), randomBytes(4))
  const frames = Buffer.concat(Array.from({ length: window }, () => frame))
  const histogram = new Histogram()
  const { links, failed } = await openLinks(phase.conns, () => new FrameReader(OP_BINARY, size))
  /** Send time (performance.now()) of each frame in flight: `window` per link, as a ring. */
  const sent = new Float64Array(links.length * window)
  let running = true
  let measuring = false
  let count = 0

  const onFrames = (link: Link, done: number): void => {
    if (!running) return
    if (done > window) {
      link.reader.errors++
      done = window
    }
    // The ring is full: the `done` oldest entries are the frames echoed, and
    // their slots take the send times of the frames that replace them.
    const now = performance.now()
    let at = link.head
    for (let i = 0; i < done; i++) {
      if (measuring) histogram.record((now - sent[link.slot + at]) * 1000)
      sent[link.slot + at] = now
      at = at + 1 === window ? 0 : at + 1
    }
    link.head = at
    if (measuring) count += done
    link.socket.write(done === window ? frames : frames.subarray(0, done * frame.length))
  }

  links.forEach((link, index) => {
    link.slot = index * window
    link.onFrames = onFrames
  })
  const start = performance.now()
  for (const link of links) {
    sent.fill(start, link.slot, link.slot + window)
    link.socket.write(frames)
  }
  await sleep(phase.warmup)
  const measured = new Window()
  measured.begin()
  histogram.reset()
  measuring = true
  await sleep(phase.duration)
  measuring = false
  const sample = measured.end()
  running = false
  for (const link of links) link.socket.destroy()
  const errors = failed + links.reduce((sum, link) => sum + link.reader.errors, 0)
  return {
    kind: 'echo',
    size,
    ...sample,
    count,
    perSecond: count / sample.seconds,
    mbPerSecond: count * size / sample.seconds / 1e6,
    p50us: histogram.quantile(0.5),
    p99us: histogram.quantile(0.99),
    errors
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
  await sleep(phase.warmup)
  const measured = new Window()
  measured.begin()
  histogram.reset()
  const publishedBefore = published
  measuring = true
  await sleep(phase.duration)
  measuring = false
  const sample = measured.end()
  const publishedInWindow = published - publishedBefore
  running = false
  const behind = (): number => subscribers.reduce((sum, link) => sum + published - link.received, 0)
  for (let waited = 0; waited < FANOUT_GRACE && behind() > 0; waited += 0.05) await sleep(0.05)
  const undelivered = behind()
  publisher.socket.destroy()
  for (const link of subscribers) link.socket.destroy()
  const errors = failed + undelivered + [publisher, ...subscribers].reduce((sum, link) => sum + link.reader.errors, 0)
  return {
    kind: 'fanout',
    size,
    ...sample,
    count,
    perSecond: count / sample.seconds,
    mbPerSecond: count * size / sample.seconds / 1e6,
    p50us: histogram.quantile(0.5),
    p99us: histogram.quantile(0.99),
    subscribers: subscribers.length,
    published: publishedInWindow,
    errors
  }
}

/**
 * Handshakes: `parallel` loops, each: TCP connect, upgrade request, 101
 * checked, masked close frame (1000), the server's close frame, the server's
 * FIN, close. With `raw`, the same bytes are sent and their echo awaited,
 * and the client ends the TCP connection.
 */
async function handshakes (phase: HandshakePhase): Promise<PhaseResult> {
  const closeFrame = maskedFrame(OP_CLOSE, Buffer.from([0x03, 0xe8]), randomBytes(4))
  /** The server's close frame echoing 1000, unmasked (RFC 6455 §5.5.1). */
  const serverClose = Buffer.from([0x88, 0x02, 0x03, 0xe8])
  const histogram = new Histogram()
  let running = true
  let measuring = false
  let count = 0
  let errors = 0

  const cycle = (): void => {
    const started = performance.now()
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
        const expected = job.raw ? closeFrame : serverClose
        if (response.length < expected.length) return
        if (!response.subarray(0, expected.length).equals(expected)) {
          socket.destroy()
          return
        }
        step = 2
        if (job.raw) socket.end()
      }
    })
    socket.on('close', () => {
      if (step === 2) {
        if (measuring) {
          count++
          histogram.record((performance.now() - started) * 1000)
        }
      } else if (measuring) {
        errors++
      }
      if (running) cycle()
    })
    socket.connect(job.port, HOST, () => socket.write(request))
  }

  for (let i = 0; i < phase.parallel; i++) cycle()
  await sleep(phase.warmup)
  const measured = new Window()
  measured.begin()
  measuring = true
  await sleep(phase.duration)
  measuring = false
  const sample = measured.end()
  running = false
  await sleep(0.2)
  return {
    kind: 'handshake',
    size: 0,
    ...sample,
    count,
    perSecond: count / sample.seconds,
    mbPerSecond: 0,
    p50us: histogram.quantile(0.5),
    p99us: histogram.quantile(0.99),
    errors
  }
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
  const result = phase.kind === 'echo' ? await echo(phase) : phase.kind === 'fanout' ? await fanout(phase) : await handshakes(phase)
  process.stdout.write(JSON.stringify(result) + '\n')
  await sleep(0.2)
}
process.exit(0)
