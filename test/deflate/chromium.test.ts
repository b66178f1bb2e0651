/**
 * permessage-deflate with a real browser: an echo route (perMessageDeflate
 * on) and Debian's Chromium, headless through playwright-core. A page opens a
 * WebSocket, sees permessage-deflate in `ws.extensions`, sends 20 KB of
 * repetitive text and gets it back intact (compressed by the server: 20 KB is
 * over the 1024-byte threshold). The server's TCP byte counts show both
 * directions compressed. Skipped, not failed, where /usr/bin/chromium is missing.
 */
import type { Socket } from 'node:net'
import Fastify from 'fastify'
import { test } from 'tap'
import fastifyRfc6455 from '../../lib/index.js'
import { listen } from '../support/app.js'
import { launchChromium, PAGE_WAIT_MS, skipWithoutChromium } from '../support/chromium.js'
import { echoRoute, withTimeout } from './helpers.js'

/** What the page reports. */
interface PageResult {
  extensions: string
  length: number
  intact: boolean
}

test('Chromium negotiates permessage-deflate and gets 20 KB back intact', { skip: skipWithoutChromium }, async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455, { perMessageDeflate: true })
  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><title>deflate</title><link rel="icon" href="data:,">'))
  echoRoute(app)
  // The server side's TCP socket of each WebSocket handshake, to count bytes on the wire.
  const sockets = new Map<string, Socket>()
  app.addHook('onRequest', async (request) => {
    if (request.headers.upgrade !== undefined) sockets.set(request.url, request.raw.socket)
  })
  const port = await listen(app)
  t.teardown(() => app.close())

  const browser = await launchChromium()
  // Registered after app.close(), so it runs first: the page's sockets go before the server.
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  page.setDefaultTimeout(PAGE_WAIT_MS)
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(`http://127.0.0.1:${port}/`)

  const text = 'The quick brown fox jumps over the lazy dog. Ünïcödé ✓ 0123456789\n'.repeat(300)
  const textBytes = Buffer.byteLength(text)
  t.ok(textBytes > 20_000, `${textBytes} bytes of UTF-8`)
  const result = await withTimeout(page.evaluate(async ({ url, text, wait }): Promise<PageResult> => {
    const ws = new WebSocket(url)
    const within = <T>(promise: Promise<T>, what: string): Promise<T> => Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), wait))
    ])
    await within(new Promise((resolve, reject) => {
      ws.onopen = resolve
      ws.onerror = () => reject(new Error('WebSocket error before open'))
    }), 'open')
    const reply = within(new Promise<string>((resolve) => {
      ws.onmessage = (event) => resolve(event.data as string)
    }), 'the echo')
    ws.send(text)
    const data = await reply
    ws.close(1000)
    return { extensions: ws.extensions, length: data.length, intact: data === text }
  }, { url: `ws://127.0.0.1:${port}/echo`, text, wait: PAGE_WAIT_MS }), 'the page', 3 * PAGE_WAIT_MS)

  t.match(result.extensions, /^permessage-deflate(;|$)/, `ws.extensions is "${result.extensions}"`)
  t.equal(result.length, text.length, 'the echo has the length of the text')
  t.ok(result.intact, 'and is the same text')
  t.same(errors, [], 'no uncaught error in the page')

  const server = sockets.get('/echo')
  if (server === undefined) throw new Error('no handshake seen for /echo')
  t.ok(server.bytesRead < textBytes / 4, `Chromium compressed: the server read ${server.bytesRead} bytes for ${textBytes}`)
  t.ok(server.bytesWritten < textBytes / 4, `the server compressed: it wrote ${server.bytesWritten} bytes for ${textBytes}`)
})
