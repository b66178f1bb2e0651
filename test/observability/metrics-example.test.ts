/**
 * examples/metrics.ts as a process, scraped as Prometheus would: sockets
 * opened, echoed, closed by the client, failed and refused, then the exact
 * samples of /metrics. Needs `npm run build` (the example imports the package
 * by name, from dist/).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { test, type Test } from 'tap'
import { request } from 'undici'
import WsClient from 'ws'
import { delay, withTimeout } from '../support/app.js'
import { OP } from '../support/http2-client.js'
import { RawClients } from '../support/raw-client.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const EXAMPLE = fileURLToPath(new URL('../../examples/metrics.ts', import.meta.url))

/** Runs the example with tsx on an ephemeral port and resolves with the port once it listens. */
async function startExample (t: Test): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', EXAMPLE], {
    cwd: ROOT, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  return await withTimeout(new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^metrics example: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(line)
      if (match !== null) resolve(Number(match[1]))
    })
    exited.then((code) => reject(new Error(`the example exited (${code}) before listening`)), reject)
  }), 'the example to listen', 20_000)
}

/** Histogram samples that depend on measured times: the sum, and every bucket but +Inf. */
const TIMED = /^websocket_connection_duration_seconds_(sum\{|bucket\{le="[^+])/

/** One scrape: the content type and the sample lines, those of TIMED left out. */
async function scrape (port: number): Promise<{ type: string, samples: string[] }> {
  const response = await request(`http://127.0.0.1:${port}/metrics`)
  const text = await response.body.text()
  const samples = text.split('\n').filter((line) => line !== '' && !line.startsWith('#') && !TIMED.test(line))
  return { type: String(response.headers['content-type']), samples }
}

/** Scrapes until the example has seen `closes` closes (a close is published once the server's TCP connection has closed). */
async function scrapeUntilClosed (port: number, closes: number): Promise<{ type: string, samples: string[] }> {
  const done = `websocket_connection_duration_seconds_count{route="/echo"} ${closes}`
  return await withTimeout((async () => {
    for (;;) {
      const result = await scrape(port)
      if (result.samples.includes(done)) return result
      await delay(20)
    }
  })(), `${closes} closes in /metrics`)
}

async function wsClient (t: Test, url: string): Promise<WsClient> {
  const client = new WsClient(url, { perMessageDeflate: false })
  t.teardown(() => client.terminate())
  await withTimeout(once(client, 'open'), 'open')
  return client
}

async function echo (client: WsClient, text: string): Promise<void> {
  client.send(text)
  await withTimeout(once(client, 'message'), 'the echo')
}

test('examples/metrics.ts: /metrics counts opens, closes, messages, bytes, errors and refusals', async (t) => {
  const port = await startExample(t)
  const url = `ws://127.0.0.1:${port}/echo`
  const raws = new RawClients(port)
  t.teardown(() => { for (const raw of raws) raw.reset() })

  const before = await scrape(port)
  t.equal(before.type, 'text/plain; version=0.0.4; charset=utf-8', 'register.contentType')
  t.same(before.samples, [
    'websocket_messages_total{direction="in"} 0',
    'websocket_messages_total{direction="out"} 0',
    'websocket_bytes_total{direction="in"} 0',
    'websocket_bytes_total{direction="out"} 0'
  ], 'before any socket: the totals at 0, no labelled series yet')

  // "hello" 2+4+5 in, 2+5 out; close 1000 2+4+2 in, 2+2 out.
  const closesFirst = await wsClient(t, url)
  await echo(closesFirst, 'hello')
  closesFirst.close(1000)
  // "hi" 2+4+2 in, 2+2 out; stays open.
  const staysOpen = await wsClient(t, url)
  await echo(staysOpen, 'hi')
  // close 4001 2+4+2 in, 2+2 out: an application code, labelled 4xxx.
  const appCode = await wsClient(t, url)
  appCode.close(4001)
  // Invalid UTF-8 2+4+1 in; the server's close frame out, and it stops reading.
  const invalid = await raws.webSocket('/echo')
  invalid.sendFrame(OP.text, Buffer.from([0xff]))
  const closeFrame = await invalid.readFrame()
  t.equal(closeFrame.payload.readUInt16BE(0), 1007)
  await invalid.waitForEnd()
  invalid.end()
  t.equal((await (await raws.connect()).handshake('/nowhere')).status, 404)
  t.equal((await (await raws.connect()).handshake('/echo', { omit: ['sec-websocket-key'] })).status, 400)

  const { samples } = await scrapeUntilClosed(port, 3)
  // Sorted: a series is printed where it was first set, and the three closes race each other.
  t.same([...samples].sort(), [
    'websocket_connections_open{route="/echo"} 1',
    'websocket_messages_total{direction="in"} 2',
    'websocket_messages_total{direction="out"} 2',
    `websocket_bytes_total{direction="in"} ${19 + 8 + 8 + 7}`,
    `websocket_bytes_total{direction="out"} ${11 + 4 + 4 + closeFrame.bytes.length}`,
    'websocket_connections_total{route="/echo"} 4',
    'websocket_connections_closed_total{route="/echo",code="1000",initiator="client"} 1',
    'websocket_connections_closed_total{route="/echo",code="4xxx",initiator="client"} 1',
    'websocket_connections_closed_total{route="/echo",code="1006",initiator="server"} 1',
    'websocket_connection_duration_seconds_bucket{le="+Inf",route="/echo"} 3',
    'websocket_connection_duration_seconds_count{route="/echo"} 3',
    'websocket_errors_total{code="WS_ERR_INVALID_UTF8"} 1',
    'websocket_handshakes_refused_total{status="404"} 1',
    'websocket_handshakes_refused_total{status="400"} 1'
  ].sort())
  t.same((await scrape(port)).samples, samples, 'a second scrape adds nothing: the totals are not counted twice')

  staysOpen.close(1000)
  await withTimeout(once(staysOpen, 'close'), 'the last close')
  const after = await scrapeUntilClosed(port, 4)
  t.ok(after.samples.includes('websocket_connections_open{route="/echo"} 0'), 'the route stays at 0 once its last socket closed')
})
