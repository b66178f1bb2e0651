/** What the bench's processes say to each other, as JSON: one job in, one line per result out. */

/** Echo: `conns` connections keep `window` binary messages of `size` bytes in flight each. */
export interface EchoPhase {
  kind: 'echo'
  size: number
  conns: number
  window: number
  /** Text messages instead, each a JSON document of `size` bytes (8 or more): `{"n":"…"}`. */
  text?: boolean
  /** Over HTTP/2 (bench/h2client.ts): connections the `conns` WebSockets are spread over, evenly; 1 if unset. */
  sessions?: number
  /** Seconds of unmeasured traffic first. */
  warmup: number
  /** Seconds measured. */
  duration: number
}

/** Handshakes: `parallel` loops of connect, upgrade, close handshake, TCP close. */
export interface HandshakePhase {
  kind: 'handshake'
  parallel: number
  warmup: number
  duration: number
}

/**
 * Fan-out: `subscribers` connections on one topic, then one publisher that
 * keeps `window` binary messages of `size` bytes in flight; the server sends
 * each to every connection. A publish is acknowledged when the ack link gets
 * its copy: the publisher itself (the server sends to it last: it connected
 * last), or with `publishPort` the last subscriber.
 */
export interface FanoutPhase {
  kind: 'fanout'
  size: number
  subscribers: number
  window: number
  warmup: number
  duration: number
  /** Port of the instance the publisher connects to, when it is not the subscribers' (publishes cross a broker). */
  publishPort?: number
}

export type Phase = EchoPhase | HandshakePhase | FanoutPhase

/** The load client's job (argv[2] of bench/client.ts, or of the ServerSpec's `client`). */
export interface ClientJob {
  port: number
  /**
   * The server is a plain TCP echo: no upgrade is sent, and what comes back
   * is the client's own masked frames.
   */
  raw: boolean
  /** Server process, whose CPU time the client samples over each measured window. */
  serverPid: number
  /** More processes whose CPU time is sampled (a fan-out through Redis: the other instance, redis-server). */
  peerPids?: number[]
  /** Run these in order and print one PhaseResult line each. */
  phases: Phase[]
  /** Before the phases, hold this many idle connections, step by step (see IdleReport and client.ts, idle()). */
  idle?: number
}

export interface PhaseResult {
  kind: Phase['kind']
  /** Payload bytes (echo, fan-out) or 0 (handshake). */
  size: number
  seconds: number
  /** Echoed messages, completed handshake cycles, or fan-out deliveries (the publisher's own copies not counted) in the measured window. */
  count: number
  perSecond: number
  /** Echoed (fan-out: delivered) payload bytes per second / 1e6, one direction. */
  mbPerSecond: number
  /**
   * Round trip of one message, one whole connect-to-close cycle, or (fan-out)
   * from a publish's write to a subscriber's having read all of it, in microseconds.
   */
  p50us: number
  p99us: number
  /** % of one core over the measured window. */
  clientCpu: number
  serverCpu: number
  /** % of one core used by everything else on the machine (busy time less the two above and peerCpu): noise. */
  otherCpu: number
  /** % of one core of each of the job's peerPids. */
  peerCpu: number[]
  /** Fan-out: subscriber connections open, and messages published in the window. */
  subscribers?: number
  published?: number
  /** % of the machine's time the hypervisor took (all CPUs), over the window. */
  steal: number
  errors: number
  /** The measured window on the monotonic clock, in microseconds (process.hrtime; V8's profiles use the same clock). */
  startUs: number
  endUs: number
}

/** Idle mode: a line after the warm-up, one once the connections are open, one after the ping round. */
export interface IdleReport {
  event: 'warm' | 'open' | 'pinged'
  open: number
  failed: number
  pongs: number
}

/** Starts the line a server prints with its process.memoryUsage() (bench/server-hooks.ts). */
export const MEMORY_MARKER = '@bench-memory '
