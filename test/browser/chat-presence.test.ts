/**
 * Who is in a chat room, in Chromium: two instances share a real
 * redis-server; pages on both list each other as members and show the join
 * and leave lines, a name in two tabs is one member, a page that takes
 * another name comes back under it, and a page kicked out of its room
 * (POST /chat/:room/kick, close code 4001) says so and does not reconnect.
 * Needs `npm run build` (the example imports the package by name, from dist/).
 */
import tap, { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import { buildChatApp, KICKED_CODE } from '../../examples/chat/server.js'
import { RedisBroker } from '../../lib/pubsub/redis.js'
import { closeApp, listen } from '../support/app.js'
import { launchChromium, PAGE_WAIT_MS, skipWithoutChromium } from '../support/chromium.js'
import { skipWithoutRedis, startRedis } from '../support/redis.js'

// Chromium and two instances on a loaded machine: more than tap's 60 s per file.
tap.setTimeout(180_000)

const TOKEN = 'chat-presence-token'
const ROOM = 'presence'

/** The texts of the elements `selector` matches, once they are `expected` (or the wait times out: the test then shows them). */
async function textsOnce (page: Page, selector: string, expected: string[]): Promise<string[]> {
  const texts = `JSON.stringify([...document.querySelectorAll(${JSON.stringify(selector)})].map((element) => element.textContent))`
  await page.waitForFunction(`${texts} === ${JSON.stringify(JSON.stringify(expected))}`).catch(() => {})
  return page.locator(selector).allTextContents()
}

/** The page's members list once it is `names`. */
const members = (page: Page, names: string[]) => textsOnce(page, '#members li', names)
/** The page's join and leave lines once they are `lines`. */
const presenceLines = (page: Page, lines: string[]) => textsOnce(page, '#log li.presence', lines)
/** Waits until the page shows the join or leave line `text`: a leave follows a closing handshake, slow on a loaded machine. */
const lineShown = (page: Page, text: string) => page.locator('#log li.presence').filter({ hasText: new RegExp(`^${text}$`) }).waitFor({ timeout: 3 * PAGE_WAIT_MS })

test('chat page: the members of the room on both instances, join and leave lines; kicked, a page says so and stays away',
  { skip: skipWithoutChromium || skipWithoutRedis }, async (t) => {
    const redis = await startRedis(t)
    const apps: FastifyInstance[] = []
    const ports: number[] = []
    for (const instance of ['a', 'b']) {
      const app = await buildChatApp({ instance, adminToken: TOKEN, broker: new RedisBroker({ url: redis.url, closeTimeout: 200 }) })
      t.teardown(() => closeApp(app))
      apps.push(app)
      ports.push(await listen(app))
    }
    const browser = await launchChromium()
    t.teardown(() => browser.close())
    const problems: string[] = []
    /** Opens the room on the instance at `port` as `name`; `clock`: with Playwright's clock, to run its timers at will. */
    const open = async (port: number, name: string, clock = false): Promise<Page> => {
      const page = await browser.newPage()
      page.setDefaultTimeout(PAGE_WAIT_MS)
      page.on('console', (message) => { if (message.type() === 'error') problems.push(`${name}: console: ${message.text()}`) })
      page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`))
      if (clock) await page.clock.install()
      await page.goto(`http://127.0.0.1:${port}/?room=${ROOM}&name=${encodeURIComponent(name)}`)
      await page.locator('#status').getByText('connected', { exact: true }).waitFor()
      return page
    }

    const ann = await open(ports[0], 'ann')
    t.same(await members(ann, ['ann']), ['ann'], 'a page lists itself')
    t.equal(await ann.locator('#members li.you').textContent(), 'ann', 'marked as itself')
    const bob = await open(ports[1], 'bob')
    t.same(await members(bob, ['ann', 'bob']), ['ann', 'bob'], 'a page on the other instance lists both')
    t.same(await members(ann, ['ann', 'bob']), ['ann', 'bob'], 'and so does the first page')
    t.same(await presenceLines(ann, ['bob joined']), ['bob joined'], 'which shows the join line')
    t.same(await bob.locator('#log li.presence').allTextContents(), [], 'no line for the members already there')

    const bobTab = await open(ports[0], 'bob')
    t.same(await members(bobTab, ['ann', 'bob']), ['ann', 'bob'], 'bob in a second tab, on the first instance: one member')
    const carol = await open(ports[1], 'carol', true)
    t.same(await presenceLines(ann, ['bob joined', 'carol joined']), ['bob joined', 'carol joined'], 'no join line for bob\'s second tab')
    t.same(await members(ann, ['ann', 'bob', 'carol']), ['ann', 'bob', 'carol'])

    await bob.close()
    await bobTab.close()
    t.same(await presenceLines(ann, ['bob joined', 'carol joined', 'bob left']), ['bob joined', 'carol joined', 'bob left'],
      'once both of bob\'s pages closed, the leave line')
    t.same(await members(carol, ['ann', 'carol']), ['ann', 'carol'], 'and bob is off the list')

    await ann.locator('#name').fill('anna')
    await ann.locator('#name').blur()
    t.same(await members(carol, ['anna', 'carol']), ['anna', 'carol'], 'a page that takes another name is a member under it')
    await lineShown(carol, 'ann left')
    await lineShown(carol, 'anna joined')
    // The old connection's leave and the new one's join, in either order.
    t.same((await carol.locator('#log li.presence').allTextContents()).sort(), ['ann left', 'anna joined', 'bob left'], 'the others see it leave and join')
    t.same(await members(ann, ['anna', 'carol']), ['anna', 'carol'])
    t.equal(await ann.locator('#members li.you').textContent(), 'anna')
    await ann.locator('#status').getByText('connected', { exact: true }).waitFor()

    const kicked = await fetch(`http://127.0.0.1:${ports[0]}/chat/${ROOM}/kick`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'carol' })
    })
    t.same(await kicked.json(), { instances: 2, sockets: 1 }, `carol kicked, from the other instance (${KICKED_CODE})`)
    await carol.locator('#status').getByText('you were removed from the room', { exact: true }).waitFor()
    t.pass('the kicked page says so in its status')
    t.same(await carol.locator('#log li.notice').allTextContents(), ['you were removed from the room'], 'and in its log')
    t.ok(await carol.locator('#text').isDisabled(), 'it can no longer send')
    t.same(await carol.locator('#members li').allTextContents(), [], 'nor lists members')
    await lineShown(ann, 'carol left')
    t.same(await members(ann, ['anna']), ['anna'], 'the other page sees carol leave')
    // Past every backoff delay of reconnect.js: a page that reconnects would say so, then connect.
    await carol.clock.runFor(60_000)
    t.equal(await carol.locator('#status').textContent(), 'you were removed from the room', 'the kicked page did not try to reconnect')
    t.equal(apps[0].websocket.subscriberCount(`room:${ROOM}`) + apps[1].websocket.subscriberCount(`room:${ROOM}`), 1, 'anna alone in the room')
    t.same(problems, [], 'no console error and no uncaught error in the pages')
  })
