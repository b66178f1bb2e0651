/**
 * The chat example in a real browser: Debian's Chromium, driven headless by
 * playwright-core at a phone's width (375 px), opens the page in two rooms and
 * checks what a person would see, by the DOM: names, times, own messages set
 * apart, long words wrapped, no console error; then the server closes, the
 * page says so, and it reconnects by itself to a new app on the same port;
 * last, two instances share their rooms through a real Redis (one server, then
 * a cluster), as `REDIS_URL` and `REDIS_CLUSTER` make `npm start` do.
 * Needs `npm run build` (the example imports the package by name, from
 * dist/). Skipped, not failed, where /usr/bin/chromium (or, for the Redis
 * tests, /usr/bin/redis-server) is missing.
 */
import tap, { test, type Test } from 'tap'
import type { Browser, Page } from 'playwright-core'
import { brokerFromEnv, buildChatApp } from '../../examples/chat/server.js'
import { closeApp, listen } from '../support/app.js'
import { launchChromium, PAGE_WAIT_MS, skipWithoutChromium } from '../support/chromium.js'
import { skipWithoutRedis, startCluster, startRedis, subscriberCounts, waitFor } from '../support/redis.js'

// Each case drives Chromium through server restarts: more than tap's 60 s per file on a loaded machine.
tap.setTimeout(180_000)

/** A phone's viewport, in CSS pixels. */
const PHONE = { width: 375, height: 667 }

/**
 * What Chromium itself logs, as a console error, for each reconnection attempt
 * while no server listens: the page cannot silence it, and it is expected.
 */
const REFUSED = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/chat\/[^']+' failed: Error in connection establishment: net::ERR_CONNECTION_REFUSED$/

/** One message as the page shows it. */
interface Shown {
  name: string
  text: string
  /** The `datetime` of its `<time>`, in ms since the epoch. */
  at: number
  /** The text of its `<time>`, as the reader sees it. */
  time: string
  /** Whether it has the `own` class (the page's own message). */
  own: boolean
}

/**
 * Opens the chat page for `room` as `name` (none: the page makes one up) at
 * 375 px and waits until it is connected; console errors and uncaught page
 * errors go to `problems`.
 */
async function openChat (browser: Browser, base: string, room: string, name: string | undefined, problems: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: PHONE })
  page.setDefaultTimeout(PAGE_WAIT_MS)
  const who = name ?? `a page of ${room}`
  page.on('console', (message) => { if (message.type() === 'error') problems.push(`${who}: console: ${message.text()}`) })
  page.on('pageerror', (error) => problems.push(`${who}: page error: ${error.message}`))
  await page.goto(`${base}/?room=${encodeURIComponent(room)}${name === undefined ? '' : `&name=${encodeURIComponent(name)}`}`)
  await page.locator('#status').getByText('connected', { exact: true }).waitFor()
  return page
}

/** Types `text` into the page's input and submits the form with the Send button. */
async function say (page: Page, text: string): Promise<void> {
  await page.locator('#text').fill(text)
  await page.locator('#send').click()
}

/** Waits until the page's message list shows `text`, then returns every message it shows (not the join and leave lines). */
async function shownAfter (page: Page, text: string): Promise<Shown[]> {
  await page.locator('#log li .text').getByText(text, { exact: true }).waitFor()
  return page.locator('#log li:not(.presence)').evaluateAll((items) => items.map((item) => ({
    name: item.querySelector('.name')?.textContent ?? '',
    text: item.querySelector('.text')?.textContent ?? '',
    at: Date.parse(item.querySelector('time')?.dateTime ?? ''),
    time: item.querySelector('time')?.textContent ?? '',
    own: item.classList.contains('own')
  })))
}

/** As shownAfter, one line per message: "name: text", with " (own)" for the page's own. */
async function linesAfter (page: Page, text: string): Promise<string[]> {
  return (await shownAfter(page, text)).map((shown) => `${shown.name}: ${shown.text}${shown.own ? ' (own)' : ''}`)
}

test('chat page: names, times and own messages; rooms apart; long words wrap at 375 px; no console error', { skip: skipWithoutChromium }, async (t) => {
  const app = await buildChatApp()
  const port = await listen(app)
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${port}`
  const browser = await launchChromium()
  // Registered after app.close(), so it runs first: the pages' sockets go before the server.
  t.teardown(() => browser.close())
  const problems: string[] = []

  const alice = await openChat(browser, base, 't1', 'alice', problems)
  const bob = await openChat(browser, base, 't1', 'bob', problems)
  const carol = await openChat(browser, base, 't2', 'carol', problems)
  t.equal(await alice.locator('#room').textContent(), 't1', 'the page shows its room')
  t.equal(await carol.locator('#room').textContent(), 't2')
  t.equal(await alice.locator('#instance').textContent(), await carol.locator('#instance').textContent(), 'and the instance that served it')
  t.match(await alice.locator('#instance').textContent(), new RegExp(`^instance [0-9a-f]{8}, port ${port}$`))

  const before = Date.now()
  await say(alice, 'hello from alice, ünïcödé ✓')
  const [seen] = await shownAfter(bob, 'hello from alice, ünïcödé ✓')
  const after = Date.now()
  t.same(seen, { name: 'alice', text: 'hello from alice, ünïcödé ✓', at: seen.at, time: seen.time, own: false }, 'bob sees alice\'s message with her name, not as his own')
  t.ok(seen.at >= before && seen.at <= after, 'and the time it was sent')
  t.match(seen.time, /^\d{1,2}:\d{2}/, `shown as a time of day (${seen.time})`)
  t.same(await linesAfter(alice, 'hello from alice, ünïcödé ✓'), ['alice: hello from alice, ünïcödé ✓ (own)'],
    'alice sees her own message, marked own')
  t.equal(await alice.locator('#text').inputValue(), '', 'the input is cleared after sending')

  await say(bob, 'hi alice')
  t.same(await linesAfter(alice, 'hi alice'), ['alice: hello from alice, ünïcödé ✓ (own)', 'bob: hi alice'], 'bob\'s reply is not alice\'s own')
  t.same(await linesAfter(bob, 'hi alice'), ['alice: hello from alice, ünïcödé ✓', 'bob: hi alice (own)'], 'but is bob\'s')
  const [ownStyle, otherStyle] = await bob.locator('#log li').evaluateAll((items) => items.map((item) => {
    const style = item.ownerDocument.defaultView!.getComputedStyle(item)
    return `${style.alignSelf} ${style.backgroundColor}`
  }))
  t.not(ownStyle, otherStyle, `own messages are set apart (${ownStyle} vs ${otherStyle})`)

  // alice's messages went out before carol's; had room t2 received them, they would be ahead of her own.
  await say(carol, 'only for t2')
  t.same(await linesAfter(carol, 'only for t2'), ['carol: only for t2 (own)'], 'room t2 did not receive room t1\'s messages')
  // And the other way round: alice's next message follows any t2 message on the sockets of t1.
  await say(alice, 'second for t1')
  t.same(await linesAfter(alice, 'second for t1'), ['alice: hello from alice, ünïcödé ✓ (own)', 'bob: hi alice', 'alice: second for t1 (own)'],
    'room t1 did not receive room t2\'s message, and keeps its order')
  t.same(await linesAfter(bob, 'second for t1'), ['alice: hello from alice, ünïcödé ✓', 'bob: hi alice (own)', 'alice: second for t1'])

  const word = 'Llanfairpwllgwyngyll'.repeat(20)
  await say(bob, word)
  for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
    await shownAfter(page, word)
    const widths = await page.locator('#log li .text').last().evaluate((text) => ({
      text: [text.scrollWidth, text.clientWidth],
      item: [text.parentElement!.getBoundingClientRect().right, text.closest('ol')!.getBoundingClientRect().right],
      page: [text.ownerDocument.documentElement.scrollWidth, text.ownerDocument.defaultView!.innerWidth]
    }))
    t.ok(widths.text[0] <= widths.text[1], `${who}: a 400-letter word wraps inside its message (scrollWidth ${widths.text[0]} <= clientWidth ${widths.text[1]})`)
    t.ok(widths.item[0] <= widths.item[1], `${who}: the message stays inside the list (right edge ${widths.item[0]} <= ${widths.item[1]})`)
    t.ok(widths.page[0] <= widths.page[1], `${who}: the page does not scroll sideways at ${PHONE.width} px (${widths.page[0]} <= ${widths.page[1]})`)
  }

  const guest = await openChat(browser, base, 't3', undefined, problems)
  const generated = await guest.locator('#name').inputValue()
  t.match(generated, /^guest-\d{4}$/, `a page given no name makes one up (${generated})`)
  await guest.reload()
  await guest.locator('#status').getByText('connected', { exact: true }).waitFor()
  t.equal(await guest.locator('#name').inputValue(), generated, 'and keeps it in its tab across a reload')
  await say(guest, `I am ${generated}`)
  t.same(await linesAfter(guest, `I am ${generated}`), [`${generated}: I am ${generated} (own)`], 'and its messages carry it')
  await guest.locator('#name').fill('zoë')
  await guest.locator('#name').dispatchEvent('change')
  await say(guest, 'renamed')
  t.same(await linesAfter(guest, 'renamed'), [`${generated}: I am ${generated} (own)`, 'zoë: renamed (own)'], 'the name chosen in the page goes with the next message')

  t.equal(app.websocket.subscriberCount('room:t1'), 2, 'the server holds the pages\' sockets in their rooms\' topics')
  t.equal(app.websocket.subscriberCount('room:t2'), 1)
  await waitFor(() => app.websocket.subscriberCount('room:t3') === 1, 'the reloaded page\'s first socket to leave room t3')
  t.pass('the reloaded page\'s first socket left its room')
  t.same(problems, [], 'no console error and no uncaught error in the pages')
})

test('chat page: when the server goes away it says so, reconnects to the next server on the port and chats again', { skip: skipWithoutChromium }, async (t) => {
  const first = await buildChatApp()
  const port = await listen(first)
  t.teardown(() => closeApp(first))
  const base = `http://127.0.0.1:${port}`
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const problems: string[] = []

  const alice = await openChat(browser, base, 'r', 'alice', problems)
  const bob = await openChat(browser, base, 'r', 'bob', problems)
  const servedBy = await alice.locator('#instance').textContent()
  await say(alice, 'before the restart')
  await shownAfter(bob, 'before the restart')
  t.same(problems, [], 'no console error while the server is up')

  await first.close()
  for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
    await page.locator('#status').getByText(/^server going away, reconnecting in \d+ s…$/).waitFor()
    t.pass(`${who}: the page says the server is going away (close code 1001) and that it reconnects`)
    t.ok(await page.locator('#text').isDisabled(), `${who}: and cannot send meanwhile`)
  }

  const second = await buildChatApp()
  t.teardown(() => closeApp(second))
  await second.listen({ port, host: '127.0.0.1' })
  // Up to 0.5 + 1 + 2 + 4 s of backoff may separate the close from the attempt that finds the new server.
  for (const page of [alice, bob]) await page.locator('#status').getByText('connected', { exact: true }).waitFor({ timeout: 3 * PAGE_WAIT_MS })
  t.pass('both pages reconnected by themselves')
  t.not(await alice.locator('#instance').textContent(), servedBy, 'to the new instance')

  // The new server's room history is a new one (a new LocalBroker: a new epoch): nothing could be replayed.
  for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
    await page.locator('#log li.notice').getByText(/could not be recovered: the room was reloaded\.$/).waitFor()
    t.pass(`${who}: the page says it could not recover what it may have missed, and reloads the room`)
  }
  await say(bob, 'after the restart')
  const messages = (lines: string[]) => lines.filter((line) => line !== ': ')
  t.same(messages(await linesAfter(alice, 'after the restart')), ['bob: after the restart'], 'and chat again in the reloaded room')
  t.same(messages(await linesAfter(bob, 'after the restart')), ['bob: after the restart (own)'], 'bob\'s new connection knows its own messages')
  t.same(problems.filter((problem) => !REFUSED.test(problem.replace(/^\w+: console: /, ''))), [],
    'no console error but Chromium\'s own report of the refused attempts while no server listened')
})

/**
 * Two chat instances on their own ports with the broker that `env` asks for
 * (REDIS_URL or REDIS_CLUSTER, through the example's brokerFromEnv), one page
 * on each in room `shared` and one more on the second in room `elsewhere`:
 * each page of the room sees the other's messages, the other room nothing.
 * `subscribed` resolves once Redis holds both instances' subscriptions to the room's channel.
 */
async function chatAcrossInstances (t: Test, env: NodeJS.ProcessEnv, subscribed: () => Promise<boolean>): Promise<void> {
  const apps = []
  for (let i = 0; i < 2; i++) {
    const app = await buildChatApp({ broker: await brokerFromEnv(env) })
    t.teardown(() => closeApp(app))
    apps.push(app)
  }
  const ports = [await listen(apps[0]), await listen(apps[1])]
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const problems: string[] = []

  const ann = await openChat(browser, `http://127.0.0.1:${ports[0]}`, 'shared', 'ann', problems)
  const ben = await openChat(browser, `http://127.0.0.1:${ports[1]}`, 'shared', 'ben', problems)
  const eve = await openChat(browser, `http://127.0.0.1:${ports[1]}`, 'elsewhere', 'eve', problems)
  t.match(await ann.locator('#instance').textContent(), new RegExp(`, port ${ports[0]}$`), 'each page shows the instance that served it')
  t.match(await ben.locator('#instance').textContent(), new RegExp(`, port ${ports[1]}$`))
  await waitFor(subscribed, 'both instances subscribed to the room\'s channel')

  await say(ann, 'from the first instance')
  t.same(await linesAfter(ben, 'from the first instance'), ['ann: from the first instance'],
    'a page on the second instance sees a message sent on the first')
  t.same(await linesAfter(ann, 'from the first instance'), ['ann: from the first instance (own)'], 'and its sender sees it once, as its own')
  await say(ben, 'from the second instance')
  t.same(await linesAfter(ann, 'from the second instance'), ['ann: from the first instance (own)', 'ben: from the second instance'],
    'and the other way round')
  t.same(await linesAfter(ben, 'from the second instance'), ['ann: from the first instance', 'ben: from the second instance (own)'])
  // Both messages were published before eve's: had they reached her room, they would be ahead of it.
  await say(eve, 'only here')
  t.same(await linesAfter(eve, 'only here'), ['eve: only here (own)'], 'a page in another room sees none of them')
  t.same(problems, [], 'no console error and no uncaught error in the pages')
}

test('chat example: two instances share their rooms through Redis (REDIS_URL)', { skip: skipWithoutChromium || skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  await chatAcrossInstances(t, { REDIS_URL: redis.url }, async () =>
    (await subscriberCounts(redis.port, true, ['ws:room:shared'])).get('ws:room:shared') === 2)
})

test('chat example: two instances share their rooms through a Redis Cluster (REDIS_CLUSTER)', { skip: skipWithoutChromium || skipWithoutRedis }, async (t) => {
  const cluster = await startCluster(t)
  const owner = await cluster.portOf('ws:room:shared')
  await chatAcrossInstances(t, { REDIS_CLUSTER: cluster.nodes.map((node) => `127.0.0.1:${node.port}`).join(',') }, async () =>
    (await subscriberCounts(owner, true, ['ws:room:shared'])).get('ws:room:shared') === 2)
})
