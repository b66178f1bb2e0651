import { Opcode } from '../protocol/constants.js'
import { PreparedMessage } from '../protocol/permessage-deflate.js'
import { toPayload, type SendOptions, type WebSocketData } from '../socket/payload.js'
import type { WebSocket } from '../socket/websocket.js'

/**
 * Sends one message to many sockets, framed once: the payload is encoded
 * (a string's UTF-8) and its frame header built a single time, and the same
 * bytes are queued on every OPEN socket. Sockets with permessage-deflate
 * and server_no_context_takeover share one compression per compressor
 * settings (see PreparedMessage); a socket with context takeover compresses
 * the message itself, since its compressor's context is its own (RFC 7692 §7.2.1).
 * Returns how many sockets took the message; sockets that are not OPEN are skipped.
 * For named groups that span instances, see topics (`socket.subscribe()`, `app.websocket.publish()`).
 */
export function broadcast (sockets: Iterable<WebSocket>, data: WebSocketData, options?: SendOptions): number {
  return broadcastPayload(sockets, typeof data === 'string' ? Opcode.Text : Opcode.Binary, toPayload(data), options?.compress)
}

/**
 * The one fan-out path of `broadcast()` and topic publishing: frames
 * `payload` once and queues it on every socket of `sockets` but `except`.
 * A slow socket never blocks nor throws here: past its `maxBackpressure` it
 * fails with 1008 on its own. Returns how many sockets took the message.
 */
export function broadcastPayload (
  sockets: Iterable<WebSocket>,
  opcode: number,
  payload: Buffer,
  compress: boolean | undefined,
  except?: WebSocket
): number {
  const prepared = new PreparedMessage(opcode, payload)
  let sent = 0
  for (const socket of sockets) {
    if (socket !== except && socket.deliver(opcode, payload, compress, prepared)) sent++
  }
  return sent
}
