/**
 * The chat example's server without a browser: what it accepts from a page
 * and relays (undici's WebSocket as the page), and `npm start`'s process
 * closing on SIGINT and SIGTERM with 1001 for the open pages. Needs
 * `npm run build` (the example imports the package by name, from dist/).
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { test, type Test } from 'tap'
import { buildChatApp, MAX_NAME, MAX_ROOM, MAX_TEXT } from '../../examples/chat/server.js'
import { start, TestClient, withTimeout, type Harness } from '../integration/helpers.js'
import { skipWithoutRedis, startRedis, subscriberCounts, waitFor } from '../support/redis.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SERVER = fileURLToPath(new URL('../../examples/chat/server.ts', import.meta.url))

/** Opens a page's socket to `room` and returns it with its welcome. */
async function join (harness: Harness, room: string): Promise<{ client: TestClient, welcome: Record<string, unknown> }> {
  const client = await harness.client(`/chat/${encodeURIComponent(room)}`)
  const welcome = JSON.parse(await client.nextMessage() as string) as Record<string, unknown>
  return { client, welcome }
}

test('chat server: validates what pages send and relays only { name, text } it stamped itself', async (t) => {
  const app = await buildChatApp({ instance: 'test-1' })
  const harness = await start(t, app)
  const { client: reader, welcome } = await join(harness, 'v')
  t.same(Object.keys(welcome), ['type', 'id', 'instance', 'port', 'room', 'recovered', 'pos'], 'the first message is the welcome')
  t.match(welcome, { type: 'welcome', id: /^[0-9a-f-]{36}$/, instance: 'test-1', port: harness.port, room: 'v', recovered: false, pos: /^0\./ })

  const refused: Array<[string, string | Uint8Array, number]> = [
    ['not JSON', 'hello', 1008],
    ['a JSON string', '"hello"', 1008],
    ['an array', '["ann", "hi"]', 1008],
    ['no text', '{"name":"ann"}', 1008],
    ['a text that is not a string', '{"name":"ann","text":42}', 1008],
    ['a blank name', '{"name":"  ","text":"hi"}', 1008],
    ['a blank text', '{"name":"ann","text":" "}', 1008],
    [`a name over ${MAX_NAME} characters`, JSON.stringify({ name: 'n'.repeat(MAX_NAME + 1), text: 'hi' }), 1008],
    [`a text over ${MAX_TEXT} characters`, JSON.stringify({ name: 'ann', text: 't'.repeat(MAX_TEXT + 1) }), 1008],
    ['a binary message', new TextEncoder().encode('{"name":"ann","text":"hi"}'), 1003],
    ['a message over 8 KiB', JSON.stringify({ name: 'ann', text: 't'.repeat(9000) }), 1009]
  ]
  for (const [what, data, code] of refused) {
    const { client } = await join(harness, 'v')
    client.send(data)
    t.equal((await client.waitClose()).code, code, `${what}: closed with ${code}`)
  }

  const { client: writer, welcome: writerWelcome } = await join(harness, 'v')
  const before = Date.now()
  writer.send(JSON.stringify({ name: ' ann ', text: ' hi <b>all</b> ', type: 'welcome', from: welcome.id, at: 0, extra: 'x'.repeat(100) }))
  // The refused messages came first: relayed, they would be ahead of this one.
  const relayed = JSON.parse(await reader.nextMessage() as string) as Record<string, unknown>
  t.same(relayed, { type: 'message', from: writerWelcome.id, name: 'ann', text: 'hi <b>all</b>', at: relayed.at, pos: relayed.pos },
    'the room gets the trimmed name and text only, from the sender\'s id, nothing of the refused messages')
  t.ok(typeof relayed.at === 'number' && relayed.at >= before && relayed.at <= Date.now(), 'stamped with the server\'s time')
  t.same(JSON.parse(await writer.nextMessage() as string), relayed, 'the sender gets it too (publish to the room\'s topic)')
})

test('chat server: a room name of 1 to 64 characters, else 400 before the upgrade', async (t) => {
  const harness = await start(t, await buildChatApp())
  const { welcome } = await join(harness, 'é'.repeat(MAX_ROOM))
  t.equal(welcome.room, 'é'.repeat(MAX_ROOM), `a ${MAX_ROOM}-character room is joined`)
  const raw = await harness.raw()
  const response = await raw.handshake(`/chat/${'r'.repeat(MAX_ROOM + 1)}`)
  t.equal(response.status, 400, `a ${MAX_ROOM + 1}-character one gets 400 over plain HTTP (the route's params schema)`)
})

/**
 * Runs the example as `npm start` does (tsx, PORT=0) with `env` added, and
 * resolves with its port once it listens and a promise of its exit code.
 */
async function startExample (t: Test, env: Record<string, string>): Promise<{ port: number, child: ReturnType<typeof spawn>, exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], {
    cwd: ROOT, env: { ...process.env, PORT: '0', REDIS_URL: undefined, REDIS_CLUSTER: undefined, ...env }, stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  const port = await withTimeout(new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /^chat example: open http:\/\/127\.0\.0\.1:(\d+)\//.exec(line)
      if (match !== null) resolve(Number(match[1]))
    })
    exited.then((code) => reject(new Error(`the example exited (${code}) before listening`)), reject)
  }), 'the example to listen', 20_000)
  return { port, child, exited }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`npm start: ${signal} closes the app, the open pages get 1001 (Going Away) and the process exits 0`, async (t) => {
    const example = await startExample(t, {})
    const page = await TestClient.open(`ws://127.0.0.1:${example.port}/chat/lobby`)
    t.match(JSON.parse(await page.nextMessage() as string), { type: 'welcome', port: example.port }, 'a page joined')
    example.child.kill(signal)
    t.equal((await page.waitClose()).code, 1001, 'the page gets 1001')
    t.equal(await withTimeout(example.exited, 'the process to exit', 10_000), 0, 'the process exits 0 by itself')
  })
}

test('npm start with REDIS_URL: rooms go through Redis, and SIGTERM closes the broker too', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const example = await startExample(t, { REDIS_URL: redis.url })
  const page = await TestClient.open(`ws://127.0.0.1:${example.port}/chat/lobby`)
  await page.nextMessage()
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:room:lobby'])).get('ws:room:lobby') === 1,
    'the instance to subscribe to the room\'s channel')
  t.pass('the room\'s channel has the instance\'s subscription on Redis')
  example.child.kill('SIGTERM')
  t.equal((await page.waitClose()).code, 1001, 'the page gets 1001')
  t.equal(await withTimeout(example.exited, 'the process to exit', 10_000), 0, 'the process exits 0: no Redis connection left open')
})
