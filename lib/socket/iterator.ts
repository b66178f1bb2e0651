import type { WebSocketMessage } from './messages.js'

/** Options of `socket.messages()`. */
export interface MessagesOptions {
  /**
   * Whether leaving the loop early (`break`, `return`, a throw) closes the
   * connection: with 1000, or 1011 when the throw rejects the route's handler.
   * Default true. With false, the messages that follow go to the `message`
   * listeners (queued, reading paused, until there is one) or to a new iterator.
   */
  closeOnReturn?: boolean
}

/** What the iterator needs of its socket (lib/websocket.ts). */
export interface IteratedSocket {
  /** Delivers queued messages to the waiting iterator; ends it once the connection is closed and nothing is left. */
  flushQueue (): void
  /** The iterator is done: stop giving it messages, and close the connection when `close`. */
  releaseIterator (iterator: MessageIterator<unknown>, close: boolean): void
}

const DONE: IteratorReturnResult<undefined> = { value: undefined, done: true }

/**
 * The async iterator of a socket's messages (`for await (const message of
 * socket)`). It holds no messages: the socket queues them, a few at most
 * (what one read brought), with reading from the peer paused, until `next()`
 * is called; so a slow loop body slows the peer down instead of filling memory.
 */
export class MessageIterator<Message> implements AsyncIterableIterator<WebSocketMessage<Message>> {
  private readonly socket: IteratedSocket
  private readonly closeOnReturn: boolean
  /** Resolvers of the calls to next() waiting for a message, oldest first. */
  private readonly waiters: Array<(result: IteratorResult<WebSocketMessage<Message>, undefined>) => void> = []
  private finished = false

  constructor (socket: IteratedSocket, closeOnReturn: boolean) {
    this.socket = socket
    this.closeOnReturn = closeOnReturn
  }

  /** @internal Whether a call to next() waits for a message. */
  get waiting (): boolean {
    return this.waiters.length > 0
  }

  /** @internal Gives a message to the oldest waiting next(). */
  push (message: WebSocketMessage<Message>): void {
    const resolve = this.waiters.shift()
    if (resolve !== undefined) resolve({ value: message, done: false })
  }

  /** @internal The connection is closed and every message was delivered: the loop ends. */
  end (): void {
    this.finished = true
    for (const resolve of this.waiters.splice(0)) resolve(DONE)
  }

  next (): Promise<IteratorResult<WebSocketMessage<Message>, undefined>> {
    if (this.finished) return Promise.resolve(DONE)
    const result = new Promise<IteratorResult<WebSocketMessage<Message>, undefined>>((resolve) => this.waiters.push(resolve))
    this.socket.flushQueue()
    return result
  }

  /** Called by `for await` when the loop is left early: ends the iteration and, unless `closeOnReturn` is false, the connection. */
  return (): Promise<IteratorReturnResult<undefined>> {
    if (!this.finished) {
      this.end()
      this.socket.releaseIterator(this as MessageIterator<unknown>, this.closeOnReturn)
    }
    return Promise.resolve(DONE)
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}
