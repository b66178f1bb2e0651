/**
 * The bytes a hand-written client sends: the opening handshake of RFC 6455
 * §4.1 with the RFC's sample key, and masked client frames (§5.3) built with
 * encodeFrame. Bytes only: no sockets.
 */
import { encodeFrame, type EncodeOptions } from '../../lib/protocol/frame.js'

/** The sample Sec-WebSocket-Key of RFC 6455 §1.3 and its Sec-WebSocket-Accept. */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
export const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

/** The masking key of the examples in RFC 6455 §5.7, and of every client frame written by hand. */
export const MASKING_KEY: Readonly<Buffer> = Buffer.from([0x37, 0xfa, 0x21, 0x3d])

/** One client frame, header and payload in one buffer, masked with MASKING_KEY unless the options give another key. */
export function clientFrame (opcode: number, payload: Uint8Array | string = Buffer.alloc(0), options: EncodeOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  return Buffer.concat(encodeFrame(opcode, data, { ...options, mask: options.mask ?? MASKING_KEY }))
}

export interface UpgradeRequestOptions {
  method?: string
  /** HTTP version of the request line. Default '1.1'. */
  httpVersion?: string
  /** A Sec-WebSocket-Extensions header offering these extensions, after the default headers. */
  extensions?: string
  /** Default headers to leave out, by name (case-insensitive). */
  omit?: string[]
  /** Default headers to replace, and headers to add, by name. */
  set?: Record<string, string>
  /** Header lines added as they are, after the others (for repeated headers). */
  extraLines?: string[]
}

/**
 * An opening handshake (RFC 6455 §4.1): Host, Upgrade: websocket,
 * Connection: Upgrade, the RFC's sample Sec-WebSocket-Key, version 13.
 */
export function upgradeRequest (path: string, options: UpgradeRequestOptions = {}): string {
  const headers = new Map<string, [string, string]>([
    ['host', ['Host', '127.0.0.1']],
    ['upgrade', ['Upgrade', 'websocket']],
    ['connection', ['Connection', 'Upgrade']],
    ['sec-websocket-key', ['Sec-WebSocket-Key', SAMPLE_KEY]],
    ['sec-websocket-version', ['Sec-WebSocket-Version', '13']]
  ])
  if (options.extensions !== undefined) headers.set('sec-websocket-extensions', ['Sec-WebSocket-Extensions', options.extensions])
  for (const name of options.omit ?? []) headers.delete(name.toLowerCase())
  for (const [name, value] of Object.entries(options.set ?? {})) headers.set(name.toLowerCase(), [name, value])
  const lines = [`${options.method ?? 'GET'} ${path} HTTP/${options.httpVersion ?? '1.1'}`]
  for (const [name, value] of headers.values()) lines.push(`${name}: ${value}`)
  lines.push(...(options.extraLines ?? []))
  return lines.join('\r\n') + '\r\n\r\n'
}
