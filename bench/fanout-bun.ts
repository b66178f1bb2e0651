/**
 * The fan-out server of bench/fanout-server.ts on Bun, whose WebSocket
 * server and topics are uWebSockets (C++): every connection subscribes to
 * one topic and every message any of them sends is published to it, the
 * sender included, with `server.publish()`, which queues the frame on each
 * subscriber in uWebSockets' own topic tree. Run by the bench with
 * `--bun PATH` (Bun is a program of its own, not a package this project
 * installs):
 *
 *   bun bench/fanout-bun.ts
 *
 * env PORT, MAX_PAYLOAD as bench/fanout-server.ts.
 */

/** The part of Bun's API this server uses (Bun's own types are not installed here). */
interface BunWebSocket { subscribe: (topic: string) => void }
interface BunServer {
  upgrade: (request: Request) => boolean
  publish: (topic: string, data: string | Uint8Array) => number
}
interface BunRuntime {
  serve: (options: {
    port: number
    hostname: string
    fetch: (request: Request, server: BunServer) => Response | undefined
    websocket: {
      maxPayloadLength: number
      open: (socket: BunWebSocket) => void
      message: (socket: BunWebSocket, data: string | Uint8Array) => void
    }
  }) => BunServer
}

const bun = (globalThis as { Bun?: BunRuntime }).Bun
if (bun === undefined) throw new Error('bench/fanout-bun.ts runs on Bun: bun bench/fanout-bun.ts')
const port = Number(process.env.PORT ?? 9001)
const TOPIC = 'bench'

const server = bun.serve({
  port,
  hostname: '127.0.0.1',
  fetch: (request, server) => server.upgrade(request) ? undefined : new Response('WebSocket only', { status: 426 }),
  websocket: {
    maxPayloadLength: Number(process.env.MAX_PAYLOAD ?? 16 * 1024 * 1024),
    open: (socket) => { socket.subscribe(TOPIC) },
    message: (_socket, data) => { server.publish(TOPIC, data) }
  }
})
console.log(`bun fan-out server on 127.0.0.1:${port}`)
