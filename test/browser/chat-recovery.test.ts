/**
 * The chat example resumes: its wire (`pos` on every room message,
 * `?since=`, the welcome's `recovered` and `pos`), its room names, and in
 * Chromium a page whose instance restarts while another page, on another
 * instance, keeps talking: the first page shows the messages it missed once,
 * in order. Two instances share a real redis-server. Needs `npm run build`
 * (the example imports the package by name, from dist/).
 */
import tap, { test } from 'tap'
import { buildChatApp } from '../../examples/chat/server.js'
import { RedisBroker } from '../../lib/pubsub/redis.js'
import { closeApp, listen } from '../support/app.js'
import { launchChromium, PAGE_WAIT_MS, skipWithoutChromium } from '../support/chromium.js'
import { skipWithoutRedis, startRedis } from '../support/redis.js'
import { start, TestClient, withTimeout, type Harness } from '../integration/helpers.js'

// Each case drives Chromium through server restarts: more than tap's 60 s per file on a loaded machine.
tap.setTimeout(180_000)

type Wire = Record<string, unknown>

async function join (harness: Harness, room: string, since?: string): Promise<{ client: TestClient, welcome: Wire }> {
  const client = await harness.client(`/chat/${encodeURIComponent(room)}${since === undefined ? '' : `?since=${encodeURIComponent(since)}`}`)
  return { client, welcome: JSON.parse(await client.nextMessage() as string) as Wire }
}

/** The next `count` room messages of `client`: its presence message, right after the welcome, is left out. */
async function next (client: TestClient, count: number): Promise<Wire[]> {
  const messages: Wire[] = []
  while (messages.length < count) {
    const message = JSON.parse(await client.nextMessage() as string) as Wire
    if (message.type !== 'presence') messages.push(message)
  }
  return messages
}

test('chat wire: every room message has pos; ?since= replays what was missed right after the welcome', async (t) => {
  const harness = await start(t, await buildChatApp({ instance: 'r-1' }))
  const { client: writer, welcome } = await join(harness, 'resume')
  t.match(welcome, { type: 'welcome', recovered: false, pos: /^0\.[A-Za-z0-9_-]+$/ }, 'without since: not recovered, the room at 0')
  writer.send(JSON.stringify({ name: 'ann', text: 'first' }))
  const [first] = await next(writer, 1)
  t.match(first, { type: 'message', name: 'ann', text: 'first', pos: /^1\./ })
  const { client: reader } = await join(harness, 'resume', String(first.pos))
  t.same(Object.keys(first), ['type', 'from', 'name', 'text', 'at', 'pos'])
  reader.ws.close()
  await reader.waitClose()
  for (const text of ['two', 'three']) writer.send(JSON.stringify({ name: 'ann', text }))
  const missed = await next(writer, 2)
  const again = await join(harness, 'resume', String(first.pos))
  t.match(again.welcome, { type: 'welcome', recovered: true, pos: missed[1].pos }, 'recovered, at the room\'s position')
  writer.send(JSON.stringify({ name: 'ann', text: 'live' }))
  const got = await next(again.client, 3)
  t.same(got.slice(0, 2), missed, 'the missed messages, once, in order, before any live one')
  t.match(got[2], { text: 'live', pos: /^4\./ })
  const lost = await join(harness, 'resume', `1.${'x'.repeat(8)}`)
  t.match(lost.welcome, { recovered: false, pos: got[2].pos }, 'another epoch: not recovered, nothing replayed')
})

test('chat: room names with control characters or bidi overrides get 400 with a clear message', async (t) => {
  const harness = await start(t, await buildChatApp())
  for (const [what, room] of [['NUL', 'a\u0000b'], ['a newline', 'a\nb'], ['DEL', 'a\u007fb'], ['U+202E', 'evil\u202Etxt.exe'], ['U+2066', 'a\u2066b']]) {
    const raw = await harness.raw()
    const answer = await raw.handshake(`/chat/${encodeURIComponent(room)}`)
    t.equal(answer.status, 400, `${what}: 400 before the upgrade`)
    t.match(answer.body.toString(), /control characters .* bidirectional overrides/, `${what}: the answer says why`)
  }
  const fine = await join(harness, 'café ☕ 東京')
  t.equal(fine.welcome.room, 'café ☕ 東京', 'other Unicode is welcome')
})

test('chat page in Chromium: its instance restarts while a page on another instance talks; it shows what it missed once, in order',
  { skip: skipWithoutChromium || skipWithoutRedis }, async (t) => {
    const redis = await startRedis(t)
    const build = async (instance: string) => await buildChatApp({ instance, broker: new RedisBroker({ url: redis.url, closeTimeout: 200 }) })
    const a = await build('a')
    const portA = await listen(a)
    t.teardown(() => closeApp(a))
    const b = await build('b')
    const portB = await listen(b)
    t.teardown(() => closeApp(b))
    const browser = await launchChromium()
    t.teardown(() => browser.close())
    const open = async (port: number, name: string) => {
      const page = await browser.newPage()
      page.setDefaultTimeout(PAGE_WAIT_MS)
      await page.goto(`http://127.0.0.1:${port}/?room=resume&name=${name}`)
      await page.locator('#status').getByText('connected', { exact: true }).waitFor()
      return page
    }
    const say = async (page: Awaited<ReturnType<typeof open>>, text: string) => {
      await page.locator('#text').fill(text)
      await page.locator('#send').click()
    }
    const texts = (page: Awaited<ReturnType<typeof open>>) => page.locator('#log li .text').allTextContents()

    const first = await open(portA, 'ann')
    const second = await open(portB, 'bob')
    await say(second, 'before')
    await first.locator('#log li .text').getByText('before', { exact: true }).waitFor()

    await withTimeout(a.close(), 'instance a to close')
    await first.locator('#status[data-state="closed"], #status[data-state="connecting"]').waitFor()
    const missed = ['while a was down 1', 'while a was down 2', 'while a was down 3']
    for (const text of missed) {
      await say(second, text)
      await second.locator('#log li .text').getByText(text, { exact: true }).waitFor()
    }
    const restarted = await build('a2')
    t.teardown(() => closeApp(restarted))
    await restarted.listen({ port: portA, host: '127.0.0.1' })
    await first.locator('#status').getByText('connected', { exact: true }).waitFor({ timeout: 15_000 })
    await say(second, 'after')
    await first.locator('#log li .text').getByText('after', { exact: true }).waitFor()
    t.same(await texts(first), ['before', ...missed, 'after'], 'the missed messages once, in order, then the live one')
    t.equal(await first.locator('#log li.notice').count(), 0, 'no "could not recover" notice')
  })
