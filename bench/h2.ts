/**
 * --cases h2: WebSockets over HTTP/2 streams (RFC 8441) beside the same
 * echo over HTTP/1.1 upgrades in the same run. Both servers are ours,
 * examples/echo.ts, one with H2C=1 (cleartext HTTP/2, so that the protocol
 * is measured, not TLS), each in its own process on the server core and
 * measured in turn; the HTTP/2 load client is bench/h2client.ts.
 */
import { LoadClient } from './load.js'
import { H2C_SERVER, SERVERS, Server, type ServerSpec } from './servers.js'
import type { EchoPhase, HandshakePhase, Phase, PhaseResult } from './types.js'

/** Connections the echo's WebSockets are spread over on HTTP/2. */
export const H2_SESSIONS = [1, 10]

/** One row of the table: the transport, how the WebSockets sit on it, and the best round's result. */
export interface H2Row {
  transport: 'HTTP/1.1' | 'HTTP/2'
  layout: string
  result: PhaseResult
}

interface Planned { transport: H2Row['transport'], layout: string, phase: Phase }

function plan (echo: EchoPhase[], handshake: HandshakePhase): { http1: Planned[], http2: Planned[] } {
  const http1: Planned[] = [
    ...echo.map((phase): Planned => ({ transport: 'HTTP/1.1', layout: `${phase.conns} TCP connections`, phase })),
    { transport: 'HTTP/1.1', layout: 'a new TCP connection each', phase: handshake }
  ]
  const http2: Planned[] = [
    ...echo.flatMap((phase) => H2_SESSIONS.map((sessions): Planned => ({
      transport: 'HTTP/2',
      layout: sessions === 1 ? `${phase.conns} streams on 1 connection` : `${sessions} connections × ${phase.conns / sessions} streams`,
      phase: { ...phase, sessions }
    }))),
    { transport: 'HTTP/2', layout: 'a stream on 1 open connection', phase: handshake }
  ]
  return { http1, http2 }
}

/**
 * Runs `rounds` rounds of every phase on both servers in turn and returns
 * the rows, each from the round with the highest rate: per echo size,
 * HTTP/1.1 then HTTP/2 per H2_SESSIONS; then the handshakes.
 */
export async function runH2 (
  rounds: number,
  echo: EchoPhase[],
  handshake: HandshakePhase,
  progress: (label: string) => (result: PhaseResult) => void
): Promise<H2Row[]> {
  const http1Spec = SERVERS.find((spec) => spec.name === 'rfc6455')!
  const { http1, http2 } = plan(echo, handshake)
  const jobs: Array<[ServerSpec, Planned[]]> = [[http1Spec, http1], [H2C_SERVER, http2]]
  const perRound = new Map<Planned, PhaseResult[]>()
  const running = await Server.startAll(jobs.map(([spec]) => spec))
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const [i, [spec, planned]] of jobs.entries()) {
        const client = new LoadClient(running[i], planned.map((p) => p.phase))
        let done = 0
        const results = await client.phases(planned.length, (result) => {
          const { transport, layout } = planned[done++]
          progress(`${spec.label}, ${transport}: ${layout}`)(result)
        })
        planned.forEach((p, j) => perRound.set(p, [...(perRound.get(p) ?? []), results[j]]))
      }
    }
  } finally {
    await Promise.all(running.map((server) => server.stop()))
  }
  const row = (p: Planned): H2Row => ({
    transport: p.transport,
    layout: p.layout,
    result: perRound.get(p)!.reduce((a, b) => b.perSecond > a.perSecond ? b : a)
  })
  return [
    ...echo.flatMap((_, i) => [row(http1[i]), ...H2_SESSIONS.map((_, j) => row(http2[i * H2_SESSIONS.length + j]))]),
    row(http1[http1.length - 1]),
    row(http2[http2.length - 1])
  ]
}
