/**
 * Shared helpers of the integration tests: a Fastify app on an ephemeral
 * 127.0.0.1 port, undici's WebSocket with bounded waits, and the raw node:net
 * client of test/support that writes exact bytes (masked frames built with
 * encodeFrame) and reads the server's exact bytes back (HTTP responses and frames).
 */
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'undici'
import { closeApp, listen, withTimeout, type Teardown } from '../support/app.js'
import type { UpgradeRequestOptions } from '../support/frames.js'
import { RawClients, type RawClient } from '../support/raw-client.js'

export { delay, withTimeout, type Teardown } from '../support/app.js'
export { clientFrame, SAMPLE_ACCEPT, upgradeRequest, type UpgradeRequestOptions } from '../support/frames.js'
export type { RawClient } from '../support/raw-client.js'

/** A listening app and the clients opened against it, all closed at teardown. */
export interface Harness {
  port: number
  /** `ws://127.0.0.1:port` + path. */
  wsUrl (path: string): string
  /** `http://127.0.0.1:port` + path. */
  httpUrl (path: string): string
  /** Opens an undici WebSocket and waits for `open`. */
  client (path: string, protocols?: string | string[]): Promise<TestClient>
  /** Connects a raw TCP client. */
  raw (): Promise<RawClient>
  /** Connects a raw client and completes an opening handshake (throws unless 101). */
  rawWebSocket (path: string, request?: UpgradeRequestOptions): Promise<RawClient>
}

/** Listens on an ephemeral 127.0.0.1 port; teardown resets raw clients, closes undici clients, then closes the app. */
export async function start (t: Teardown, app: FastifyInstance): Promise<Harness> {
  const port = await listen(app)
  const raws = new RawClients(port)
  const clients = new Set<TestClient>()
  t.teardown(async () => {
    // A reset, not a FIN: the server learns at once that the connection is gone.
    for (const raw of raws) raw.reset()
    for (const client of clients) client.ws.close()
    await closeApp(app)
  })
  const harness: Harness = {
    port,
    wsUrl: (path) => `ws://127.0.0.1:${port}${path}`,
    httpUrl: (path) => `http://127.0.0.1:${port}${path}`,
    async client (path, protocols) {
      const client = await TestClient.open(harness.wsUrl(path), protocols)
      clients.add(client)
      return client
    },
    raw: () => raws.connect(),
    rawWebSocket: (path, request) => raws.webSocket(path, request)
  }
  return harness
}

// undici's WebSocket

/** What the client's `close` event carried. */
export interface ClientClose {
  code: number
  reason: string
  wasClean: boolean
}

/** An undici WebSocket whose messages queue up for `nextMessage()`; binaryType is 'arraybuffer'. */
export class TestClient {
  readonly ws: WebSocket
  readonly closed: Promise<ClientClose>
  private readonly messages: Array<string | ArrayBuffer> = []
  private waiter: (() => void) | null = null

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.binaryType = 'arraybuffer'
    ws.addEventListener('message', (event) => {
      this.messages.push(event.data as string | ArrayBuffer)
      this.wake()
    })
    this.closed = new Promise((resolve) => {
      ws.addEventListener('close', (event) => {
        resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean })
        this.wake()
      })
    })
  }

  /** Opens a WebSocket and waits for `open`; rejects when it closes first. */
  static async open (url: string, protocols?: string | string[]): Promise<TestClient> {
    const client = new TestClient(new WebSocket(url, protocols))
    const opened = new Promise<void>((resolve, reject) => {
      client.ws.addEventListener('open', () => resolve())
      client.closed.then((close) => reject(new Error(`closed before open: ${close.code}`)), reject)
    })
    await withTimeout(opened, `open of ${url}`)
    return client
  }

  send (data: string | ArrayBuffer | ArrayBufferView): void {
    this.ws.send(data)
  }

  /** The next message, in arrival order. */
  async nextMessage (): Promise<string | ArrayBuffer> {
    const next = async (): Promise<string | ArrayBuffer> => {
      while (this.messages.length === 0) {
        if (this.ws.readyState === WebSocket.CLOSED) throw new Error('closed while waiting for a message')
        await new Promise<void>((resolve) => { this.waiter = resolve })
      }
      return this.messages.shift() as string | ArrayBuffer
    }
    return withTimeout(next(), 'a message')
  }

  /** The `close` event. */
  waitClose (): Promise<ClientClose> {
    return withTimeout(this.closed, 'the client close event')
  }

  private wake (): void {
    const waiter = this.waiter
    this.waiter = null
    waiter?.()
  }
}

// Bytes

/** The exact bytes of a server close frame: 0x88, payload length, close code, UTF-8 reason (RFC 6455 §5.5.1). */
export function serverCloseFrame (code: number, reason = ''): Buffer {
  const reasonBytes = Buffer.from(reason, 'utf8')
  return Buffer.from([0x88, 2 + reasonBytes.length, code >> 8, code & 0xff, ...reasonBytes])
}

// Payloads

/**
 * A string of exactly `bytes` bytes of UTF-8 mixing 1-, 2-, 3- and 4-byte
 * sequences ("aé€😀" is 10 bytes), padded with ASCII.
 */
export function utf8Text (bytes: number): string {
  return 'aé€😀'.repeat(Math.floor(bytes / 10)) + 'z'.repeat(bytes % 10)
}

/** `length` bytes of a non-repeating-looking pattern. */
export function binaryPayload (length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff
  return bytes
}

// Logs

/** A pino destination that keeps every log record, parsed. */
export function captureLogs (): { stream: { write (line: string): void }, records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = []
  return {
    stream: { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>) } },
    records
  }
}
