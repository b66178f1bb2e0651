/**
 * Chat example: an HTML page and a WebSocket route, /chat/:room, whose
 * sockets subscribe to the topic `room:<name>`; every message is published to
 * that topic, so it reaches every page of the room, the sender's included.
 * Each page is present in its room (docs/presence-and-control.md) under its
 * name: every page sees who is in the room, on every instance.
 *
 * Run with `npm start`. Environment:
 * - `PORT` (default 3000, 0 for any free one) and `HOST` (default 127.0.0.1);
 * - `REDIS_URL=redis://127.0.0.1:6379`: share the rooms with every other
 *   instance started with the same Redis (the Redis broker);
 * - `REDIS_CLUSTER=host:port,host:port`: the same through a Redis Cluster.
 * Without either it runs alone and loads no Redis client.
 * - `CHAT_ADMIN_TOKEN`: the bearer token of `POST /chat/:room/kick` (below);
 *   without it that route does not exist (404).
 * - `HTTP2=1`: serve HTTPS, HTTP/2 and HTTP/1.1 by ALPN: a browser then loads
 *   the page and opens its WebSocket on one HTTP/2 connection (RFC 8441). The
 *   certificate is read from `TLS_CERT` and `TLS_KEY` (PEM files), or made
 *   self-signed for localhost by the openssl CLI (the browser warns once). SIGINT and SIGTERM
 * close the app: open pages get 1001 (Going Away) and reconnect.
 *
 * The wire, JSON text messages. The WebSocket URL takes `?name=<name>`, the
 * name the page shows: trimmed, 1 to MAX_NAME characters (UTF-16 code units,
 * as in the page's messages); missing or blank, the page is `anonymous`; a
 * longer one is refused with 400 before the upgrade. Page to server:
 * `{ name, text }`. Server to page: `{ type: 'welcome', id, instance, port,
 * room, recovered, pos }` once, first; `{ type: 'message', from, name, text,
 * at, pos }` per message (`from`: the sender's connection id, as in its
 * welcome; `at`: ms since the epoch; `pos`: the message's position in the
 * room, a string such as `42.Qm9yaXM`).
 *
 * Presence: a member of a room is a name, on every instance: two pages with
 * one name are one member, which joins with the first and leaves with the
 * last. Right after the welcome, the server sends `{ type: 'presence',
 * members: [{ id, name }] }` once: every member of the room now, the new
 * page's included, one entry each (`id`: the member's id, which is its
 * name). Then `{ type: 'join', id, name }` and `{ type: 'leave', id, name }`
 * as members come and go, each once, in order, none of them already in
 * `members`, among the room's messages (a resume's replay, below, comes
 * after the presence message).
 *
 * Rooms resume (docs/recovery.md): each keeps its last 1,000 messages for 10
 * minutes. The WebSocket URL takes `?since=<pos>`, the last `pos` the page
 * saw: the messages after it then follow the welcome and the presence
 * message, once and in order, before any live one, and the welcome says `recovered: true`. When they
 * cannot all be given (too old, too many, Redis lost them), the welcome
 * says `recovered: false` and nothing is replayed: the page says so and
 * reloads the room. Its `pos` is the room's position now. Without `since`,
 * `recovered` is false. A room name with a control character (NUL, a
 * newline...) or a bidirectional override (U+202A-U+202E, U+2066-U+2069) is
 * refused with 400.
 *
 * `POST /chat/:room/kick` with `Authorization: Bearer <CHAT_ADMIN_TOKEN>`
 * and the JSON body `{ "name": "..." }` closes every page of that name in
 * the room, on every instance, with close code 4001 (KICKED_CODE), and
 * answers `{ instances, sockets }`: how many instances answered and pages
 * were closed. The page then says it was removed and does not reconnect.
 * A wrong or missing token gets 401, a body that is not such an object 400.
 *
 * `/stats` is a page that charts, live, this instance's open chat sockets
 * (and those of every instance) and chat messages per second over the last
 * 5 minutes (uPlot, served from the `uplot` package under /vendor/). Its
 * WebSocket, /stats/feed, subscribes to the topic `stats:<instance>`, to
 * which the server publishes a sample of `app.websocket.stats()` each
 * second. The feed's own sockets and samples are left out of the figures.
 * Server to page: `{ type: 'history', instance, port, samples }` once (the
 * last STATS_HISTORY samples, oldest first), then `{ type: 'sample',
 * ...sample }` each second (see StatsSample).
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyRfc6455, { type Broker, CloseCode, formatPosition, type Position, type PresenceEvent, type TopicHistory, type WebSocket } from 'fastify-rfc6455'
import { certificateFromEnv } from '../tls.js'

const page = await readFile(new URL('./index.html', import.meta.url), 'utf8')
const statsPage = await readFile(new URL('./stats.html', import.meta.url), 'utf8')
const reconnectScript = await readFile(new URL('./reconnect.js', import.meta.url), 'utf8')

/** uPlot's browser build and stylesheet, from the `uplot` package: served as they are, no CDN. */
const require = createRequire(import.meta.url)
const vendor = {
  '/vendor/uPlot.iife.min.js': { type: 'text/javascript; charset=utf-8', body: await readFile(require.resolve('uplot/dist/uPlot.iife.min.js')) },
  '/vendor/uPlot.min.css': { type: 'text/css; charset=utf-8', body: await readFile(require.resolve('uplot/dist/uPlot.min.css')) }
}

const favicon = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">' +
  '<rect width="16" height="16" rx="4" fill="#0969da"/><path d="M4 4.5h8v5.5H7.5L4.5 12.5V10H4z" fill="#fff"/></svg>'

/** Longest name, in UTF-16 code units (as the page's `maxlength` counts). */
export const MAX_NAME = 40
/** Longest text of one message, in UTF-16 code units. */
export const MAX_TEXT = 1000
/** Longest room name, in characters (code points, as JSON Schema's `maxLength` counts them). */
export const MAX_ROOM = 64
/** The name of a page that connects without one (`?name=` missing or blank). */
const ANONYMOUS = 'anonymous'
/** The close code of the pages that `POST /chat/:room/kick` removes from their room: they do not reconnect. */
export const KICKED_CODE = 4001
/** Bytes of one message from a page: the JSON of the longest name and text, escapes included, fits. */
const MAX_MESSAGE_BYTES = 8 * 1024
/** The chat's WebSocket route. */
const CHAT_ROUTE = '/chat/:room'
/** The topic every chat socket subscribes to, on which nothing is published: its subscribers on every instance are the chat's open sockets. */
const ALL_CHATS = 'chat:all'
/** Milliseconds between two stats samples. */
const STATS_INTERVAL_MS = 1000
/** Samples the stats feed keeps and sends a page on connect: 5 minutes of them. */
const STATS_HISTORY = 300
/** Messages a room keeps for pages that reconnect. */
export const ROOM_HISTORY_SIZE = 1000
/** Milliseconds a room keeps a message: 10 minutes. */
export const ROOM_HISTORY_TTL = 10 * 60 * 1000

/**
 * Characters a room name may not hold: C0 and C1 controls (NUL, newlines,
 * DEL...), the line and paragraph separators, and the bidirectional
 * embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
 * would make a name read other than it is.
 */
const FORBIDDEN_IN_ROOM = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u

/**
 * The room's history: every message a room publishes is the JSON of
 * `{ type: 'message', ... }`; each page gets it with its `pos` added, built
 * once per message on each instance.
 */
const roomHistory: TopicHistory = {
  size: ROOM_HISTORY_SIZE,
  ttl: ROOM_HISTORY_TTL,
  encode: (data: string | Buffer, position: Position) => `${data.toString().slice(0, -1)},"pos":"${formatPosition(position)}"}`
}

/**
 * One stats sample of this instance's chat, the stats feed left out.
 * `messagesIn` and `messagesOut` count since the previous sample
 * (STATS_INTERVAL_MS before): messages per second.
 */
export interface StatsSample {
  /** When it was taken, in ms since the epoch. */
  t: number
  /** Open chat sockets. */
  open: number
  /**
   * Open chat sockets on every instance, this one included, as counted
   * after the previous sample (`app.websocket.cluster.subscriberCount()`, at
   * most one count a second): null until a count answered, or when the last
   * one failed.
   */
  clusterOpen: number | null
  /** Messages received from chat pages. */
  messagesIn: number
  /** Messages sent to chat pages: welcomes, presence messages, and each published message, join and leave once per page of its room. */
  messagesOut: number
}

/** What a page says: `{ name, text }`, both trimmed and non-empty. */
export interface Said {
  name: string
  text: string
}

/**
 * The `{ name, text }` of a page's message, trimmed; null unless `data` is
 * the JSON of an object whose `name` (1 to MAX_NAME) and `text` (1 to
 * MAX_TEXT) are strings. Other members are dropped, never relayed.
 */
export function parseSaid (data: string): Said | null {
  let value: unknown
  try {
    value = JSON.parse(data)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const { name, text } = value as Record<string, unknown>
  if (typeof name !== 'string' || typeof text !== 'string') return null
  const said = { name: name.trim(), text: text.trim() }
  if (said.name.length === 0 || said.name.length > MAX_NAME || said.text.length === 0 || said.text.length > MAX_TEXT) return null
  return said
}

/**
 * The name a page connects as, from its `?name=`: trimmed, `anonymous` when
 * missing or blank; null when longer than MAX_NAME (counted as parseSaid
 * counts a message's name).
 */
function connectedName (name: string | undefined): string | null {
  const trimmed = (name ?? '').trim()
  if (trimmed.length > MAX_NAME) return null
  return trimmed === '' ? ANONYMOUS : trimmed
}

/** A member's info, as the chat tracks it: its name. */
interface MemberInfo {
  name: string
}

/** The wire of a join or leave: `{ type, id, name }`, built once per event on each instance. */
function encodePresence (event: PresenceEvent): string {
  return JSON.stringify({ type: event.type, id: event.id, name: (event.info as MemberInfo).name })
}

/**
 * Whether `authorization` (the header) is `Bearer <token>`. The tokens are
 * compared in constant time, as SHA-256 digests: buffers of one length
 * whatever the length of what was sent.
 */
function isBearer (authorization: string | undefined, token: string): boolean {
  const given = /^Bearer +(.+)$/i.exec(authorization ?? '')?.[1] ?? ''
  const digest = (value: string): Buffer => createHash('sha256').update(value).digest()
  return timingSafeEqual(digest(given), digest(token))
}

/**
 * The broker that `REDIS_URL` or `REDIS_CLUSTER` (comma-separated
 * `host:port` of some nodes) asks for, or undefined (this instance alone)
 * without either. The Redis broker, and with it the `redis` package, is
 * imported only then.
 */
export async function brokerFromEnv (env: NodeJS.ProcessEnv = process.env): Promise<Broker | undefined> {
  // An empty value counts as unset, as `REDIS_URL= npm start` means.
  const url = env.REDIS_URL || undefined
  const cluster = env.REDIS_CLUSTER || undefined
  if (url === undefined && cluster === undefined) return undefined
  const { RedisBroker } = await import('fastify-rfc6455/redis')
  if (url !== undefined) return new RedisBroker({ url })
  const rootNodes = cluster!.split(',').map((node) => ({ url: `redis://${node.trim()}` }))
  return new RedisBroker({ cluster: { rootNodes } })
}

/**
 * Builds the chat app. `broker`: see brokerFromEnv (default: this instance
 * alone). `instance`: the name the page shows for this instance (default: a
 * random one). `https`: a certificate and key to serve HTTPS with HTTP/2 and
 * HTTP/1.1 (default: plain HTTP/1.1). `adminToken`: the bearer token of
 * `POST /chat/:room/kick` (`npm start` takes CHAT_ADMIN_TOKEN); without it,
 * or empty, the route is not registered.
 */
export async function buildChatApp (options: { logger?: boolean, broker?: Broker, instance?: string, https?: { cert: Buffer, key: Buffer }, adminToken?: string } = {}): Promise<FastifyInstance> {
  const logger = options.logger ?? false
  // Routes are declared the same way on both kinds of server: one type serves below.
  const app = (options.https !== undefined
    ? Fastify({ logger, requestTimeout: 10_000, http2: true, https: { allowHTTP1: true, ...options.https } })
    // A client that sends no request, or drips it, is dropped within 12 s (README, "Production settings").
    : Fastify({ logger, requestTimeout: 10_000, http: { headersTimeout: 10_000, connectionsCheckingInterval: 2_000 } })
  ) as FastifyInstance
  const instance = options.instance ?? randomUUID().slice(0, 8)
  await app.register(fastifyRfc6455, {
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: true,
    heartbeatInterval: 30_000,
    broker: options.broker,
    history: (topic) => topic.startsWith('room:') ? roomHistory : null,
    presence: { encode: encodePresence }
  })

  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.get('/favicon.svg', (_request, reply) => reply.type('image/svg+xml').header('cache-control', 'max-age=86400').send(favicon))
  app.get('/stats', (_request, reply) => reply.type('text/html; charset=utf-8').send(statsPage))
  app.get('/reconnect.js', (_request, reply) => reply.type('text/javascript; charset=utf-8').send(reconnectScript))
  for (const [path, file] of Object.entries(vendor)) {
    app.get(path, (_request, reply) => reply.type(file.type).header('cache-control', 'max-age=86400').send(file.body))
  }

  // The schema runs before the 101: a room name out of bounds gets 400 over plain HTTP.
  const schema = {
    params: { type: 'object', properties: { room: { type: 'string', minLength: 1, maxLength: MAX_ROOM } } },
    querystring: { type: 'object', properties: { since: { type: 'string', maxLength: 100 }, name: { type: 'string' } } }
  }
  const refuseRoom = async (request: FastifyRequest<{ Params: { room: string } }>, reply: FastifyReply) => {
    if (FORBIDDEN_IN_ROOM.test(request.params.room)) {
      request.log.info({ room: JSON.stringify(request.params.room) }, 'room name refused')
      return reply.code(400).send({
        statusCode: 400,
        error: 'Bad Request',
        message: 'a room name may not contain control characters (NUL, newlines...) nor bidirectional overrides (U+202A-U+202E, U+2066-U+2069)'
      })
    }
  }
  // After the schema, which makes `name` one string: its length is counted as the page's messages' names are.
  const refuseName = async (request: FastifyRequest<{ Querystring: { name?: string } }>, reply: FastifyReply) => {
    if (connectedName(request.query.name) === null) {
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `a name is at most ${MAX_NAME} characters` })
    }
  }
  app.get<{ Params: { room: string }, Querystring: { since?: string, name?: string } }>(CHAT_ROUTE, {
    ws: { perMessageDeflate: { serverNoContextTakeover: true } }, schema, preValidation: refuseRoom, preHandler: refuseName
  }, async (socket, request) => {
    const { room } = request.params
    const topic = `room:${room}`
    const name = connectedName(request.query.name)!
    const id = randomUUID()
    socket.subscribe(ALL_CHATS)
    // The page's messages that arrive meanwhile wait in the socket until the listener below.
    let resumed
    try {
      // The page is a member under its name; it gets the room's messages after `since` and the members, itself included.
      await socket.track(topic, name, { name } satisfies MemberInfo)
      resumed = await socket.subscribe(topic, { since: request.query.since, presence: true })
    } catch (err) {
      request.log.warn({ err }, 'the room is unavailable (its history or presence): the page is asked to come back')
      return socket.close(CloseCode.TryAgainLater, 'room unavailable, try again')
    }
    // Closed meanwhile: nothing more to say.
    if (!resumed.subscribed) return
    // Both sent before the replayed messages, the joins and leaves, which the socket queues right after this.
    socket.send(JSON.stringify({
      type: 'welcome', id, instance, port: request.socket.localPort, room, recovered: resumed.recovered, pos: formatPosition(resumed.position!)
    }))
    socket.send(JSON.stringify({ type: 'presence', members: resumed.members!.map((member) => ({ id: member.id, name: (member.info as MemberInfo).name })) }))
    socket.on('message', (data, isBinary) => {
      if (isBinary) return socket.close(CloseCode.UnsupportedData, 'text messages only')
      const said = parseSaid(data.toString('utf8'))
      if (said === null) return socket.close(CloseCode.PolicyViolation, `expected JSON {"name", "text"} of 1 to ${MAX_NAME} and 1 to ${MAX_TEXT} characters`)
      app.websocket.publish(topic, JSON.stringify({ type: 'message', from: id, name: said.name, text: said.text, at: Date.now() }))
    })
  })

  const adminToken = options.adminToken
  if (adminToken !== undefined && adminToken !== '') {
    const unauthorized = async (request: FastifyRequest, reply: FastifyReply) => {
      if (!isBearer(request.headers.authorization, adminToken)) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ statusCode: 401, error: 'Unauthorized', message: 'Authorization: Bearer <CHAT_ADMIN_TOKEN> required' })
      }
    }
    const kickSchema = {
      params: schema.params,
      body: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: MAX_NAME } } }
    }
    // The token is checked first: a request without it learns nothing of what the route takes.
    app.post<{ Params: { room: string }, Body: { name: string } }>('/chat/:room/kick', { schema: kickSchema, onRequest: unauthorized }, async (request) => {
      const { room } = request.params
      const name = request.body.name.trim()
      const closed = await app.websocket.cluster.disconnect({ member: name, topic: `room:${room}` }, KICKED_CODE, 'kicked')
      request.log.info({ room, name, ...closed }, 'kicked out of the room')
      return closed
    })
  }

  // The stats feed. Its topic names this instance: through a broker, another
  // instance's samples would otherwise reach this instance's pages.
  const statsTopic = `stats:${instance}`
  const feeds = new Set<WebSocket>()
  // Messages of the feed's closed sockets, taken out of the app's totals as those of the open ones.
  const closedFeeds = { messagesIn: 0, messagesOut: 0 }
  /** The chat's open sockets now, and its messages each way since the app started. */
  const chatNow = (): Omit<StatsSample, 't' | 'clusterOpen'> => {
    const stats = app.websocket.stats()
    const now = { open: stats.routes[CHAT_ROUTE] ?? 0, messagesIn: stats.messagesIn - closedFeeds.messagesIn, messagesOut: stats.messagesOut - closedFeeds.messagesOut }
    for (const feed of feeds) {
      now.messagesIn -= feed.stats.messagesIn
      now.messagesOut -= feed.stats.messagesOut
    }
    return now
  }
  // The chat's sockets on every instance, counted after each sample for the next one: one count at a time, at most one a second.
  let clusterOpen: number | null = null
  let counting = false
  let countFailed = false
  const countCluster = () => {
    if (counting) return
    counting = true
    app.websocket.cluster.subscriberCount(ALL_CHATS).then(({ sockets }) => {
      clusterOpen = sockets
      countFailed = false
    }, (err: unknown) => {
      clusterOpen = null
      if (!countFailed) app.log.warn({ err }, 'stats: the chat sockets of every instance could not be counted (logged once until a count succeeds)')
      countFailed = true
    }).finally(() => { counting = false })
  }
  countCluster()
  const history: StatsSample[] = []
  let previous = chatNow()
  const sampler = setInterval(() => {
    const now = chatNow()
    const sample: StatsSample = {
      t: Date.now(),
      open: now.open,
      clusterOpen,
      messagesIn: now.messagesIn - previous.messagesIn,
      messagesOut: now.messagesOut - previous.messagesOut
    }
    previous = now
    history.push(sample)
    if (history.length > STATS_HISTORY) history.shift()
    if (app.websocket.subscriberCount(statsTopic) > 0) app.websocket.publish(statsTopic, JSON.stringify({ type: 'sample', ...sample }))
    countCluster()
  }, STATS_INTERVAL_MS).unref()
  app.addHook('onClose', async () => clearInterval(sampler))
  app.get('/stats/feed', { ws: true }, (socket, request) => {
    feeds.add(socket)
    socket.on('close', () => {
      feeds.delete(socket)
      closedFeeds.messagesIn += socket.stats.messagesIn
      closedFeeds.messagesOut += socket.stats.messagesOut
    })
    socket.subscribe(statsTopic)
    socket.send(JSON.stringify({ type: 'history', instance, port: request.socket.localPort, samples: history }))
  })
  return app
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const https = process.env.HTTP2 === '1' ? certificateFromEnv() : undefined
  const app = await buildChatApp({ logger: true, broker: await brokerFromEnv(), https, adminToken: process.env.CHAT_ADMIN_TOKEN })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Once: a second signal ends the process at once if closing hangs.
    process.once(signal, () => {
      app.log.info({ signal }, 'closing: open pages get 1001 (Going Away)')
      app.close().catch((err: unknown) => {
        app.log.error({ err }, 'close failed')
        process.exitCode = 1
      })
    })
  }
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 3000
  console.log(`chat example: open ${https === undefined ? 'http://127.0.0.1' : 'https://localhost'}:${port}/ in two browser tabs`)
}
