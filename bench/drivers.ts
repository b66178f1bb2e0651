/**
 * The echo and handshake phases of both load clients (bench/client.ts over
 * TCP, bench/h2client.ts over HTTP/2 streams), whatever carries the
 * WebSockets: the clients give how a WebSocket is opened, written to and
 * closed; the drivers keep the load going, time it and count it.
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { ClientJob, EchoPhase, HandshakePhase, PhaseResult } from './types.js'
import { FrameReader, Histogram, OP_BINARY, OP_CLOSE, OP_TEXT, maskedFrame, measure, phaseResult, sleep } from './wire.js'

/** One WebSocket as the driver sees it; its transport calls `onFrames` with the number of frames each read completed. */
export interface EchoLink<L> {
  readonly reader: FrameReader
  onFrames: (link: L, frames: number) => void
  /** Where this link's send times start in the shared ring, and its oldest one. */
  slot: number
  head: number
}

/** What differs between the clients: how WebSockets are opened, written to and closed. */
export interface EchoTransport<L extends EchoLink<L>> {
  /** Opens `count` WebSockets, each reading with a reader from `makeReader`; failures are counted, not thrown. */
  open: (count: number, makeReader: () => FrameReader) => Promise<{ links: L[], failed: number }>
  write: (link: L, data: Buffer) => void
  /** Ends them all, once the measured window is over. */
  close: (links: L[]) => void
}

/** `{"n":"…"}` of `size` bytes, with random hex digits between the quotes. */
function jsonPayload (size: number): Buffer {
  if (size < 8) throw new Error(`a JSON message of ${size} bytes is too short: 8 or more`)
  return Buffer.from(`{"n":"${randomBytes(size).toString('hex').slice(0, size - 8)}"}`)
}

/**
 * Runs one echo phase over `transport`: every WebSocket writes `window`
 * binary frames (text ones with `phase.text`), then answers each echoed
 * frame with a new one, all in one write per chunk read. Send times sit in
 * one shared ring, `window` per WebSocket; round trips go to one histogram.
 */
export async function driveEcho<L extends EchoLink<L>> (phase: EchoPhase, job: ClientJob, transport: EchoTransport<L>): Promise<PhaseResult> {
  const { size, window } = phase
  const opcode = phase.text === true ? OP_TEXT : OP_BINARY
  const frame = maskedFrame(opcode, phase.text === true ? jsonPayload(size) : randomBytes(size), randomBytes(4))
  const frames = Buffer.concat(Array.from({ length: window }, () => frame))
  const histogram = new Histogram()
  const { links, failed } = await transport.open(phase.conns, () => new FrameReader(opcode, size))
  /** Send time (performance.now()) of each frame in flight: `window` per link, as a ring. */
  const sent = new Float64Array(links.length * window)
  let running = true
  let measuring = false
  let count = 0

  const onFrames = (link: L, done: number): void => {
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
    transport.write(link, done === window ? frames : frames.subarray(0, done * frame.length))
  }

  links.forEach((link, index) => {
    link.slot = index * window
    link.onFrames = onFrames
  })
  const start = performance.now()
  for (const link of links) {
    sent.fill(start, link.slot, link.slot + window)
    transport.write(link, frames)
  }
  const sample = await measure(phase, job, (on) => { measuring = on })
  running = false
  transport.close(links)
  const errors = failed + links.reduce((sum, link) => sum + link.reader.errors, 0)
  return { ...phaseResult('echo', size, sample, count, histogram), errors }
}

/**
 * One handshake cycle as a client runs it: opens a WebSocket, sends
 * `closeFrame` (masked, code 1000) once it is open, awaits the server's
 * close, and calls `done` once the connection (or stream) is gone, with
 * whether every step went as expected.
 */
export type HandshakeCycle = (closeFrame: Buffer, done: (completed: boolean) => void) => void

/** Runs one handshake phase: `parallel` loops of `cycle`, each cycle timed from its start to its `done`. */
export async function driveHandshakes (phase: HandshakePhase, job: ClientJob, cycle: HandshakeCycle): Promise<PhaseResult> {
  const closeFrame = maskedFrame(OP_CLOSE, Buffer.from([0x03, 0xe8]), randomBytes(4))
  const histogram = new Histogram()
  let running = true
  let measuring = false
  let count = 0
  let errors = 0

  const loop = (): void => {
    const started = performance.now()
    cycle(closeFrame, (completed) => {
      if (measuring) {
        if (completed) {
          count++
          histogram.record((performance.now() - started) * 1000)
        } else {
          errors++
        }
      }
      if (running) loop()
    })
  }

  for (let i = 0; i < phase.parallel; i++) loop()
  const sample = await measure(phase, job, (on) => { measuring = on })
  running = false
  await sleep(0.2)
  return { ...phaseResult('handshake', 0, sample, count, histogram), errors }
}
