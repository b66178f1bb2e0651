import { Buffer } from 'node:buffer'
import { hash } from 'node:crypto'
import { GUID } from './constants.js'
import { type ExtensionOffer, parseExtensions } from './extensions.js'

/** The parts of an HTTP request the opening handshake looks at. */
export interface HandshakeRequest {
  method?: string
  httpVersionMajor: number
  httpVersionMinor: number
  /** Header names in lower case, repeated headers joined with ', ' (as Node's IncomingMessage gives them). */
  headers: Record<string, string | string[] | undefined>
  /**
   * The header lines as received, names and values alternating (Node's
   * `rawHeaders`): the only place a repeated `Host` shows, since Node keeps
   * the first in `headers`. Without it, repeated headers go unchecked.
   */
  rawHeaders?: string[]
}

/** What a valid handshake offers, over HTTP/1.1 or HTTP/2. */
export interface HandshakeOffer {
  /** Subprotocols the client offered, in its order of preference (§4.1, §11.3.4); [] when none. */
  protocols: string[]
  /** Extensions the client offered, in its order of preference (§9.1); [] when none. */
  extensions: ExtensionOffer[]
}

/** An accepted HTTP/1.1 handshake: what the 101 response needs. */
export interface HandshakeAccept extends HandshakeOffer {
  /** Sec-WebSocket-Accept: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2). */
  accept: string
}

/** A refused handshake: an HTTP status, headers to send with it and a short plain-text reason. */
export interface HandshakeRefusal {
  status: number
  headers: Record<string, string>
  reason: string
}

/**
 * Checks a client's opening handshake (RFC 6455 §4.2.1) and answers with what
 * a 101 needs or with the refusal to send:
 * - 405 with `Allow: GET` for a method other than GET;
 * - 426 with `Sec-WebSocket-Version: 13` when the version is missing or not 13
 *   (§4.2.2: "the server MUST abort the WebSocket handshake ... and instead send
 *   an appropriate HTTP error code (such as 426 Upgrade Required) and a
 *   |Sec-WebSocket-Version| header field indicating the version(s) the server
 *   is capable of understanding");
 * - 400 for the rest: HTTP older than 1.1, no Host or more than one (RFC 9112
 *   §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
 *   HTTP/1.1 request message that lacks a Host header field and to any request
 *   message that contains more than one Host header field line"), content
 *   (`Content-Length` other than 0, or `Transfer-Encoding`: RFC 9110 §7.8, the
 *   new protocol starts after the whole request, so a body would be read as
 *   frames), an `Upgrade` without the
 *   `websocket` token, a `Connection` without the `Upgrade` token, a
 *   `Sec-WebSocket-Key` that is not the base64 of 16 bytes (a repeated key
 *   counts as not), a malformed `Sec-WebSocket-Protocol` or
 *   `Sec-WebSocket-Extensions`.
 * Every header is read once, in time linear in its length.
 */
export function validateHandshake (request: HandshakeRequest): HandshakeAccept | HandshakeRefusal {
  if (request.method !== 'GET') {
    return { status: 405, headers: { allow: 'GET' }, reason: 'WebSocket handshake must use GET' }
  }
  if (request.httpVersionMajor < 1 || (request.httpVersionMajor === 1 && request.httpVersionMinor < 1)) {
    return badRequest('WebSocket handshake needs HTTP/1.1 or later')
  }
  const headers = request.headers
  if (headerValue(headers.host) === '') return badRequest('missing Host header')
  if (countHeader(request.rawHeaders, 'host') > 1) return badRequest('more than one Host header')
  if (hasContent(headers)) return badRequest('a WebSocket handshake carries no content (Content-Length or Transfer-Encoding)')
  if (!hasToken(headerValue(headers.upgrade), 'websocket')) return badRequest('Upgrade header must include "websocket"')
  if (!hasToken(headerValue(headers.connection), 'upgrade')) return badRequest('Connection header must include "Upgrade"')
  if (headerValue(headers['sec-websocket-version']).trim() !== '13') {
    return {
      status: 426,
      headers: { upgrade: 'websocket', 'sec-websocket-version': '13' },
      reason: 'unsupported Sec-WebSocket-Version; this server speaks 13'
    }
  }
  const key = headerValue(headers['sec-websocket-key']).trim()
  if (!isValidKey(key)) return badRequest('Sec-WebSocket-Key must be the base64 of 16 bytes')
  const protocols = parseTokenList(headerValue(headers['sec-websocket-protocol']))
  if (protocols === null) return badRequest('malformed Sec-WebSocket-Protocol header')
  const extensions = parseExtensions(headerValue(headers['sec-websocket-extensions']))
  if (extensions === null) return badRequest('malformed Sec-WebSocket-Extensions header')
  return { accept: acceptKey(key), protocols, extensions }
}

/**
 * Checks an HTTP/2 extended CONNECT that opens a WebSocket (RFC 8441 §4, §5),
 * from its headers with the pseudo-headers (as Node's `http2` gives them),
 * and answers with the offer or the refusal to send:
 * - 405 when `:protocol` is not `websocket` (a plain CONNECT asks for a
 *   tunnel, which a WebSocket route does not give);
 * - 400 when `:scheme`, `:path` or `:authority` is missing (§4: "the
 *   :scheme and :path pseudo-header fields ... MUST also be included", and
 *   `:authority` as for any CONNECT, RFC 7540 §8.3);
 * - 400 when `:authority` carries userinfo ("MUST NOT include the deprecated
 *   userinfo subcomponent", RFC 9113 §8.3.1) or a `host` header differs from
 *   it ("A server SHOULD treat a request as malformed if it contains a Host
 *   header field that identifies an entity that differs from the entity in
 *   the ":authority" pseudo-header field", same section);
 * - 426 with `Sec-WebSocket-Version: 13` when the version is missing or not 13;
 * - 400 for a malformed `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions`.
 * There is no `Sec-WebSocket-Key` to check: §5 replaces the key and its
 * accept hash with the `:protocol` pseudo-header, and the success is `:status 200`.
 */
export function validateExtendedConnect (headers: HandshakeRequest['headers']): HandshakeOffer | HandshakeRefusal {
  if (headerValue(headers[':protocol']).toLowerCase() !== 'websocket') {
    return { status: 405, headers: {}, reason: 'CONNECT is allowed only with :protocol websocket (RFC 8441)' }
  }
  for (const name of [':scheme', ':path', ':authority']) {
    if (headerValue(headers[name]) === '') return badRequest(`extended CONNECT needs ${name}`)
  }
  const authority = headerValue(headers[':authority'])
  if (authority.includes('@')) return badRequest(':authority must not carry userinfo')
  const host = headers.host
  if (host !== undefined && headerValue(host).toLowerCase() !== authority.toLowerCase()) return badRequest('host header differs from :authority')
  if (headerValue(headers['sec-websocket-version']).trim() !== '13') {
    return { status: 426, headers: { 'sec-websocket-version': '13' }, reason: 'unsupported Sec-WebSocket-Version; this server speaks 13' }
  }
  const protocols = parseTokenList(headerValue(headers['sec-websocket-protocol']))
  if (protocols === null) return badRequest('malformed Sec-WebSocket-Protocol header')
  const extensions = parseExtensions(headerValue(headers['sec-websocket-extensions']))
  if (extensions === null) return badRequest('malformed Sec-WebSocket-Extensions header')
  return { protocols, extensions }
}

/** Whether a handshake result is a refusal. */
export function isRefusal<T extends HandshakeOffer> (result: T | HandshakeRefusal): result is HandshakeRefusal {
  return 'status' in result
}

/**
 * Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §1.3, §4.2.2 step 5.4).
 * One-shot `hash()` (Node 20.12+): no Hash object, under half of createHash's time.
 */
export function acceptKey (key: string): string {
  return hash('sha1', key + GUID, 'base64')
}

/**
 * The 101 response (RFC 6455 §4.2.2 step 5), with the chosen subprotocol and
 * the negotiated extensions when there are any.
 */
export function switchingProtocols (accept: string, protocol?: string, extensions?: string): string {
  let response = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n`
  if (protocol !== undefined && protocol !== '') response += `Sec-WebSocket-Protocol: ${protocol}\r\n`
  if (extensions !== undefined && extensions !== '') response += `Sec-WebSocket-Extensions: ${extensions}\r\n`
  return response + '\r\n'
}

/**
 * A complete HTTP/1.1 refusal with `Connection: close`, for answers written
 * straight to a socket that has left the HTTP server.
 */
export function refusalResponse (refusal: HandshakeRefusal): string {
  let response = `HTTP/1.1 ${refusal.status} ${STATUS_TEXT[refusal.status] ?? 'Error'}\r\n`
  for (const [name, value] of Object.entries(refusal.headers)) response += `${name}: ${value}\r\n`
  // RFC 7230 §6.7: an Upgrade header needs the "upgrade" connection option.
  const connection = 'upgrade' in refusal.headers ? 'Upgrade, close' : 'close'
  return response + `Connection: ${connection}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(refusal.reason)}\r\n\r\n${refusal.reason}`
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  426: 'Upgrade Required',
  500: 'Internal Server Error',
  503: 'Service Unavailable'
}

/** A token as RFC 7230 §3.2.6 defines it: visible ASCII but separators. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** The base64 of 16 bytes: 22 characters then "==" (RFC 4648 §4). */
const KEY = /^[A-Za-z0-9+/]{22}==$/

function isValidKey (key: string): boolean {
  return key.length === 24 && KEY.test(key)
}

function badRequest (reason: string): HandshakeRefusal {
  return { status: 400, headers: {}, reason }
}

/** How many header lines named `name` (lower case) `rawHeaders` holds; 0 without it. */
function countHeader (rawHeaders: string[] | undefined, name: string): number {
  if (rawHeaders === undefined) return 0
  let count = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length === name.length && rawHeaders[i].toLowerCase() === name) count++
  }
  return count
}

/**
 * Whether a request says it has content (RFC 9112 §6.3): a `Transfer-Encoding`,
 * or a `Content-Length` other than 0.
 */
function hasContent (headers: HandshakeRequest['headers']): boolean {
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  return length !== undefined && headerValue(length).trim() !== '0'
}

function headerValue (value: string | string[] | undefined): string {
  if (value === undefined) return ''
  return typeof value === 'string' ? value : value.join(', ')
}

/** Whether a comma-separated header has `token`, compared case-insensitively. */
function hasToken (value: string, token: string): boolean {
  for (const part of value.split(',')) {
    if (part.trim().toLowerCase() === token) return true
  }
  return false
}

/**
 * Parses a comma-separated list of tokens (RFC 7230 §7, the form of
 * Sec-WebSocket-Protocol in RFC 6455 §4.1): empty elements are skipped, and
 * anything that is not a token makes the whole header malformed (null).
 */
export function parseTokenList (value: string): string[] | null {
  const tokens: string[] = []
  if (value === '') return tokens
  for (const part of value.split(',')) {
    const token = part.trim()
    if (token === '') continue
    if (!TOKEN.test(token)) return null
    tokens.push(token)
  }
  return tokens
}
