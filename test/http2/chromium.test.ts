/**
 * Chromium and WebSockets over HTTP/2 (RFC 8441): Debian's Chromium, headless
 * through playwright-core, loads a page over HTTPS (HTTP/2 by ALPN, with a
 * self-signed certificate made for the test and --ignore-certificate-errors)
 * and opens `new WebSocket('wss://…')` on the same origin. The server asserts
 * that the WebSocket arrived as an extended CONNECT on the page's HTTP/2
 * connection, and messages flow both ways. Then the chat example with a
 * certificate: its page, favicon and WebSocket on one HTTP/2 connection. The
 * chat example imports the package by name: needs `npm run build`. Skipped,
 * not failed, where /usr/bin/chromium or openssl is missing.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import { test } from 'tap'
import { chromium } from 'playwright-core'
import { buildChatApp } from '../../examples/chat/server.js'
import fastifyRfc6455 from '../../lib/index.js'
import { closeApp, listen, withTimeout } from '../support/app.js'
import { CHROMIUM, PAGE_WAIT_MS, skipWithoutChromium } from '../support/chromium.js'
import { http2App, selfSignedCertificate } from '../support/http2-client.js'

/** Chromium with the test certificate accepted; closed at teardown by the caller. */
function launch (): ReturnType<typeof chromium.launch> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 15_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--ignore-certificate-errors']
  })
}

const certificate = selfSignedCertificate()
const skip = skipWithoutChromium || (typeof certificate === 'string' && certificate)

test('Chromium opens wss:// as a stream of the page\'s HTTP/2 connection', { skip }, async (t) => {
  if (typeof certificate === 'string') return
  const app = http2App({ allowHTTP1: true, ...certificate })
  await app.register(fastifyRfc6455)
  const pageSessions = new Set<unknown>()
  app.get('/', (request, reply) => {
    pageSessions.add((request.raw as unknown as { stream?: { session?: unknown } }).stream?.session)
    return reply.type('text/html; charset=utf-8').send('<!doctype html><title>h2</title><link rel="icon" href="data:,">')
  })
  const seen: Array<{ httpVersion: string, method: string | undefined, protocol: unknown, sameSession: boolean }> = []
  app.get('/echo', { ws: true }, (socket, request) => {
    const raw = request.raw as unknown as { stream?: { session?: unknown }, headers: Record<string, unknown> }
    seen.push({
      httpVersion: request.raw.httpVersion,
      method: request.raw.headers[':method'] as string | undefined,
      protocol: raw.headers[':protocol'],
      sameSession: pageSessions.has(raw.stream?.session)
    })
    socket.on('message', (data) => socket.send(`echo: ${data.toString()}`))
    socket.send('hello from the server')
  })
  const port = await listen(app)
  t.teardown(() => closeApp(app))

  const browser = await launch()
  // Registered after closeApp, so it runs first: the page's connection goes before the server.
  t.teardown(() => browser.close())
  const page = await browser.newPage({ ignoreHTTPSErrors: true })
  page.setDefaultTimeout(PAGE_WAIT_MS)
  const response = await page.goto(`https://localhost:${port}/`)
  t.equal(response?.status(), 200, 'the page loaded')

  const messages = await withTimeout(page.evaluate(async ({ url, wait }) => {
    const ws = new WebSocket(url)
    const received: string[] = []
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        ws.onerror = () => reject(new Error('WebSocket error'))
        ws.onmessage = (event) => {
          received.push(String(event.data))
          if (received.length === 1) ws.send('hello from the page')
          if (received.length === 2) resolve()
        }
      }),
      new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('timed out waiting for the echo')), wait))
    ])
    ws.close(1000)
    return received
  }, { url: `wss://localhost:${port}/echo`, wait: PAGE_WAIT_MS }), 'the page', 3 * PAGE_WAIT_MS)

  t.same(messages, ['hello from the server', 'echo: hello from the page'], 'messages flow both ways')
  t.same(seen, [{ httpVersion: '2.0', method: 'GET', protocol: 'websocket', sameSession: true }],
    'the WebSocket came as an extended CONNECT (routed as GET) on the HTTP/2 connection of the page')
})

test('the chat example with HTTPS: page, favicon and WebSocket on one HTTP/2 connection', { skip }, async (t) => {
  if (typeof certificate === 'string') return
  const app = await buildChatApp({ https: certificate })
  const sessions = new Set<unknown>()
  const webSockets: string[] = []
  app.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    sessions.add(stream.session)
    if (headers[':protocol'] === 'websocket') webSockets.push(String(headers[':path']))
  })
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  const browser = await launch()
  t.teardown(() => browser.close())
  const page = await browser.newPage({ ignoreHTTPSErrors: true })
  page.setDefaultTimeout(PAGE_WAIT_MS)
  await page.goto(`https://localhost:${port}/?room=h2&name=ada`)
  await page.locator('#status').getByText('connected', { exact: true }).waitFor()
  await page.locator('#text').fill('over one connection')
  await page.locator('#send').click()
  await page.locator('#log li .text').getByText('over one connection', { exact: true }).waitFor()
  t.same(webSockets, ['/chat/h2?name=ada'], 'the page\'s WebSocket came as an extended CONNECT, with its name')
  t.equal(sessions.size, 1, 'one HTTP/2 connection carried the page, its favicon and its WebSocket')
})
