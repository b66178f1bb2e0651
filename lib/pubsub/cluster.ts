/**
 * Cluster-wide requests (docs/presence-and-control.md): a topic's subscriber
 * count on every instance, and disconnecting or unsubscribing the sockets
 * that match, everywhere. The broker carries them (BrokerCluster); each
 * instance runs them on its own sockets (run()).
 */
import { Buffer } from 'node:buffer'
import { closeCodeError, closeReasonError, FastifyWebSocketError } from '../errors.js'
import { isValidWireCode, MAX_CLOSE_REASON } from '../protocol/close.js'
import { CloseCode } from '../protocol/constants.js'
import type { WebSocket } from '../socket/websocket.js'
import type { PresenceMember } from '../socket/presence.js'
import type { BrokerCluster, ClusterReply, ClusterRequest, SocketMatch } from './broker.js'
import type { PresenceTable } from './presence.js'
import type { TopicTable } from './topics.js'

/** `app.websocket.cluster` (and RedisEmitter): requests every instance of the app runs. */
export interface WebSocketCluster {
  /** The subscribers of `topic` on every instance (`sockets`), and how many instances answered. */
  subscriberCount (topic: string): Promise<ClusterReply>
  /**
   * Closes, on every instance, the sockets that match (SocketMatch) with
   * `code` (default 1000) and `reason` (default none): how many sockets
   * and instances. Throws FST_WS_INVALID_CLOSE_CODE or
   * FST_WS_INVALID_CLOSE_REASON as `socket.close()` does.
   */
  disconnect (match: SocketMatch, code?: number, reason?: string): Promise<ClusterReply>
  /** Unsubscribes, on every instance, the sockets that match from `topic`: how many sockets and instances. */
  unsubscribe (match: SocketMatch, topic: string): Promise<ClusterReply>
  /**
   * The members present in `topic` on every instance (the `presence`
   * option). Rejects with FST_WS_NO_PRESENCE without it,
   * FST_WS_PRESENCE_UNAVAILABLE when the store cannot be read.
   */
  presence (topic: string): Promise<PresenceMember[]>
}

/** A `disconnect` request, its code and reason checked as socket.close() checks them. */
export function disconnectRequest (match: SocketMatch, code: number = CloseCode.NormalClosure, reason = ''): ClusterRequest {
  if (!Number.isInteger(code) || !isValidWireCode(code)) throw closeCodeError(code)
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_CLOSE_REASON) throw closeReasonError('a close reason is a string of at most 123 bytes of UTF-8')
  return { action: 'disconnect', match: checkMatch(match), code, reason }
}

/** A SocketMatch with only its known fields, each a string; throws FST_WS_INVALID_MATCH otherwise. */
export function checkMatch (match: unknown): SocketMatch {
  if (typeof match !== 'object' || match === null) throw matchError()
  const { member, topic } = match as Record<string, unknown>
  if ((member !== undefined && typeof member !== 'string') || (topic !== undefined && typeof topic !== 'string')) throw matchError()
  const checked: SocketMatch = {}
  if (member !== undefined) checked.member = member as string
  if (topic !== undefined) checked.topic = topic as string
  return checked
}

function matchError (): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_MATCH', 'a socket match is an object { member?: string, topic?: string }')
}

/**
 * The requests of WebSocketCluster, sent through a broker's cluster side
 * (`app.websocket.cluster` and RedisEmitter); `members` lists a topic's
 * presence.
 */
export class ClusterRequests implements WebSocketCluster {
  private readonly cluster: BrokerCluster
  private readonly members: (topic: string) => Promise<PresenceMember[]>

  constructor (cluster: BrokerCluster, members: (topic: string) => Promise<PresenceMember[]>) {
    this.cluster = cluster
    this.members = members
  }

  subscriberCount (topic: string): Promise<ClusterReply> {
    return this.cluster.request({ action: 'count', topic })
  }

  async disconnect (match: SocketMatch, code?: number, reason?: string): Promise<ClusterReply> {
    return await this.cluster.request(disconnectRequest(match, code, reason))
  }

  async unsubscribe (match: SocketMatch, topic: string): Promise<ClusterReply> {
    return await this.cluster.request({ action: 'unsubscribe', match: checkMatch(match), topic })
  }

  async presence (topic: string): Promise<PresenceMember[]> {
    return await this.members(topic)
  }
}

/** This instance's side of cluster requests: runs them on its own sockets (BrokerContext.control). */
export class ClusterControl {
  private readonly topics: TopicTable
  private readonly presenceTable: PresenceTable | null
  private readonly sockets: ReadonlySet<WebSocket>

  constructor (topics: TopicTable, presence: PresenceTable | null, sockets: ReadonlySet<WebSocket>) {
    this.topics = topics
    this.presenceTable = presence
    this.sockets = sockets
  }

  /** Runs `request` on this instance's sockets (BrokerContext.control): how many it counted or acted on. */
  run (request: ClusterRequest): number {
    if (request.action === 'count') return this.topics.subscriberCount(request.topic)
    let acted = 0
    for (const socket of [...this.matching(request.match)]) {
      if (request.action === 'disconnect') {
        socket.close(request.code, request.reason)
        acted++
      } else if (socket.unsubscribe(request.topic)) {
        acted++
      }
    }
    return acted
  }

  /** The sockets here that match. */
  private * matching (match: SocketMatch): Iterable<WebSocket> {
    if (match.member !== undefined) {
      if (this.presenceTable !== null) yield * this.presenceTable.socketsOf(match.member, match.topic)
    } else if (match.topic !== undefined) {
      yield * this.topics.subscribersOf(match.topic)
    } else {
      yield * this.sockets
    }
  }
}
