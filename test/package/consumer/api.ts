/**
 * A consumer's use of the whole public API: every export of lib/index.ts, the
 * route forms, the socket's members and events, the options, the errors and
 * the decorators. Never run: `npm run typecheck` checks it against lib/, and
 * test/package/consumer.test.ts against the packed package, where the import
 * of lib/index.js becomes 'fastify-rfc6455'.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyRfc6455Default, {
  broadcast, type Broker, type BrokerContext, type BrokerMessage, CloseCode, fastifyRfc6455, type FastifyRfc6455Options,
  FastifyWebSocketError, HandshakeRefusedError, type InjectedWebSocket, LocalBroker, MAX_TOPIC_BYTES, Opcode, type OriginCheck, type ProtocolChooser, ProtocolError,
  type SendOptions, WebSocket, type WebSocketData, type WebSocketEvents, type WebSocketHandler, type WebSocketOptions,
  type WebSocketTopics, type WebSocketApp, type WebSocketAppStats, type WebSocketStats, channelNames,
  type ConnectionOpenMessage, type ConnectionCloseMessage, type ConnectionErrorMessage, type HandshakeRefusedMessage
} from '../../../lib/index.js'
import diagnostics from 'node:diagnostics_channel'

/** True when A and B are the same type (not merely assignable either way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

/** Compiles only when `Check` is `true`. */
function expectEqual<Check extends true> (): Check | void {}

/** Compiles only when `value` is assignable to T. */
function expectType<T> (_value: T): void {}

/** A broker that carries publishes to other instances over some transport. */
class QueueBroker implements Broker {
  private context: BrokerContext | undefined
  readonly sent: BrokerMessage[] = []

  start (context: BrokerContext): void {
    this.context = context
    context.log.info('broker started')
  }

  subscribe (topic: string): void {
    this.context?.log.debug({ topic }, 'subscribed')
  }

  unsubscribe (topic: string): void {
    this.context?.log.debug({ topic }, 'unsubscribed')
  }

  publish (message: BrokerMessage): void {
    expectEqual<Equal<typeof message.payload, Buffer>>()
    expectEqual<Equal<typeof message.compress, boolean | undefined>>()
    this.sent.push({ topic: message.topic, payload: message.payload, isBinary: message.isBinary, compress: message.compress })
  }

  async close (): Promise<void> {
    this.context = undefined
  }

  /** What an incoming message from another instance does. */
  receive (message: BrokerMessage): void {
    this.context?.deliver(message)
  }
}

/** A socket's whole surface. */
function useSocket (socket: WebSocket): void {
  const sendOptions: SendOptions = { compress: false }
  const data: WebSocketData[] = ['text', Buffer.from('bytes'), new ArrayBuffer(2), new Uint8Array(2), new DataView(new ArrayBuffer(1))]
  for (const item of data) expectType<boolean>(socket.send(item, sendOptions))
  expectType<boolean>(socket.send('x', { compress: true }))
  expectType<boolean>(socket.ping())
  expectType<boolean>(socket.ping('are you there'))
  expectType<boolean>(socket.pong(Buffer.alloc(1)))
  expectEqual<Equal<typeof socket.readyState, 0 | 1 | 2 | 3>>()
  if (socket.readyState === WebSocket.OPEN) socket.close(CloseCode.NormalClosure, 'bye')
  socket.close()
  socket.close(4000)
  socket.terminate()
  expectType<number>(socket.bufferedAmount)
  expectType<WebSocketStats>(socket.stats)
  expectType<string>(socket.route)
  expectType<string>(socket.protocol)
  expectType<string>(socket.extensions)
  expectEqual<Equal<[typeof WebSocket.CONNECTING, typeof WebSocket.OPEN, typeof WebSocket.CLOSING, typeof WebSocket.CLOSED], [0, 1, 2, 3]>>()
  // @ts-expect-error protocol is read-only
  socket.protocol = 'chat'

  // Topics.
  expectType<boolean>(socket.subscribe('room:1'))
  expectType<boolean>(socket.unsubscribe('room:1'))
  expectType<boolean>(socket.isSubscribed('room:1'))
  expectType<number>(socket.publish('room:1', 'hello', { compress: false }))
  expectType<number>(socket.publish('room:1', Buffer.from('hello')))
  expectEqual<Equal<typeof socket.topics, ReadonlySet<string>>>()

  // Events.
  socket.on('message', (message, isBinary) => {
    expectEqual<Equal<typeof message, Buffer>>()
    expectEqual<Equal<typeof isBinary, boolean>>()
  })
  socket.once('ping', (payload) => expectEqual<Equal<typeof payload, Buffer>>())
  socket.on('pong', (payload) => expectEqual<Equal<typeof payload, Buffer>>())
  socket.on('drain', () => socket.send('more'))
  const onClose = (code: number, reason: string): void => { expectType<[number, string]>([code, reason]) }
  socket.on('close', onClose)
  socket.off('close', onClose)
  socket.on('error', (error) => {
    expectEqual<Equal<typeof error, ProtocolError>>()
    expectType<string>(error.code)
    expectType<number>(error.closeCode)
  })
  expectEqual<Equal<keyof WebSocketEvents, 'message' | 'invalid' | 'ping' | 'pong' | 'drain' | 'close' | 'error'>>()
  expectEqual<Equal<WebSocketEvents['close'], [code: number, reason: string]>>()
  // @ts-expect-error the message listener takes a Buffer, not a string
  socket.on('message', (message: string) => message)
}

export async function apiChecks (): Promise<void> {
  expectEqual<Equal<typeof fastifyRfc6455Default, typeof fastifyRfc6455>>()
  const app = Fastify()

  const chooser: ProtocolChooser = (offered, request) => {
    expectType<FastifyRequest>(request)
    return offered.find((name) => name === 'chat.v2')
  }
  const origin: OriginCheck = (value, request) => value === undefined || request.headers.host === new URL(value).host
  const routeOptions: WebSocketOptions = {
    maxPayload: 64 * 1024,
    closeTimeout: 1000,
    highWaterMark: 16 * 1024,
    maxBackpressure: 1024 * 1024,
    idleTimeout: 30_000,
    protocols: chooser,
    origin,
    perMessageDeflate: {
      threshold: 256,
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 12,
      clientMaxWindowBits: 12,
      memLevel: 7,
      level: 3
    }
  }
  const broker = new QueueBroker()
  const options: FastifyRfc6455Options = { ...routeOptions, heartbeatInterval: 30_000, broker }
  await app.register(fastifyRfc6455, options)
  await app.register(fastifyRfc6455, { protocols: ['chat'], origin: ['https://example.com'], perMessageDeflate: true, broker: new LocalBroker() })
  // @ts-expect-error heartbeatInterval is a plugin option, not a route option
  expectType<WebSocketOptions>({ heartbeatInterval: 1000 })

  // The decorators.
  expectEqual<Equal<typeof app.websocketClients, ReadonlySet<WebSocket>>>()
  expectEqual<Equal<typeof app.websocket, WebSocketApp>>()
  expectType<WebSocketTopics>(app.websocket)
  const appStats: WebSocketAppStats = app.websocket.stats()
  expectType<number>(appStats.open + appStats.messagesIn + appStats.messagesOut + appStats.bytesIn + appStats.bytesOut)
  expectType<Record<string, number>>(appStats.routes)

  // The diagnostics channels.
  diagnostics.subscribe(channelNames.open, (message) => {
    const { socket, request, route } = message as ConnectionOpenMessage
    expectType<WebSocket>(socket)
    expectType<string>(request.id + route + socket.route)
  })
  diagnostics.subscribe(channelNames.close, (message) => {
    const { code, reason, initiator, duration, stats, requestId } = message as ConnectionCloseMessage
    expectType<WebSocketStats>(stats)
    expectType<'server' | 'client' | null>(initiator)
    expectType<string>(reason + requestId + String(code + duration))
  })
  diagnostics.subscribe(channelNames.error, (message) => {
    const { error, code, closeCode } = message as ConnectionErrorMessage
    expectType<ProtocolError>(error)
    expectType<string>(code + String(closeCode))
  })
  diagnostics.subscribe(channelNames.refused, (message) => {
    const { request, status, reason } = message as HandshakeRefusedMessage
    expectType<string>(String(request.url) + String(status) + reason)
  })
  expectType<number>(app.websocket.publish('news', 'hello'))
  expectType<number>(app.websocket.publish('news', new Uint8Array(3), { compress: true }))
  expectType<number>(app.websocket.subscriberCount('news'))
  expectType<number>(broadcast(app.websocketClients, 'to all'))
  expectType<number>(broadcast([...app.websocketClients], Buffer.from('to all'), { compress: false }))
  expectType<number>(MAX_TOPIC_BYTES)
  const injected = await app.injectWS('/rooms/lobby', { headers: { authorization: 'Bearer t' }, protocols: ['chat'], query: { name: 'ada' } })
  expectEqual<Equal<typeof injected, InjectedWebSocket>>()
  injected.on('message', (data, isBinary) => expectType<[Buffer, boolean]>([data, isBinary]))
  expectType<boolean>(injected.send('hi'))
  injected.close(1000, 'done')
  await app.injectWS('/private').catch((error: unknown) => {
    if (error instanceof HandshakeRefusedError) expectType<[number, string]>([error.statusCode, error.body])
  })

  // The route forms.
  app.get('/one-line', { ws: true }, (socket) => socket.send('hi'))
  app.get('/async', { ws: routeOptions }, async (socket, request) => {
    await request.server.ready()
    useSocket(socket)
  })
  app.get<{ Params: { room: string }, Querystring: { name: string } }>('/rooms/:room', { ws: { maxPayload: 1024 } }, function (socket, request) {
    expectType<FastifyInstance>(this)
    socket.subscribe(request.params.room)
    socket.publish(request.params.room, `${request.query.name} joined`)
  })
  const handler: WebSocketHandler<{ Params: { id: string } }> = (socket, request) => socket.send(request.params.id)
  app.get('/typed/:id', { ws: true }, handler)
  app.route({ method: 'GET', url: '/route', ws: true, handler: (socket) => socket.close() })
  app.route({ method: 'GET', url: '/route-ws-only', ws: { idleTimeout: 1000 }, wsHandler: (socket) => socket.send('only ws') })
  app.route({
    method: 'GET',
    url: '/both',
    ws: true,
    handler: (_request: FastifyRequest, reply: FastifyReply) => reply.send('plain HTTP'),
    wsHandler: (socket) => socket.send('WebSocket')
  })
  app.get('/both-short', { ws: true, wsHandler: (socket) => socket.send('WebSocket') }, async () => 'plain HTTP')

  // The errors.
  try {
    app.get('/bad', { ws: { maxPayload: -1 } }, (socket) => socket.close())
  } catch (error) {
    if (error instanceof FastifyWebSocketError) expectType<string>(error.code)
  }
  const failure = new ProtocolError('WS_ERR_EXAMPLE', CloseCode.PolicyViolation, 'example')
  expectType<Error>(failure)
  expectType<Error>(new FastifyWebSocketError('FST_WS_EXAMPLE', 'example'))

  // The wire constants.
  expectEqual<Equal<typeof CloseCode.NormalClosure, 1000>>()
  expectEqual<Equal<typeof CloseCode.GoingAway, 1001>>()
  expectType<CloseCode>(CloseCode.TryAgainLater)
  // @ts-expect-error 1234 is not a registered close code
  expectType<CloseCode>(1234)
  expectEqual<Equal<Opcode, 0 | 1 | 2 | 8 | 9 | 10>>()
  expectEqual<Equal<typeof Opcode.Text, 1>>()

  broker.receive({ topic: 'news', payload: Buffer.from('from elsewhere'), isBinary: false, compress: undefined })
  await app.close()
}

// Topics with history (docs/recovery.md).
import {
  type BrokerHistory, DEFAULT_MAX_RECOVERY, formatPosition, GAP_CLOSE_CODE, type HistoryOption, type HistoryRead, type HistorySettings,
  parsePosition, type Position, type Subscribed, type SubscribeOptions, type TopicHistory
} from '../../../lib/index.js'

export async function historyChecks (socket: WebSocket): Promise<void> {
  const rooms: TopicHistory = { size: 1000, ttl: 600_000, encode: (data, position) => `${formatPosition(position)}|${data.toString()}` }
  const history: HistoryOption = (topic) => topic.startsWith('room:') ? rooms : null
  const app = Fastify()
  await app.register(fastifyRfc6455, { history, maxRecovery: DEFAULT_MAX_RECOVERY, broker: new LocalBroker() })
  const position: Position = await app.websocket.publishStored('room:a', 'hi')
  expectType<Position | null>(parsePosition(formatPosition(position)))
  const options: SubscribeOptions = { since: formatPosition(position) }
  const resumed: Subscribed = await socket.subscribe('room:a', options)
  expectType<[boolean, boolean, Position | null]>([resumed.subscribed, resumed.recovered, resumed.position])
  expectType<boolean>(socket.subscribe('plain'))
  expectType<1012>(GAP_CLOSE_CODE)
  const store: BrokerHistory | undefined = new LocalBroker().history
  const settings: HistorySettings = rooms
  const read: HistoryRead | Promise<HistoryRead> | undefined = store?.read('room:a', position, 10)
  expectType<unknown>([settings, read])
  await app.close()
}
