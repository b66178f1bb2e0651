/**
 * socket.closeAt(time, code?, reason?): a socket closed at a time, by one
 * timer per server. The checks compare deadlines with each other (a socket
 * whose deadline comes later serves as the clock) or with Date.now() as a
 * lower bound, so that a slow machine can delay a close but not fail a check.
 */
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455, { WebSocket } from '../../lib/index.js'
import { type Harness, start, type Teardown, type TestClient, withTimeout } from './helpers.js'

/** An app whose `/ws` route echoes text and keeps its server sockets, in the order they opened. */
async function expiryApp (t: Teardown): Promise<{ app: FastifyInstance, h: Harness, sockets: WebSocket[] }> {
  const app = Fastify()
  await app.register(fastifyRfc6455, { heartbeatInterval: 0 })
  const sockets: WebSocket[] = []
  app.get('/ws', { ws: true }, (socket) => {
    sockets.push(socket)
    socket.on('message', (data) => socket.send(data.toString()))
  })
  return { app, h: await start(t, app), sockets }
}

/** Opens a client and returns it with its server socket. */
async function connect (h: Harness, sockets: WebSocket[]): Promise<[TestClient, WebSocket]> {
  const client = await h.client('/ws')
  client.send('hello')
  await client.nextMessage()
  return [client, sockets[sockets.length - 1]]
}

/**
 * The deadlines the server holds: the registry's queue (lib/registry.ts
 * `expiries`, @internal), reached through the socket's owner. Nothing
 * public exposes it.
 */
function pendingDeadlines (socket: WebSocket): number {
  return (socket as unknown as { owner: { expiries: { size: number } } }).owner.expiries.size
}

/** What a call threw: its `code`, or 'no error'. */
function thrown (call: () => void): unknown {
  try {
    call()
    return 'no error'
  } catch (error) {
    return (error as { code?: unknown }).code
  }
}

test('closeAt in 300 ms closes with the code and reason given, not before', async (t) => {
  const { h, sockets } = await expiryApp(t)
  const [client, socket] = await connect(h, sockets)
  const at = Date.now() + 300
  socket.closeAt(at, 4001, 'token expired')
  t.same(await client.waitClose(), { code: 4001, reason: 'token expired', wasClean: true })
  // Node's timers never fire early; Date.now() may round a millisecond either way.
  t.ok(Date.now() >= at - 1, `closed ${Date.now() - at} ms after the time`)
})

test("a Date, and the defaults: 1008 'expired'", async (t) => {
  const { h, sockets } = await expiryApp(t)
  const [client, socket] = await connect(h, sockets)
  socket.closeAt(new Date(Date.now() + 100))
  t.same(await client.waitClose(), { code: 1008, reason: 'expired', wasClean: true })
})

test('a later call replaces the time, code and reason; null cancels', async (t) => {
  const { h, sockets } = await expiryApp(t)

  const [replaced, replacedSocket] = await connect(h, sockets)
  replacedSocket.closeAt(Date.now() + 50, 4001, 'first')
  replacedSocket.closeAt(Date.now() + 300, 4002, 'second')
  t.same(await replaced.waitClose(), { code: 4002, reason: 'second', wasClean: true }, 'the second call only')

  const [cancelled, cancelledSocket] = await connect(h, sockets)
  const [clock, clockSocket] = await connect(h, sockets)
  const now = Date.now()
  cancelledSocket.closeAt(now + 50)
  cancelledSocket.closeAt(null)
  clockSocket.closeAt(now + 150)
  // The same timer would have closed the cancelled socket first.
  t.equal((await clock.waitClose()).code, 1008, 'the later deadline came')
  t.equal(cancelledSocket.readyState, WebSocket.OPEN, 'the cancelled socket is still open')
  cancelled.send('still here')
  t.equal(await cancelled.nextMessage(), 'still here')

  cancelledSocket.closeAt(Date.now() + 50, 4003, 'again')
  t.same(await cancelled.waitClose(), { code: 4003, reason: 'again', wasClean: true }, 'a deadline set again after a cancel')
})

test('a time already past closes the socket at once', async (t) => {
  const { h, sockets } = await expiryApp(t)
  const [client, socket] = await connect(h, sockets)
  const [epoch, epochSocket] = await connect(h, sockets)
  socket.closeAt(Date.now() - 60_000, 4004, 'long gone')
  epochSocket.closeAt(new Date(0))
  t.same(await client.waitClose(), { code: 4004, reason: 'long gone', wasClean: true })
  t.same(await epoch.waitClose(), { code: 1008, reason: 'expired', wasClean: true })
})

test('a bad time, code or reason throws at the call and changes nothing', async (t) => {
  const { h, sockets } = await expiryApp(t)
  const [client, socket] = await connect(h, sockets)
  const later = Date.now() + 60_000
  t.equal(thrown(() => socket.closeAt(later, 4000, 'x'.repeat(123))), 'no error', 'a 123-byte reason is allowed')
  socket.closeAt(Date.now() + 200, 4001, 'kept')
  t.same([
    thrown(() => socket.closeAt(later, 1005)),
    thrown(() => socket.closeAt(later, 1006)),
    thrown(() => socket.closeAt(later, 999)),
    thrown(() => socket.closeAt(later, 5000)),
    thrown(() => socket.closeAt(later, 4000.5)),
    thrown(() => socket.closeAt(later, 4000, 'x'.repeat(124))),
    thrown(() => socket.closeAt(Number.NaN)),
    thrown(() => socket.closeAt(Number.POSITIVE_INFINITY)),
    thrown(() => socket.closeAt(new Date('not a date'))),
    thrown(() => socket.closeAt('2030-01-01' as never)),
    thrown(() => socket.closeAt(undefined as never))
  ], [
    'FST_WS_INVALID_CLOSE_CODE',
    'FST_WS_INVALID_CLOSE_CODE',
    'FST_WS_INVALID_CLOSE_CODE',
    'FST_WS_INVALID_CLOSE_CODE',
    'FST_WS_INVALID_CLOSE_CODE',
    'FST_WS_INVALID_CLOSE_REASON',
    'FST_WS_INVALID_CLOSE_TIME',
    'FST_WS_INVALID_CLOSE_TIME',
    'FST_WS_INVALID_CLOSE_TIME',
    'FST_WS_INVALID_CLOSE_TIME',
    'FST_WS_INVALID_CLOSE_TIME'
  ])
  t.same(await client.waitClose(), { code: 4001, reason: 'kept', wasClean: true }, 'the deadline set before the bad calls holds')
})

test('200 sockets close in the order of their deadlines, on one timer', async (t) => {
  const { h, sockets } = await expiryApp(t)
  const count = 200
  const clients: TestClient[] = []
  for (let i = 0; i < count; i++) clients.push((await connect(h, sockets))[0])

  // A fixed shuffle (a multiplicative step coprime with 200): deadlines are not set in their order.
  const order = Array.from({ length: count }, (_, i) => (i * 77) % count)
  const cancelled = new Set([7, 50, 123])
  const deadlines = new Map<WebSocket, number>()
  const base = Date.now() + 300
  // Node's own setTimeout and clearTimeout, counted: how many timers the calls below leave pending.
  const realSetTimeout = globalThis.setTimeout
  const realClearTimeout = globalThis.clearTimeout
  let timers = 0
  globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    timers++
    return realSetTimeout(callback, ms, ...args)
  }) as unknown as typeof setTimeout
  globalThis.clearTimeout = ((timer: NodeJS.Timeout | undefined) => {
    if (timer !== undefined) timers--
    realClearTimeout(timer)
  }) as unknown as typeof clearTimeout
  try {
    for (const rank of order) {
      const socket = sockets[rank]
      // First a deadline far off or long past, then the real one: each replaced, moving up and down the heap.
      socket.closeAt(rank % 2 === 0 ? base + 3_600_000 : base - 3_600_000)
      socket.closeAt(base + rank * 5)
      deadlines.set(socket, base + rank * 5)
    }
    for (const rank of cancelled) {
      sockets[rank].closeAt(null)
      deadlines.delete(sockets[rank])
    }
  } finally {
    globalThis.setTimeout = realSetTimeout
    globalThis.clearTimeout = realClearTimeout
  }
  t.equal(timers, 1, '400 deadlines set and 3 cancelled leave one timer pending')
  t.equal(pendingDeadlines(sockets[0]), count - cancelled.size)

  // At each close: every socket whose deadline has not come is OPEN, and every one whose deadline is earlier than its own is not.
  const problems: string[] = []
  const closes = sockets.map((socket, rank) => new Promise<void>((resolve) => {
    if (cancelled.has(rank)) return resolve()
    socket.once('close', () => {
      const now = Date.now()
      const own = deadlines.get(socket) as number
      for (const [other, deadline] of deadlines) {
        if (deadline > now && other.readyState !== WebSocket.OPEN) problems.push(`at ${rank}'s close, a socket due in ${deadline - now} ms is closed`)
        if (deadline < own && other.readyState === WebSocket.OPEN) problems.push(`at ${rank}'s close, a socket due ${own - deadline} ms earlier is open`)
      }
      resolve()
    })
  }))
  await withTimeout(Promise.all(closes), 'every deadline', 10_000)
  t.same(problems, [], 'closed in the order of their deadlines, none early')
  for (const [rank, client] of clients.entries()) {
    if (cancelled.has(rank)) continue
    t.equal((await client.waitClose()).code, 1008)
  }
  for (const rank of cancelled) t.equal(sockets[rank].readyState, WebSocket.OPEN, `cancelled socket ${rank} still open after the last deadline`)
  t.equal(pendingDeadlines(sockets[0]), 0, 'no deadline left')
})

test('a socket that closes before its deadline leaves nothing behind', async (t) => {
  const { app, h, sockets } = await expiryApp(t)
  const [first, firstSocket] = await connect(h, sockets)
  const [second, secondSocket] = await connect(h, sockets)
  const inAnHour = Date.now() + 3_600_000
  firstSocket.closeAt(inAnHour)
  secondSocket.closeAt(inAnHour + 1)
  t.equal(pendingDeadlines(firstSocket), 2, 'two deadlines pending')

  // One closed by its client, the other by the server; each sets a deadline again once it is no longer OPEN.
  const closed = [firstSocket, secondSocket].map((socket) => new Promise<void>((resolve) => socket.once('close', () => {
    socket.closeAt(inAnHour)
    resolve()
  })))
  first.ws.close(1000)
  secondSocket.close(1000)
  secondSocket.closeAt(inAnHour)
  await withTimeout(Promise.all(closed), 'both close events')
  await first.waitClose()
  await second.waitClose()
  t.equal(app.websocketClients.size, 0)
  t.equal(pendingDeadlines(firstSocket), 0, 'no deadline left')
})
