/**
 * The chat example's server without a browser: what it accepts from a page
 * and relays (undici's WebSocket as the page), who is in a room (presence,
 * on every instance of a real redis-server), kicking a name out of a room,
 * and `npm start`'s process closing on SIGINT and SIGTERM with 1001 for the
 * open pages. Needs `npm run build` (the example imports the package by
 * name, from dist/).
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import { buildChatApp, KICKED_CODE, MAX_NAME, MAX_ROOM, MAX_TEXT } from '../../examples/chat/server.js'
import { RedisBroker } from '../../lib/pubsub/redis.js'
import { start, TestClient, withTimeout, type Harness } from '../integration/helpers.js'
import { skipWithoutRedis, startRedis, subscriberCounts, waitFor } from '../support/redis.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SERVER = fileURLToPath(new URL('../../examples/chat/server.ts', import.meta.url))

type Wire = Record<string, unknown>

interface Member {
  id: string
  name: string
}

/** The path of a page's socket to `room` as `name` (none: no `?name=`). */
function chatPath (room: string, name?: string): string {
  return `/chat/${encodeURIComponent(room)}${name === undefined ? '' : `?name=${encodeURIComponent(name)}`}`
}

/** The next message of `client`, parsed. */
async function next (client: TestClient): Promise<Wire> {
  return JSON.parse(await client.nextMessage() as string) as Wire
}

/**
 * Opens a page's socket to `room` as `name` and returns it with its first
 * two messages: the welcome and the presence message (nothing is published
 * to the room meanwhile), its members sorted by id.
 */
async function join (harness: Harness, room: string, name?: string): Promise<{ client: TestClient, welcome: Wire, members: Member[] }> {
  const client = await harness.client(chatPath(room, name))
  const welcome = await next(client)
  const presence = await next(client)
  if (presence.type !== 'presence') throw new Error(`expected the presence message after the welcome, got ${JSON.stringify(presence)}`)
  return { client, welcome, members: sortById(presence.members as Member[]) }
}

function sortById (members: Member[]): Member[] {
  return [...members].sort((a, b) => a.id.localeCompare(b.id))
}

/** `count` chat instances, `adminToken` given, on one redis-server, each with its harness. */
async function instances (t: Test, count: number, adminToken?: string): Promise<{ apps: FastifyInstance[], harnesses: Harness[] }> {
  const redis = await startRedis(t)
  const apps: FastifyInstance[] = []
  const harnesses: Harness[] = []
  for (let i = 0; i < count; i++) {
    apps.push(await buildChatApp({ instance: `i${i}`, adminToken, broker: new RedisBroker({ url: redis.url, closeTimeout: 200 }) }))
    harnesses.push(await start(t, apps[i]))
  }
  return { apps, harnesses }
}

test('chat server: validates what pages send and relays only { name, text } it stamped itself', async (t) => {
  const app = await buildChatApp({ instance: 'test-1' })
  const harness = await start(t, app)
  const { client: reader, welcome, members } = await join(harness, 'v')
  t.same(Object.keys(welcome), ['type', 'id', 'instance', 'port', 'room', 'recovered', 'pos'], 'the first message is the welcome')
  t.same(members, [{ id: 'anonymous', name: 'anonymous' }], 'then the members: a page without ?name= is anonymous')
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

test('chat server: ?name= is trimmed, anonymous when missing or blank, and over MAX_NAME characters gets 400 before the upgrade', async (t) => {
  const harness = await start(t, await buildChatApp())
  const first = await join(harness, 'n', '  ')
  t.same(first.members, [{ id: 'anonymous', name: 'anonymous' }], 'a blank name is anonymous')
  const ann = await join(harness, 'n', ' ann ')
  t.same(ann.members, [{ id: 'ann', name: 'ann' }, { id: 'anonymous', name: 'anonymous' }], 'a name is trimmed')
  t.same(await next(first.client), { type: 'join', id: 'ann', name: 'ann' })
  const longest = await join(harness, 'n', 'n'.repeat(MAX_NAME))
  t.same(longest.members.map((member) => member.name), ['ann', 'anonymous', 'n'.repeat(MAX_NAME)], `a name of ${MAX_NAME} characters is taken`)
  for (const [what, query] of [
    [`${MAX_NAME + 1} characters`, `name=${'n'.repeat(MAX_NAME + 1)}`],
    [`${MAX_NAME / 2 + 1} emoji (${MAX_NAME + 2} UTF-16 code units, as the page counts)`, `name=${encodeURIComponent('😀'.repeat(MAX_NAME / 2 + 1))}`],
    ['two names', 'name=a&name=b']
  ]) {
    const raw = await harness.raw()
    t.equal((await raw.handshake(`/chat/n?${query}`)).status, 400, `${what}: 400 over plain HTTP`)
  }
  t.same(await next(first.client), { type: 'join', id: 'n'.repeat(MAX_NAME), name: 'n'.repeat(MAX_NAME) }, 'the refused pages never joined')
})

test('chat server on two instances: the members after the welcome, then each join and leave once per page; a name in two tabs is one member',
  { skip: skipWithoutRedis }, async (t) => {
    const { apps, harnesses: [a, b] } = await instances(t, 2)
    const ann = await join(a, 'p', 'ann')
    t.same(ann.members, [{ id: 'ann', name: 'ann' }], 'a page is in its own list')
    const bob = await join(b, 'p', 'bob')
    t.same(bob.members, [{ id: 'ann', name: 'ann' }, { id: 'bob', name: 'bob' }], 'a page on another instance gets the members of both')
    t.same(await next(ann.client), { type: 'join', id: 'bob', name: 'bob' }, 'and the first page its join')
    const bobTab = await join(a, 'p', 'bob')
    t.same(bobTab.members, bob.members, 'a second tab of bob, on the other instance: one entry per member')
    bob.client.ws.close()
    await bob.client.waitClose()
    // Instance b has sent bob's leave to Redis before carol's join: a leave event would come first.
    await waitFor(() => apps[1].websocket.subscriberCount('room:p') === 0, 'instance b to see bob\'s first tab close')
    const carol = await join(b, 'p', 'carol')
    t.same(carol.members, [{ id: 'ann', name: 'ann' }, { id: 'bob', name: 'bob' }, { id: 'carol', name: 'carol' }], 'bob is still in the room')
    for (const page of [ann, bobTab]) {
      t.same(await next(page.client), { type: 'join', id: 'carol', name: 'carol' }, 'no join for bob\'s second tab, no leave for his first')
    }
    bobTab.client.ws.close()
    for (const page of [ann, carol]) t.same(await next(page.client), { type: 'leave', id: 'bob', name: 'bob' }, 'bob leaves with his last tab')
    const dave = await join(a, 'p', 'dave')
    t.same(dave.members.map((member) => member.id), ['ann', 'carol', 'dave'])
    for (const page of [ann, carol]) t.same(await next(page.client), { type: 'join', id: 'dave', name: 'dave' }, 'each event once')
  })

test('chat server: a resumed page gets the welcome, the presence message, then the replay, each once', { skip: skipWithoutRedis }, async (t) => {
  const { harnesses: [a, b] } = await instances(t, 2)
  const writer = await join(a, 'q', 'ann')
  const said = []
  for (const text of ['one', 'two', 'three']) {
    writer.client.send(JSON.stringify({ name: 'ann', text }))
    said.push(await next(writer.client))
  }
  const reader = await b.client(`${chatPath('q', 'bob')}&since=${encodeURIComponent(String(said[0].pos))}`)
  t.match(await next(reader), { type: 'welcome', recovered: true, pos: said[2].pos }, 'the welcome first')
  const presence = await next(reader)
  t.equal(presence.type, 'presence', 'right after it, the presence message')
  t.same(sortById(presence.members as Member[]), [{ id: 'ann', name: 'ann' }, { id: 'bob', name: 'bob' }])
  t.same([await next(reader), await next(reader)], said.slice(1), 'then the replay, once, in order')
  t.same(await next(writer.client), { type: 'join', id: 'bob', name: 'bob' })
})

const TOKEN = 'kick-token-0123456789'

/** POST /chat/:room/kick on the server at `base` (http://host:port) with `headers` and `body` (JSON). */
async function kick (base: string, room: string, headers: Record<string, string>, body: unknown): Promise<{ status: number, headers: Headers, body: unknown }> {
  const response = await fetch(`${base}/chat/${encodeURIComponent(room)}/kick`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body)
  })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

test('chat server: POST /chat/:room/kick closes every page of a name in the room, on every instance, with 4001', { skip: skipWithoutRedis }, async (t) => {
  const { harnesses: [a, b, c] } = await instances(t, 3, TOKEN)
  const bobs = [await join(a, 'k', 'bob'), await join(b, 'k', 'bob')]
  const ann = await join(c, 'k', 'ann')
  const bobElsewhere = await join(c, 'other', 'bob')
  const auth = { authorization: `Bearer ${TOKEN}` }

  for (const [what, headers] of [
    ['no Authorization', {}],
    ['a wrong token', { authorization: `Bearer ${TOKEN.slice(0, -1)}x` }],
    ['a shorter token', { authorization: 'Bearer kick' }],
    ['another scheme', { authorization: `Basic ${TOKEN}` }]
  ] as const) {
    const answer = await kick(c.httpUrl(''), 'k', headers, { name: 'bob' })
    t.equal(answer.status, 401, `${what}: 401`)
    t.equal(answer.headers.get('www-authenticate'), 'Bearer')
  }
  t.equal((await kick(c.httpUrl(''), 'k', {}, {})).status, 401, 'a bad body without the token: 401, not 400')
  for (const [what, body] of [['no name', {}], ['an empty name', { name: '' }], ['a name that is not a string', { name: { first: 'bob' } }],
    [`a name over ${MAX_NAME} characters`, { name: 'n'.repeat(MAX_NAME + 1) }]] as const) {
    t.equal((await kick(c.httpUrl(''), 'k', auth, body)).status, 400, `${what}: 400`)
  }
  t.equal((await kick(c.httpUrl(''), 'r'.repeat(MAX_ROOM + 1), auth, { name: 'bob' })).status, 400, 'a room name out of bounds: 400')
  t.equal(bobs[0].client.ws.readyState, 1, 'none of them closed a page')

  const answer = await kick(c.httpUrl(''), 'k', { authorization: `bearer ${TOKEN}` }, { name: ' bob ' })
  t.same(answer, { status: 200, headers: answer.headers, body: { instances: 3, sockets: 2 } }, 'both pages of bob, on the two other instances')
  for (const bob of bobs) t.same(await bob.client.waitClose(), { code: KICKED_CODE, reason: 'kicked', wasClean: true }, 'closed with 4001')
  t.same(await next(ann.client), { type: 'leave', id: 'bob', name: 'bob' }, 'the room sees bob leave')
  const carol = await join(a, 'k', 'carol')
  t.same(carol.members.map((member) => member.id), ['ann', 'carol'])
  t.same(await next(ann.client), { type: 'join', id: 'carol', name: 'carol' }, 'once')
  t.equal(bobElsewhere.client.ws.readyState, 1, 'bob in another room stays')
  t.same((await kick(c.httpUrl(''), 'k', auth, { name: 'bob' })).body, { instances: 3, sockets: 0 }, 'a name not in the room: no page closed')
})

test('chat server: without an admin token (CHAT_ADMIN_TOKEN) there is no kick route', async (t) => {
  for (const adminToken of [undefined, '']) {
    const harness = await start(t, await buildChatApp({ adminToken }))
    const { client } = await join(harness, 'k', 'bob')
    t.equal((await kick(harness.httpUrl(''), 'k', { authorization: 'Bearer ' }, { name: 'bob' })).status, 404, `adminToken ${JSON.stringify(adminToken)}: 404`)
    t.equal(client.ws.readyState, 1)
  }
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

test('npm start with CHAT_ADMIN_TOKEN: the kick route takes that token', async (t) => {
  const example = await startExample(t, { CHAT_ADMIN_TOKEN: TOKEN })
  const page = await TestClient.open(`ws://127.0.0.1:${example.port}${chatPath('lobby', 'zed')}`)
  t.match(await next(page), { type: 'welcome', port: example.port })
  t.same(await next(page), { type: 'presence', members: [{ id: 'zed', name: 'zed' }] }, 'a page joined as zed')
  const base = `http://127.0.0.1:${example.port}`
  t.equal((await kick(base, 'lobby', { authorization: 'Bearer another' }, { name: 'zed' })).status, 401, 'another token: 401')
  t.same((await kick(base, 'lobby', { authorization: `Bearer ${TOKEN}` }, { name: 'zed' })).body, { instances: 1, sockets: 1 }, 'CHAT_ADMIN_TOKEN: the page is kicked')
  t.equal((await page.waitClose()).code, KICKED_CODE, 'with 4001')
})

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
