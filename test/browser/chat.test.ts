/**
 * The chat example in a real browser: Debian's Chromium, driven headless by
 * playwright-core, opens the page twice in one room and once in another, and
 * the browser's own WebSocket client talks to the plugin over 127.0.0.1.
 * Skipped, not failed, where /usr/bin/chromium is missing.
 */
import { test } from 'tap'
import type { Browser, Page } from 'playwright-core'
import { buildChatApp } from '../../examples/chat/server.js'
import { listen } from '../support/app.js'
import { launchChromium, PAGE_WAIT_MS, skipWithoutChromium } from '../support/chromium.js'

/** Opens the chat page for `room` and waits until its WebSocket is open. */
async function openRoom (browser: Browser, base: string, room: string, errors: string[]): Promise<Page> {
  const page = await browser.newPage()
  page.setDefaultTimeout(PAGE_WAIT_MS)
  page.on('pageerror', (error) => errors.push(`${room}: ${error.message}`))
  await page.goto(`${base}/?room=${encodeURIComponent(room)}`)
  await page.locator('#status').getByText('connected', { exact: true }).waitFor()
  return page
}

/** Types `text` into the page's input and submits the form with the Send button. */
async function say (page: Page, text: string): Promise<void> {
  await page.locator('#text').fill(text)
  await page.locator('#send').click()
}

/** Waits until the page's message list shows `text`, then returns the whole list. */
async function messagesAfter (page: Page, text: string): Promise<string[]> {
  await page.locator('#log li').getByText(text, { exact: true }).waitFor()
  return page.locator('#log li').allTextContents()
}

test('chat example: a message reaches every page of its room and no other room', { skip: skipWithoutChromium }, async (t) => {
  const app = await buildChatApp()
  const port = await listen(app)
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${port}`

  const browser = await launchChromium()
  // Registered after app.close(), so it runs first: the pages' sockets go before the server.
  t.teardown(() => browser.close())
  const errors: string[] = []

  const first = await openRoom(browser, base, 't1', errors)
  const second = await openRoom(browser, base, 't1', errors)
  const other = await openRoom(browser, base, 't2', errors)
  t.equal(await first.locator('#room').textContent(), 't1', 'the page shows its room')
  t.equal(await other.locator('#room').textContent(), 't2')

  await say(first, 'hello from page 1, ünïcödé ✓')
  t.same(await messagesAfter(second, 'hello from page 1, ünïcödé ✓'), ['hello from page 1, ünïcödé ✓'],
    'the other page of room t1 receives the message')
  t.same(await messagesAfter(first, 'hello from page 1, ünïcödé ✓'), ['hello from page 1, ünïcödé ✓'],
    'the sender is in the room too: the broadcast comes back to it')
  t.equal(await first.locator('#text').inputValue(), '', 'the input is cleared after sending')

  // The server sends a room's messages in one loop, before page 1 saw its own, so had
  // t2 been sent t1's message it would be on that socket ahead of t2's own message.
  await say(other, 'only for t2')
  t.same(await messagesAfter(other, 'only for t2'), ['only for t2'], 'room t2 did not receive the message of room t1')

  // Same argument the other way round: page 1's second message follows any t2 message on its socket.
  await say(first, 'second for t1')
  t.same(await messagesAfter(first, 'second for t1'), ['hello from page 1, ünïcödé ✓', 'second for t1'],
    'room t1 did not receive the message of room t2, and keeps its order')
  t.same(await messagesAfter(second, 'second for t1'), ['hello from page 1, ünïcödé ✓', 'second for t1'])

  t.equal(app.websocketClients.size, 3, 'the server holds the three pages\' sockets')
  t.same(errors, [], 'no uncaught error in the pages')
})
