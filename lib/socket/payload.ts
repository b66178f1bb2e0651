import { Buffer } from 'node:buffer'
import { sendDataError } from '../errors.js'

/** What `send()` takes: a string goes as a text message, bytes as a binary one. */
export type WebSocketData = string | Buffer | ArrayBuffer | ArrayBufferView

/** Per-message options of `send()`. */
export interface SendOptions {
  /**
   * With permessage-deflate negotiated: compress this message (true) or not
   * (false), whatever its size. Default: compress when it is at least
   * `threshold` bytes (RFC 7692).
   */
  compress?: boolean
}

/** A message's payload: a string's UTF-8 bytes, or the bytes given, not copied. */
export function toPayload (data: WebSocketData): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : toBuffer(data)
}

function toBuffer (data: Exclude<WebSocketData, string>): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  throw sendDataError()
}
