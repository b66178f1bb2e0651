import { Opcode } from './protocol/constants.js'
import { encodeHeader } from './protocol/frame.js'
import { ReadyState } from './protocol/session.js'
import { toPayload, type WebSocket, type WebSocketData } from './websocket.js'

/**
 * Sends one message to many sockets, framed once: the payload is encoded
 * (a string's UTF-8) and its frame header built a single time, and the same
 * bytes are queued on every OPEN socket. A socket with permessage-deflate
 * compresses the message itself when it is over that socket's threshold,
 * since each compressor's context is its own (RFC 7692 §7.2.1).
 * Returns how many sockets took the message; sockets that are not OPEN are skipped.
 */
export function broadcast (sockets: Iterable<WebSocket>, data: WebSocketData): number {
  const opcode = typeof data === 'string' ? Opcode.Text : Opcode.Binary
  const payload = toPayload(data)
  const header = encodeHeader(opcode, payload.length)
  let sent = 0
  for (const socket of sockets) {
    if (socket.readyState !== ReadyState.OPEN) continue
    socket.sendPayload(opcode, payload, undefined, header)
    sent++
  }
  return sent
}
