import { Buffer } from 'node:buffer'
import { CloseCode, Opcode } from '../protocol/constants.js'
import { ProtocolError } from '../protocol/errors.js'
import type { PerMessageDeflate, PreparedMessage } from '../protocol/permessage-deflate.js'
import { ReadyState, Session, type SessionIO } from '../protocol/session.js'
import type { ByteStream, Transport } from './transport.js'

/** Limits and timers of one connection; all sizes in bytes, all times in milliseconds. */
export interface ConnectionLimits {
  maxPayload: number
  closeTimeout: number
  highWaterMark: number
  maxBackpressure: number
  idleTimeout: number
  /** Topics one socket may be subscribed to at once (its WebSocket checks it); Infinity for no limit. */
  maxTopics: number
}

/** What the connection reports to the object the user holds. */
export interface ConnectionListener {
  onMessage (data: Buffer, isBinary: boolean): void
  onPing (data: Buffer): void
  onPong (data: Buffer): void
  onError (error: ProtocolError): void
  onDrain (): void
  onClose (code: number, reason: string): void
}

const EMPTY = Buffer.alloc(0)

/**
 * Frames written while one chunk is handled, or in one tick, are copied into
 * one buffer up to this size: below it `Buffer.allocUnsafe` slices Node's pool,
 * above it a fresh allocation costs more than a corked (writev) write does
 * (measured: 1 KiB echo 1.6 times faster than with a 16 KiB threshold).
 */
const COALESCE_BYTES = Buffer.poolSize >>> 1
/**
 * Over a transport whose writes are done with their bytes once taken (plain
 * TCP), small frames up to this many bytes in all are copied into one shared
 * buffer, the slab, instead of being written corked (measured: 1 KiB echo,
 * 100 connections, 8 in flight each: 9-53% more messages per second than
 * corked, in five runs out of five).
 */
const SLAB_BYTES = 64 * 1024

/** Why reading is paused: each reason is one bit. */
export const PauseReason = {
  /** The unsent backlog passed `highWaterMark`. */
  Backpressure: 1,
  /** Messages are queued until the application listens for them. */
  NoListener: 2,
  /** A compressed message is being inflated. */
  Inflating: 4
} as const

/** The flags of a Connection, one bit each. */
const Flag = {
  /** A chunk is being handled: writes wait for the flush at its end. */
  Receiving: 1,
  /** The connection is in `dirty`, to be flushed on the next tick. */
  FlushScheduled: 2,
  /** An empty write is queued behind the backlog; its callback means the backlog was written. */
  DrainWatch: 4,
  /** Set by the heartbeat when a ping is out, cleared by any pong. */
  AwaitingPong: 8
} as const

/**
 * Moves bytes between a transport (a TCP socket, an HTTP/2 stream: see
 * lib/transport.ts) and a protocol Session, and owns what the sans-I/O core
 * does not: batching of writes, flow control and timers.
 *
 * Writes queued while a chunk is being handled, or during one tick, leave in a
 * single system call: copied into one buffer up to 4 KiB; over plain TCP,
 * small frames up to 64 KiB in all into a buffer shared by every connection,
 * used again once the kernel took a write whole; corked above. A chunk's
 * writes leave at its end. The connections written to during a tick are
 * flushed together on the next one, in the order they were written to, and
 * a chunk that also wrote to others (a publish) joins that pass, last. When
 * they queued the same frames (a fan-out), small frames are copied together
 * once for all of them, however many bytes they add up to. Reading pauses
 * while the unsent backlog is over `highWaterMark` and resumes once it is written.
 */
export class Connection implements SessionIO {
  readonly transport: Transport
  readonly session: Session
  readonly limits: ConnectionLimits
  private readonly listener: ConnectionListener
  /** Frames queued since the last flush; null when none (an idle connection holds no array). */
  private pending: Buffer[] | null = null
  private pendingBytes = 0
  /** Bits of Flag: one number instead of four booleans, for the memory of an idle connection. */
  private flags = 0
  private pausedBy = 0
  private closeTimer: NodeJS.Timeout | null = null
  /** Whole messages received (after reassembly and inflation). */
  messagesIn = 0
  /** Messages `send()` queued (a publish counts once per socket). */
  messagesOut = 0
  /** Bytes read from the transport: frames with their headers, as on the wire. */
  bytesIn = 0
  /** Bytes of frames queued for the transport, headers included, compressed when compressed. */
  bytesOut = 0

  constructor (transport: Transport, listener: ConnectionListener, limits: ConnectionLimits, deflate: PerMessageDeflate | null) {
    const socket = transport.stream
    this.transport = transport
    this.listener = listener
    this.limits = limits
    this.session = new Session(this, limits.maxPayload, deflate)
    // Shared listeners that find this connection on the socket: no closures per connection.
    ;(socket as ConnectedSocket)[kConnection] = this
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', onClose)
    if (socket.listenerCount('error') === 0) socket.on('error', ignore)
    if (limits.idleTimeout > 0) socket.setTimeout(limits.idleTimeout, onIdle)
  }

  /** The transport's byte stream. */
  get socket (): ByteStream {
    return this.transport.stream
  }

  /** Bytes queued but not yet handed to the kernel: waiting to be compressed, batched here, or in the socket. */
  get bufferedAmount (): number {
    return this.session.queuedBytes + this.pendingBytes + this.socket.writableLength
  }

  receive (chunk: Buffer): void {
    this.bytesIn += chunk.length
    this.flags |= Flag.Receiving
    this.session.receive(chunk)
    this.flags &= ~Flag.Receiving
    // A read that queued frames on other connections too (a publish) has its
    // own written in the same pass, after theirs: a publisher gets its copy
    // once every local subscriber's has been written to its socket.
    if (dirty.length > 0 && this.pending !== null) this.scheduleFlush()
    else this.flush()
  }

  /**
   * Sends one message, compressed when `compress` and permessage-deflate is
   * on; `prepared` is the same message framed, and compressed, once for many
   * connections (a publish). Past `maxBackpressure` bytes of backlog the
   * connection fails with 1008 instead. Returns false when the message was not queued.
   */
  send (opcode: number, payload: Buffer, compress: boolean, prepared?: PreparedMessage): boolean {
    if (this.bufferedAmount > this.limits.maxBackpressure) {
      this.session.fail(new ProtocolError('WS_ERR_BACKPRESSURE', CloseCode.PolicyViolation,
        `unsent backlog over maxBackpressure of ${this.limits.maxBackpressure} bytes`))
      return false
    }
    if (!this.session.sendMessage(opcode, payload, compress, prepared)) return false
    this.messagesOut++
    return true
  }

  /** Starts the closing handshake; the transport is aborted if it has not ended `closeTimeout` ms later. */
  close (code: number, reason?: string | Uint8Array): void {
    this.session.close(code, reason)
    this.startCloseTimer()
  }

  /**
   * One heartbeat tick: terminates the connection if the pong to the
   * previous ping has not come back (and returns true), else sends a ping (RFC 6455 §5.5.2).
   */
  heartbeat (): boolean {
    if ((this.flags & Flag.AwaitingPong) !== 0) {
      this.terminate()
      return true
    }
    this.flags |= Flag.AwaitingPong
    this.session.sendControl(Opcode.Ping, EMPTY)
    return false
  }

  /** Aborts the transport at once, without a close frame: a TCP reset, or RST_STREAM (CANCEL). */
  terminate (): void {
    this.transport.abort()
  }

  pauseReading (reason: number): void {
    if (this.pausedBy === 0) this.socket.pause()
    this.pausedBy |= reason
  }

  resumeReading (reason: number): void {
    if (this.pausedBy === 0) return
    this.pausedBy &= ~reason
    if (this.pausedBy === 0 && this.session.readyState !== ReadyState.CLOSED) this.socket.resume()
  }

  // SessionIO

  write (header: Buffer, payload: Buffer): void {
    this.bytesOut += header.length + payload.length
    const pending = this.pending ??= []
    pending.push(header)
    this.pendingBytes += header.length
    if (payload.length > 0) {
      pending.push(payload)
      this.pendingBytes += payload.length
    }
    if ((this.flags & Flag.Receiving) === 0) this.scheduleFlush()
  }

  /** Puts the connection in `dirty`, to be flushed with the others on the next tick. */
  private scheduleFlush (): void {
    if ((this.flags & Flag.FlushScheduled) !== 0) return
    this.flags |= Flag.FlushScheduled
    if (dirty.push(this) === 1) process.nextTick(flushDirty)
  }

  hold (on: boolean): void {
    if (on) this.pauseReading(PauseReason.Inflating)
    else this.resumeReading(PauseReason.Inflating)
  }

  end (): void {
    this.flush()
    if (this.socket.writable) this.socket.end()
    this.startCloseTimer()
  }

  message (data: Buffer, isBinary: boolean): void {
    this.messagesIn++
    this.listener.onMessage(data, isBinary)
  }

  ping (data: Buffer): void {
    this.listener.onPing(data)
  }

  pong (data: Buffer): void {
    this.flags &= ~Flag.AwaitingPong
    this.listener.onPong(data)
  }

  failed (error: ProtocolError): void {
    this.listener.onError(error)
  }

  /** Writes what is queued: one write when small, corked writes otherwise. */
  flush (): void {
    this.flags &= ~Flag.FlushScheduled
    const pending = this.pending
    if (pending === null) return
    const socket = this.socket
    if (socket.writable) {
      const joined = pending.length === 1 ? pending[0] : join(pending, this.pendingBytes, this.transport.writesAtOnce)
      if (joined !== null) {
        socket.write(joined)
        // Bytes left in the socket keep the slab: the next copy needs another.
        if (slab !== null && joined.buffer === slab.buffer && socket.writableLength > 0) slab = null
      } else {
        socket.cork()
        for (const chunk of pending) socket.write(chunk)
        socket.uncork()
      }
    }
    this.pending = null
    this.pendingBytes = 0
    this.checkBacklog()
  }

  /**
   * Past `highWaterMark`, stops reading and watches for the backlog to be
   * written. Node's own 'drain' needs the socket's 16 KiB high-water mark to
   * have been passed, so an empty write queued behind the socket's backlog
   * serves as the signal whatever `highWaterMark` is. Bytes waiting for the
   * compressor need no watch: each compression ends in a flush, which checks again.
   */
  private checkBacklog (): void {
    const socket = this.socket
    if (socket.writableLength + this.session.queuedBytes <= this.limits.highWaterMark) {
      this.resumeReading(PauseReason.Backpressure)
      this.listener.onDrain()
      return
    }
    this.pauseReading(PauseReason.Backpressure)
    if ((this.flags & Flag.DrainWatch) !== 0 || !socket.writable || socket.writableLength === 0) return
    this.flags |= Flag.DrainWatch
    socket.write(EMPTY, () => {
      this.flags &= ~Flag.DrainWatch
      this.checkBacklog()
    })
  }

  private startCloseTimer (): void {
    if (this.closeTimer !== null || this.socket.destroyed) return
    this.closeTimer = setTimeout(abort, this.limits.closeTimeout, this.transport)
    this.closeTimer.unref()
  }

  /** @internal The socket's 'close': the connection is over. */
  closed (): void {
    if (this.closeTimer !== null) clearTimeout(this.closeTimer)
    this.closeTimer = null
    this.pending = null
    this.pendingBytes = 0
    const session = this.session
    session.transportClosed()
    this.listener.onClose(session.closeCode, session.closeReason)
  }
}

const kConnection = Symbol('fastify-rfc6455.connection')
type ConnectedSocket = ByteStream & { [kConnection]: Connection }

/** The Connection running over `stream`, if one does: for a transport that goes away under its WebSockets (an HTTP/2 GOAWAY). */
export function connectionOn (stream: object): Connection | undefined {
  return (stream as Partial<ConnectedSocket>)[kConnection]
}

function onData (this: ConnectedSocket, chunk: Buffer): void {
  this[kConnection].receive(chunk)
}

/** The peer ended its side without a close frame: none can follow, so end ours (RFC 6455 §7.1.5: 1006). */
function onEnd (this: ConnectedSocket): void {
  this[kConnection].end()
}

function onClose (this: ConnectedSocket): void {
  this[kConnection].closed()
}

function onIdle (this: ConnectedSocket): void {
  this[kConnection].close(CloseCode.GoingAway, 'idle timeout')
}

/** 'close' follows an 'error'; ECONNRESET and the like need no answer. */
function ignore (): void {}

/**
 * Connections with frames queued outside the handling of a read, in the
 * order they were written to: flushed together on the next tick (one
 * process.nextTick, however many sockets a fan-out touched).
 */
const dirty: Connection[] = []
/** True while flushDirty() runs: flushes may share joined frames. */
let flushingDirty = false
/**
 * During flushDirty(), the frames of the last flush that had several, and
 * the bytes they were copied into (null when written corked). A fan-out
 * queues the same frames (the same Buffers, framed once) on every
 * subscriber, so every flush after the first writes the bytes copied once.
 */
let lastFrames: Buffer[] | null = null
let lastJoined: Buffer | null = null

function flushDirty (): void {
  flushingDirty = true
  try {
    // A flush may queue more (a 'drain' listener sending): they join this pass.
    for (let i = 0; i < dirty.length; i++) dirty[i].flush()
  } finally {
    dirty.length = 0
    flushingDirty = false
    lastFrames = null
    lastJoined = null
  }
}

/**
 * The bytes of `frames` in one buffer, or null to write them corked: see
 * `copy()`; in a flushDirty() pass, when they are the same frames as the
 * flush before and small ones (4 KiB a piece at most, on average), the copy
 * made for that flush, or one made now, serves every flush that follows with
 * them too. A few large frames cost less corked than copied.
 */
function join (frames: Buffer[], bytes: number, slabAllowed: boolean): Buffer | null {
  if (!flushingDirty) return copy(frames, bytes, slabAllowed)
  if (lastFrames !== null && sameFrames(frames, lastFrames)) {
    lastFrames = frames
    if (lastJoined === null && bytes <= frames.length * COALESCE_BYTES) lastJoined = Buffer.concat(frames, bytes)
    return lastJoined
  }
  lastFrames = frames
  lastJoined = copy(frames, bytes, slabAllowed)
  return lastJoined
}

/**
 * The shared buffer small frames are copied into over plain TCP (see
 * SLAB_BYTES); null once a socket kept it, until the next copy needs one.
 */
let slab: Buffer | null = null

/**
 * `frames` copied into one buffer: up to COALESCE_BYTES, one of their own;
 * with `slabAllowed`, small frames (4 KiB a piece at most, on average) up to
 * SLAB_BYTES, a view of the slab, to be written at once. Null otherwise.
 */
function copy (frames: Buffer[], bytes: number, slabAllowed: boolean): Buffer | null {
  if (bytes <= COALESCE_BYTES) return Buffer.concat(frames, bytes)
  if (!slabAllowed || bytes > SLAB_BYTES || bytes > frames.length * COALESCE_BYTES) return null
  slab ??= Buffer.allocUnsafeSlow(SLAB_BYTES)
  let offset = 0
  for (let i = 0; i < frames.length; i++) {
    slab.set(frames[i], offset)
    offset += frames[i].length
  }
  return Buffer.from(slab.buffer, slab.byteOffset, bytes)
}

function sameFrames (a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false
  }
  return true
}

function abort (transport: Transport): void {
  transport.abort()
}
