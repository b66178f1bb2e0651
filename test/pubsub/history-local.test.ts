/**
 * Topics with history in one process (LocalBroker): positions, the
 * per-topic encoder, resuming from a position (replay then live, no gap, no
 * duplicate), all-or-nothing recovery, a gap in the live stream filled from
 * the history, and the options' checks.
 */
import { test } from 'tap'
import Fastify from 'fastify'
import fc from 'fast-check'
import fastifyRfc6455, {
  type BrokerContext, type FastifyRfc6455Options, formatPosition, LocalBroker, parsePosition, type Position, type TopicHistory
} from '../../lib/index.js'
import { delay, start, withTimeout, type TestClient } from '../integration/helpers.js'

/** `<position>|<data>`: what the test topics' encoder makes of a message. */
const encode = (data: string | Buffer, position: Position): string => `${formatPosition(position)}|${data.toString()}`

/** Topics starting with `h:` keep 5 messages for `ttl` ms; the others none. */
function histories (ttl = 60_000): (topic: string) => TopicHistory | null {
  return (topic) => topic.startsWith('h:') ? { size: 5, ttl, encode } : null
}

/**
 * An app whose `/h?topic=&since=` sockets subscribe with `since` (when given)
 * and send `{ welcome: { subscribed, recovered, position } }` right after.
 */
async function historyApp (t: Parameters<typeof start>[0], options: FastifyRfc6455Options = {}) {
  const app = Fastify()
  await app.register(fastifyRfc6455, { history: histories(), ...options })
  app.get<{ Querystring: { topic: string, since?: string } }>('/h', { ws: true }, async (socket, request) => {
    const { topic, since } = request.query
    const resumed = await socket.subscribe(topic, { since })
    socket.send(JSON.stringify({ welcome: { ...resumed, position: resumed.position === null ? null : formatPosition(resumed.position) } }))
  })
  const h = await start(t, app)
  const open = async (topic: string, since?: string) => {
    const client = await h.client(`/h?topic=${topic}${since === undefined ? '' : `&since=${since}`}`)
    const welcome = JSON.parse(await client.nextMessage() as string).welcome as { subscribed: boolean, recovered: boolean, position: string | null }
    return { client, welcome }
  }
  return { app, h, open }
}

/** The next `count` messages of `client`. */
async function next (client: TestClient, count: number): Promise<string[]> {
  const messages: string[] = []
  for (let i = 0; i < count; i++) messages.push(await client.nextMessage() as string)
  return messages
}

test('positions: offsets one apart, one epoch per topic; the string form round-trips', async (t) => {
  const { app } = await historyApp(t)
  const first = await app.websocket.publishStored('h:a', 'one')
  const second = await app.websocket.publishStored('h:a', 'two')
  const other = await app.websocket.publishStored('h:b', 'x')
  t.equal(first.offset, 1)
  t.equal(second.offset, 2)
  t.equal(second.epoch, first.epoch, 'one epoch for the topic')
  t.equal(other.offset, 1, 'each topic counts its own')
  t.match(formatPosition(first), /^1\.[A-Za-z0-9_-]{8}$/)
  t.same(parsePosition(formatPosition(second)), second)
  for (const bad of ['', '1', '.abc', '01.abc', '-1.abc', '1.a b', '1.' + 'a'.repeat(65), '9007199254740992.abc', 42]) {
    t.equal(parsePosition(bad), null, `${String(bad)} is no position`)
  }
  t.throws(() => app.websocket.publishStored('plain', 'x'), { code: 'FST_WS_NO_HISTORY' })
  t.equal(app.websocket.publish('h:a', 'three'), 0, 'publish() on a history topic returns 0: delivery follows the position')
})

test('live messages carry their position through the encoder, framed once per message', async (t) => {
  const { app, open } = await historyApp(t)
  const a = await open('h:live')
  const b = await open('h:live')
  t.same(a.welcome, { subscribed: true, recovered: false, position: b.welcome.position }, 'no since: not recovered, at the current position')
  t.match(a.welcome.position, /^0\./, 'a topic with no message yet is at offset 0')
  const position = await app.websocket.publishStored('h:live', 'hello')
  for (const { client } of [a, b]) t.same(await next(client, 1), [`${formatPosition(position)}|hello`])
  const plain = await open('plain')
  t.same(plain.welcome, { subscribed: true, recovered: false, position: null }, 'a topic without history has no position')
  app.websocket.publish('plain', 'as is')
  t.same(await next(plain.client, 1), ['as is'])
})

test('a resume replays the messages after the position, then the live ones, after the welcome', async (t) => {
  const { app, open } = await historyApp(t)
  const first = await open('h:r')
  const p1 = await app.websocket.publishStored('h:r', 'm1')
  t.same(await next(first.client, 1), [`${formatPosition(p1)}|m1`])
  first.client.ws.close()
  await first.client.waitClose()
  const missed = []
  for (const text of ['m2', 'm3', 'm4']) missed.push(`${formatPosition(await app.websocket.publishStored('h:r', text))}|${text}`)

  const again = await open('h:r', formatPosition(p1))
  t.equal(again.welcome.recovered, true)
  t.equal(again.welcome.position, missed[2].split('|')[0], 'the position is the last replayed one')
  const live = await app.websocket.publishStored('h:r', 'm5')
  t.same(await next(again.client, 4), [...missed, `${formatPosition(live)}|m5`], 'the missed ones once, in order, then the live one')

  const current = await open('h:r', formatPosition(live))
  t.same(current.welcome, { subscribed: true, recovered: true, position: formatPosition(live) }, 'nothing missed: recovered, nothing to replay')
  const after = await app.websocket.publishStored('h:r', 'm6')
  t.same(await next(current.client, 1), [`${formatPosition(after)}|m6`])
})

test('recovery is all or nothing: another epoch, trimmed, expired, past maxRecovery or no position replays nothing', async (t) => {
  const { app, open } = await historyApp(t, { history: histories(300), maxRecovery: 3 })
  const p1 = await app.websocket.publishStored('h:n', 'm1')
  for (let i = 2; i <= 7; i++) await app.websocket.publishStored('h:n', `m${i}`)
  let top = 7
  const cases: Array<[string, () => string]> = [
    ['another epoch', () => `1.${p1.epoch === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA'}`],
    ['trimmed by size (5 kept)', () => formatPosition(p1)],
    ['more than maxRecovery (3) back, though kept', () => formatPosition({ offset: top - 4, epoch: p1.epoch })],
    ['ahead of the topic', () => formatPosition({ offset: 99, epoch: p1.epoch })],
    ['not a position', () => 'garbage']
  ]
  for (const [label, since] of cases) {
    const { client, welcome } = await open('h:n', since())
    t.same(welcome, { subscribed: true, recovered: false, position: `${top}.${p1.epoch}` }, label)
    const live = await app.websocket.publishStored('h:n', 'live')
    top = live.offset
    t.same(await next(client, 1), [`${formatPosition(live)}|live`], `${label}: nothing replayed, the live message next`)
    client.ws.close()
  }
  const kept = await open('h:n', `${(await app.websocket.publishStored('h:n', 'x')).offset - 1}.${p1.epoch}`)
  t.equal(kept.welcome.recovered, true, 'one back is recovered')
  t.match(await next(kept.client, 1), [/\|x$/])
  kept.client.ws.close()
  const last = await app.websocket.publishStored('h:n', 'y')
  await delay(400)
  const expired = await open('h:n', `${last.offset - 1}.${last.epoch}`)
  t.same(expired.welcome, { subscribed: true, recovered: false, position: formatPosition(last) }, 'expired by ttl: not recovered')
})

test('publishes racing a resume: the subscriber sees exactly the published sequence (property)', async (t) => {
  const { app, open } = await historyApp(t, { history: () => ({ size: 10_000, ttl: 60_000, encode }) })
  let round = 0
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 20 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 30 }),
    async (before, pauses) => {
      const topic = `race${round++}`
      const published: string[] = []
      const publish = async (text: string) => { published.push(`${formatPosition(await app.websocket.publishStored(topic, text))}|${text}`) }
      const first = await app.websocket.publishStored(topic, 'm0')
      published.push(`${formatPosition(first)}|m0`)
      for (let i = 0; i < before; i++) await publish(`b${i}`)
      // Publishes go on, paced by the drawn pauses (0: none, n: n turns of the event loop), while the resume runs.
      const racing = (async () => {
        for (const [i, pause] of pauses.entries()) {
          for (let n = 0; n < pause; n++) await new Promise((resolve) => setImmediate(resolve))
          await publish(`r${i}`)
        }
      })()
      const resumed = open(topic, formatPosition(first))
      const [{ client, welcome }] = await Promise.all([resumed, racing])
      if (!welcome.recovered) return false
      const expected = published.slice(1)
      const got = await next(client, expected.length)
      client.ws.close()
      return JSON.stringify(got) === JSON.stringify(expected)
    }), { numRuns: 40 })
  t.pass('every run saw the published sequence')
})

/** A LocalBroker that loses the delivery of chosen offsets, as pub/sub loses a message in a blip. */
class LossyBroker extends LocalBroker {
  readonly lose = new Set<number>()
  override start (context: BrokerContext): void {
    super.start({
      log: context.log,
      resubscribed: (topic) => context.resubscribed(topic),
      control: (request) => context.control(request),
      deliver: (message) => {
        if (message.position !== undefined && this.lose.delete(message.position.offset)) return
        context.deliver(message)
      }
    })
  }
}

test('a gap in the live stream is filled from the history before what follows', async (t) => {
  const broker = new LossyBroker()
  const { app, open } = await historyApp(t, { broker })
  const { client } = await open('h:gap')
  broker.lose.add(2).add(3)
  const sent = []
  for (const text of ['a', 'b', 'c', 'd']) sent.push(`${formatPosition(await app.websocket.publishStored('h:gap', text))}|${text}`)
  t.same(await next(client, 4), sent, 'b and c, lost live, came from the history, in order')
})

/** A LocalBroker whose live deliveries can be held back, as pub/sub can lag behind a history read on another connection. */
class LaggingBroker extends LocalBroker {
  private held: Array<() => void> | null = null
  override start (context: BrokerContext): void {
    super.start({
      log: context.log,
      resubscribed: (topic) => context.resubscribed(topic),
      control: (request) => context.control(request),
      deliver: (message) => this.held === null ? context.deliver(message) : this.held.push(() => context.deliver(message))
    })
  }

  hold (): void {
    this.held = []
  }

  release (): void {
    const held = this.held ?? []
    this.held = null
    for (const deliver of held) deliver()
  }
}

test('a resume whose history read is ahead of the live stream: the live copies of the replayed messages are not sent again', async (t) => {
  const broker = new LaggingBroker()
  const { app, open } = await historyApp(t, { broker })
  const first = await open('h:lag')
  broker.hold()
  const sent = []
  for (const text of ['a', 'b']) sent.push(`${formatPosition(await app.websocket.publishStored('h:lag', text))}|${text}`)
  const resumed = await open('h:lag', first.welcome.position!)
  t.same(resumed.welcome, { subscribed: true, recovered: true, position: sent[1].split('|')[0] })
  broker.release()
  sent.push(`${formatPosition(await app.websocket.publishStored('h:lag', 'c'))}|c`)
  t.same(await next(resumed.client, 3), sent, 'a and b from the replay, once, then c live')
  t.same(await next(first.client, 3), sent, 'the subscriber that was there gets them live')
})

test('a gap the history no longer holds closes the topic\'s sockets with 1012', async (t) => {
  const broker = new LossyBroker()
  const { app, open } = await historyApp(t, { broker })
  const { client } = await open('h:lost')
  const other = await open('h:other')
  const p1 = await app.websocket.publishStored('h:lost', 'kept')
  t.same(await next(client, 1), [`${formatPosition(p1)}|kept`])
  // 6 messages lost while the history keeps 5: the first of them is gone.
  for (let offset = 2; offset <= 7; offset++) broker.lose.add(offset)
  for (let i = 2; i <= 8; i++) await app.websocket.publishStored('h:lost', `m${i}`)
  const closed = await client.waitClose()
  t.equal(closed.code, 1012)
  t.equal(closed.reason, 'topic history gap: resume from your last position')
  const still = await app.websocket.publishStored('h:other', 'fine')
  t.same(await next(other.client, 1), [`${formatPosition(still)}|fine`], 'sockets of other topics carry on')
})

test('options: history and maxRecovery are checked at register, settings at use', async (t) => {
  const register = async (options: object) => { await Fastify().register(fastifyRfc6455, options).ready() }
  await t.rejects(register({ history: { size: 1 } }), { code: 'FST_WS_INVALID_OPTION', message: /option history is .*it must be a function/ })
  await t.rejects(register({ history: () => null, maxRecovery: 0 }), { code: 'FST_WS_INVALID_OPTION', message: /maxRecovery/ })
  const noHistory = { start () {}, subscribe () {}, unsubscribe () {}, publish () {}, close () {} }
  await t.rejects(register({ history: () => null, broker: noHistory }), { code: 'FST_WS_INVALID_OPTION', message: /broker that keeps history/ })

  const app = Fastify()
  const settings: Record<string, unknown> = {
    'bad:size': { size: 0, ttl: 1000 },
    'bad:ttl': { size: 1, ttl: 1.5 },
    'bad:encode': { size: 1, ttl: 1000, encode: 'no' },
    'bad:type': 'yes'
  }
  await app.register(fastifyRfc6455, { history: (topic) => (settings[topic] ?? null) as TopicHistory | null })
  t.teardown(() => app.close())
  for (const topic of Object.keys(settings)) {
    t.throws(() => app.websocket.publish(topic, 'x'), { code: 'FST_WS_INVALID_OPTION', message: new RegExp(`history\\('${topic}'\\)`) })
  }
  await withTimeout((async () => { await app.ready() })(), 'ready')
})
