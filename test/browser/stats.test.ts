/**
 * The chat example's /stats page: uPlot served from the `uplot` package, the
 * feed's samples (history first, then one a second, the feed's own sockets
 * and messages left out), and in headless Chromium at 375 px the two charts
 * drawing what chat sockets opened from Node do, then reconnecting to the
 * next server on the port. Needs `npm run build` (the example imports the
 * package by name, from dist/). The browser tests are skipped, not failed,
 * where /usr/bin/chromium is missing.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { test } from 'tap'
import type { Page } from 'playwright-core'
import { buildChatApp, type StatsSample } from '../../examples/chat/server.js'
import { RedisBroker } from '../../lib/pubsub/redis.js'
import { closeApp } from '../support/app.js'
import { launchChromium, PAGE_WAIT_MS, skipWithoutChromium } from '../support/chromium.js'
import { skipWithoutRedis, startRedis } from '../support/redis.js'
import { start, type TestClient } from '../integration/helpers.js'

/** A phone's viewport, in CSS pixels. */
const PHONE = { width: 375, height: 667 }

/** Chromium's own console error for each reconnection attempt while no server listens. */
const REFUSED = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/stats\/feed' failed: Error in connection establishment: net::ERR_CONNECTION_REFUSED$/

/** Waits at most this long for a figure to reach a chart: samples come once a second. */
const SAMPLE_WAIT_MS = 3 * PAGE_WAIT_MS

const require = createRequire(import.meta.url)

/** The next message of a feed, parsed. */
async function next (feed: TestClient): Promise<Record<string, unknown>> {
  return JSON.parse(await feed.nextMessage() as string) as Record<string, unknown>
}

/** Reads a feed's samples until one satisfies `done`, 10 at most; returns every sample read, that one last. */
async function samplesUntil (feed: TestClient, done: (sample: StatsSample) => boolean): Promise<StatsSample[]> {
  const samples: StatsSample[] = []
  while (samples.length < 10) {
    const { type, ...sample } = await next(feed)
    if (type !== 'sample') throw new Error(`expected a sample, got ${String(type)}`)
    samples.push(sample as unknown as StatsSample)
    if (done(sample as unknown as StatsSample)) return samples
  }
  throw new Error(`no such sample in ${JSON.stringify(samples)}`)
}

const sum = (values: number[]): number => values.reduce((total, value) => total + value, 0)

test('stats: uPlot from the package, and a feed of chat samples that leaves its own sockets out', async (t) => {
  const harness = await start(t, await buildChatApp({ instance: 'test-1' }))
  for (const [path, file, type] of [
    ['/vendor/uPlot.iife.min.js', 'uplot/dist/uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
    ['/vendor/uPlot.min.css', 'uplot/dist/uPlot.min.css', 'text/css; charset=utf-8']
  ]) {
    const response = await fetch(harness.httpUrl(path))
    t.equal(response.status, 200, `${path}: 200`)
    t.equal(response.headers.get('content-type'), type, `${path}: ${type}`)
    t.equal(response.headers.get('cache-control'), 'max-age=86400', `${path}: cached for a day`)
    t.ok(Buffer.from(await response.arrayBuffer()).equals(await readFile(require.resolve(file))), `${path}: the package's ${file}, as it is`)
  }
  const page = await fetch(harness.httpUrl('/stats'))
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8', '/stats is a page')
  t.match(await page.text(), '<script src="/vendor/uPlot.iife.min.js"></script>', 'that loads uPlot from this server')

  const feed = await harness.client('/stats/feed')
  // The history holds the samples taken since the app started (one a second): none on a quiet machine, and on a busy one only idle ones.
  const history = await next(feed) as unknown as { type: string, instance: string, port: number, samples: StatsSample[] }
  t.same({ ...history, samples: [] }, { type: 'history', instance: 'test-1', port: harness.port, samples: [] }, 'a feed first gets the history')
  t.same(history.samples.filter((sample) => sample.open !== 0 || sample.clusterOpen !== 0 || sample.messagesIn !== 0 || sample.messagesOut !== 0), [],
    `whose ${history.samples.length} samples, taken before any socket opened, are all idle`)
  const [idle] = await samplesUntil(feed, () => true)
  t.same(idle, { t: idle.t, open: 0, clusterOpen: 0, messagesIn: 0, messagesOut: 0 },
    'a sample a second: with only the feed open, no open socket and no message (the history it was sent does not count)')

  // Two anonymous pages: one member, so no join; each gets the welcome and the presence message.
  const chat = [await harness.client('/chat/s'), await harness.client('/chat/s')]
  for (const client of chat) for (let i = 0; i < 2; i++) await client.nextMessage()
  for (const text of ['one', 'two', 'three']) chat[0].send(JSON.stringify({ name: 'ann', text }))
  for (const client of chat) for (let i = 0; i < 3; i++) await client.nextMessage()
  // Every message was counted before the pages got it: a sample taken from now on counts them all.
  const relayed = Date.now()
  // The chat sockets of every instance are counted after a sample for the next one.
  const seen = await samplesUntil(feed, (sample) => sample.t > relayed && sample.clusterOpen === 2)
  t.equal(seen.at(-1)!.open, 2, 'the samples count the 2 chat sockets, not the feed')
  t.equal(seen.at(-1)!.clusterOpen, 2, 'on every instance too: this one alone')
  t.equal(sum(seen.map((sample) => sample.messagesIn)), 3, 'the 3 messages a page sent')
  t.equal(sum(seen.map((sample) => sample.messagesOut)), 2 * 2 + 2 * 3,
    'and the 2 welcomes, 2 presence messages and 3 messages to each of 2 pages the server sent')
  t.ok(seen.every((sample, i) => sample.t > (i === 0 ? idle : seen[i - 1]).t), 'one after the other')

  const late = await harness.client('/stats/feed')
  const { type, samples } = await next(late) as { type: string, samples: StatsSample[] }
  t.equal(type, 'history', 'a feed opened later gets the history')
  const from = samples.findIndex((sample) => sample.t === idle.t)
  t.same(samples.slice(from, from + seen.length + 1), [idle, ...seen], 'with the samples sent so far, oldest first')
  chat[0].ws.close()
  await samplesUntil(late, (sample) => sample.open === 1 && sample.clusterOpen === 1)
  t.pass('two feeds open, one chat socket closed: open and clusterOpen go down to 1')
})

test('stats: clusterOpen counts the chat sockets of every instance that shares the rooms', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const build = async (instance: string) => await start(t, await buildChatApp({ instance, broker: new RedisBroker({ url: redis.url, closeTimeout: 200 }) }))
  const a = await build('a')
  const b = await build('b')
  const feed = await a.client('/stats/feed')
  t.equal((await next(feed)).type, 'history', 'a feed on instance a')
  const pages = [await a.client('/chat/x'), await b.client('/chat/x'), await b.client('/chat/y')]
  await samplesUntil(feed, (sample) => sample.open === 1 && sample.clusterOpen === 3)
  t.pass('instance a\'s samples: 1 chat socket of its own, 3 on both instances')
  pages[2].ws.close()
  await samplesUntil(feed, (sample) => sample.open === 1 && sample.clusterOpen === 2)
  t.pass('one closed on instance b: 2')
})

/**
 * Opens /stats at 375 px; console errors and uncaught page errors go to
 * `problems`. Resolves once the page says it is connected.
 */
async function openStats (page: Page, base: string, problems: string[]): Promise<void> {
  page.setDefaultTimeout(PAGE_WAIT_MS)
  page.on('console', (message) => { if (message.type() === 'error') problems.push(`console: ${message.text()}`) })
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  await page.goto(`${base}/stats`)
  await page.locator('#status').getByText('connected', { exact: true }).waitFor()
}

/** What the page's two uPlot instances draw: `data` of each, x (seconds since the epoch) first. */
async function chartData (page: Page): Promise<{ open: number[][], messages: number[][] }> {
  return page.evaluate('({ open: window.statsCharts.open.data, messages: window.statsCharts.messages.data })')
}

/** Waits until `expression`, evaluated in the page with `charts` (window.statsCharts) in scope, is true. */
async function chartsShow (page: Page, expression: string): Promise<void> {
  await page.waitForFunction(`(() => { const charts = window.statsCharts; return ${expression} })()`, undefined, { timeout: SAMPLE_WAIT_MS })
}

test('stats page: two charts at 375 px that follow the chat\'s sockets and messages, linked both ways with the chat', { skip: skipWithoutChromium }, async (t) => {
  const harness = await start(t, await buildChatApp())
  const base = harness.httpUrl('')
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: PHONE })
  const problems: string[] = []

  await page.goto(`${base}/?room=lobby`)
  await page.getByRole('link', { name: 'stats' }).click()
  await page.waitForURL(`${base}/stats`)
  t.pass('the chat page links to /stats')
  await openStats(page, base, problems)
  for (const id of ['open-chart', 'messages-chart']) {
    const box = await page.locator(`#${id} canvas`).boundingBox()
    t.ok(box !== null && box.width > 300 && box.height > 100, `#${id} draws on a canvas (${box?.width} × ${box?.height} px)`)
  }
  const widths = await page.evaluate<number[]>('[document.documentElement.scrollWidth, window.innerWidth]')
  t.ok(widths[0] <= widths[1], `the page does not scroll sideways at ${PHONE.width} px (${widths[0]} <= ${widths[1]})`)

  await chartsShow(page, 'charts.open.data[1].at(-1) === 0 && charts.open.data[0].length >= 2')
  t.pass('once the chat page has gone, the open sockets chart shows 0: this page\'s own feed is not counted')

  // Anonymous pages: each gets the welcome and the presence message, no join.
  const chat = [await harness.client('/chat/s'), await harness.client('/chat/s'), await harness.client('/chat/t')]
  for (const client of chat) for (let i = 0; i < 2; i++) await client.nextMessage()
  await chartsShow(page, 'charts.open.data[1].at(-1) === 3 && charts.open.data[2].at(-1) === 3')
  t.equal(await page.locator('#open-now').textContent(), '3', 'the open sockets chart and its figure show the 3 chat sockets opened from Node')
  t.equal(await page.locator('#cluster-open-now').textContent(), '3', 'and those of every instance: this one alone')

  const before = (await chartData(page)).messages.slice(1).map(sum)
  for (const text of ['one', 'two', 'three', 'four']) chat[0].send(JSON.stringify({ name: 'ann', text }))
  // 4 messages in; out: 4 to each of the 2 pages of room s.
  await chartsShow(page, `charts.messages.data[1].reduce((a, b) => a + b, 0) === ${before[0] + 4} && charts.messages.data[2].reduce((a, b) => a + b, 0) === ${before[1] + 8}`)
  t.pass('the messages per second chart takes the 4 messages in and 8 out, once each')

  for (const client of chat) client.ws.close()
  await chartsShow(page, 'charts.open.data[1].at(-1) === 0')
  t.pass('and the open sockets chart goes back to 0 once they close')
  t.ok((await chartData(page)).open[1].includes(3), 'keeping the 3 in its history')

  await page.getByRole('link', { name: '← back to the chat' }).click()
  await page.waitForURL(`${base}/`)
  t.pass('and /stats links back to the chat')
  t.same(problems, [], 'no console error and no uncaught error in the page')
})

test('stats page: when the server goes away it says so and reconnects to the next server on the port', { skip: skipWithoutChromium }, async (t) => {
  const first = await buildChatApp({ instance: 'first' })
  const harness = await start(t, first)
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: PHONE })
  const problems: string[] = []
  await openStats(page, harness.httpUrl(''), problems)
  t.match(await page.locator('#instance').textContent(), `instance first, port ${harness.port}`, 'the page shows the instance it charts')
  await chartsShow(page, 'charts.open.data[0].length >= 2')

  await first.close()
  const closedAt = Date.now()
  await page.locator('#status').getByText(/^server going away, reconnecting in \d+ s…$/).waitFor()
  t.pass('the page says the server is going away (close code 1001) and that it reconnects')

  const second = await buildChatApp({ instance: 'second' })
  t.teardown(() => closeApp(second))
  await second.listen({ port: harness.port, host: '127.0.0.1' })
  // Up to 0.5 + 1 + 2 + 4 s of backoff may separate the close from the attempt that finds the new server.
  await page.locator('#status').getByText('connected', { exact: true }).waitFor({ timeout: 3 * PAGE_WAIT_MS })
  t.match(await page.locator('#instance').textContent(), `instance second, port ${harness.port}`, 'it reconnected by itself, to the new instance')
  await chartsShow(page, `charts.open.data[0].length >= 1 && charts.open.data[0][0] * 1000 > ${closedAt}`)
  t.pass('and charts the new instance\'s samples only, the first one\'s gone')
  t.same(problems.filter((problem) => !REFUSED.test(problem.replace(/^console: /, ''))), [],
    'no console error but Chromium\'s own report of the refused attempts while no server listened')
})
