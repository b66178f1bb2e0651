/**
 * lib/protocol/handshake.ts: validateHandshake (RFC 6455 §4.2.1, §4.2.2) as a
 * pure function, acceptKey (§1.3), switchingProtocols, refusalResponse and
 * parseTokenList.
 */
import { test } from 'tap'
import {
  acceptKey, type HandshakeRequest, isRefusal, parseTokenList, refusalResponse, switchingProtocols, validateHandshake
} from '../../lib/protocol/handshake.js'

/** The §1.3 sample key and its accept value. */
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

/** A valid client handshake (§4.1), with `headers` overriding or removing (undefined) fields. */
function request (headers: Record<string, string | string[] | undefined> = {}, rest: Partial<HandshakeRequest> = {}): HandshakeRequest {
  return {
    method: 'GET',
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    ...rest,
    headers: {
      host: 'server.example.com',
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': KEY,
      'sec-websocket-version': '13',
      ...headers
    }
  }
}

test('acceptKey: the RFC 6455 §1.3 example', async (t) => {
  t.equal(acceptKey(KEY), ACCEPT)
})

test('a valid handshake is accepted', async (t) => {
  const result = validateHandshake(request())
  t.notOk(isRefusal(result))
  t.same(result, { accept: ACCEPT, protocols: [], extensions: [] })
})

test('non-GET: 405 with Allow: GET', async (t) => {
  for (const method of ['POST', 'HEAD', 'CONNECT', 'get', undefined]) {
    const result = validateHandshake(request({}, { method }))
    t.ok(isRefusal(result), `${method}: refused`)
    t.match(result, { status: 405, headers: { allow: 'GET' } }, `${method}: 405`)
  }
})

test('HTTP/1.0: 400', async (t) => {
  const result = validateHandshake(request({}, { httpVersionMajor: 1, httpVersionMinor: 0 }))
  t.ok(isRefusal(result))
  t.same(isRefusal(result) && [result.status, result.headers], [400, {}])
  t.match(validateHandshake(request({}, { httpVersionMajor: 0, httpVersionMinor: 9 })), { status: 400 }, 'HTTP/0.9')
  t.notOk(isRefusal(validateHandshake(request({}, { httpVersionMajor: 2, httpVersionMinor: 0 }))), 'a later version passes this check')
})

test('missing Host: 400', async (t) => {
  for (const host of [undefined, '']) {
    const result = validateHandshake(request({ host }))
    t.ok(isRefusal(result))
    t.match(result, { status: 400, headers: {} }, `host ${JSON.stringify(host)}`)
  }
})

test('Upgrade without the websocket token: 400', async (t) => {
  for (const upgrade of [undefined, '', 'h2c', 'websockets', 'web socket', 'TLS/1.0, IRC/6.9']) {
    const result = validateHandshake(request({ upgrade }))
    t.ok(isRefusal(result), `${JSON.stringify(upgrade)}: refused`)
    t.match(result, { status: 400 }, `${JSON.stringify(upgrade)}: 400`)
  }
})

test('Connection without the upgrade token: 400; "keep-alive, Upgrade" is accepted', async (t) => {
  for (const connection of [undefined, '', 'keep-alive', 'close', 'upgrade-insecure', 'Upgrade2']) {
    const result = validateHandshake(request({ connection }))
    t.ok(isRefusal(result), `${JSON.stringify(connection)}: refused`)
    t.match(result, { status: 400 }, `${JSON.stringify(connection)}: 400`)
  }
  for (const connection of ['keep-alive, Upgrade', 'Upgrade, keep-alive', 'keep-alive,upgrade', ' UPGRADE ', ['keep-alive', 'Upgrade']]) {
    t.same(validateHandshake(request({ connection })), { accept: ACCEPT, protocols: [], extensions: [] }, `${JSON.stringify(connection)}: accepted`)
  }
})

test('missing or other Sec-WebSocket-Version: 426 with Sec-WebSocket-Version: 13 (§4.2.2)', async (t) => {
  for (const version of [undefined, '', '8', '12', '14', '13, 8', '013']) {
    const result = validateHandshake(request({ 'sec-websocket-version': version }))
    t.ok(isRefusal(result), `${JSON.stringify(version)}: refused`)
    t.match(result, { status: 426, headers: { 'sec-websocket-version': '13' } }, `${JSON.stringify(version)}: 426`)
  }
})

test('Sec-WebSocket-Key not the base64 of 16 bytes: 400; a duplicated key too', async (t) => {
  const keys = [
    undefined, '', 'short', 'dGhlIHNhbXBsZSBub25jZQ', // no padding
    'dGhlIHNhbXBsZSBub25jZQ=', 'dGhlIHNhbXBsZSBub25jZQ===',
    'dGhlIHNhbXBsZSBub25jZSE=', // 17 bytes
    'dGhlIHNhbXBsZSBub25j', // 15 bytes
    'dGhlIHNhbXBsZSBub25jZQ*=', 'dGhlIHNh bXBsZSBub25jZQ==',
    `${KEY}, x3JJHMbDL1EzLkh9GBhXDw==`, // "k1, k2": two keys joined by Node
    [KEY, 'x3JJHMbDL1EzLkh9GBhXDw==']
  ]
  for (const key of keys) {
    const result = validateHandshake(request({ 'sec-websocket-key': key }))
    t.ok(isRefusal(result), `${JSON.stringify(key)}: refused`)
    t.match(result, { status: 400 }, `${JSON.stringify(key)}: 400`)
  }
  t.same(validateHandshake(request({ 'sec-websocket-key': ` ${KEY} ` })), { accept: ACCEPT, protocols: [], extensions: [] }, 'surrounding spaces are trimmed')
})

test('malformed Sec-WebSocket-Protocol: 400', async (t) => {
  for (const protocol of ['chat v2', 'chat;v=2', '"chat"', 'chat/1', 'ch@t', 'caf\u00e9', 'a, b c']) {
    const result = validateHandshake(request({ 'sec-websocket-protocol': protocol }))
    t.ok(isRefusal(result), `${JSON.stringify(protocol)}: refused`)
    t.match(result, { status: 400 }, `${JSON.stringify(protocol)}: 400`)
  }
})

test('malformed Sec-WebSocket-Extensions: 400', async (t) => {
  const result = validateHandshake(request({ 'sec-websocket-extensions': 'permessage-deflate; =' }))
  t.ok(isRefusal(result))
  t.match(result, { status: 400 })
})

test('tokens are case-insensitive; protocols are kept in the client\'s order', async (t) => {
  const result = validateHandshake(request({
    upgrade: 'WebSocket',
    connection: 'UPGRADE',
    'sec-websocket-protocol': 'superchat, chat ,, v2.chat.example.com'
  }))
  t.same(result, { accept: ACCEPT, protocols: ['superchat', 'chat', 'v2.chat.example.com'], extensions: [] })
  const repeated = validateHandshake(request({ 'sec-websocket-protocol': ['b', 'a, c'] }))
  t.same(repeated, { accept: ACCEPT, protocols: ['b', 'a', 'c'], extensions: [] }, 'repeated headers, in order')
  t.same(validateHandshake(request({ upgrade: 'foo, websocket' })), { accept: ACCEPT, protocols: [], extensions: [] }, 'websocket among other upgrade tokens')
})

test('switchingProtocols: the exact 101 response (§4.2.2)', async (t) => {
  const base = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${ACCEPT}\r\n`
  t.equal(switchingProtocols(ACCEPT), base + '\r\n')
  t.equal(switchingProtocols(ACCEPT, 'chat'), base + 'Sec-WebSocket-Protocol: chat\r\n\r\n')
  t.equal(switchingProtocols(ACCEPT, ''), base + '\r\n', 'an empty protocol is left out')
  t.equal(switchingProtocols(ACCEPT, 'chat', 'permessage-deflate'),
    base + 'Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n')
  t.equal(switchingProtocols(ACCEPT, undefined, 'permessage-deflate'), base + 'Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n')
})

test('refusalResponse: a complete HTTP/1.1 response with Connection: close (and upgrade when it sends Upgrade)', async (t) => {
  const refusal = validateHandshake(request({ 'sec-websocket-version': '8' }))
  if (!isRefusal(refusal)) throw new Error('expected a refusal')
  t.equal(refusalResponse(refusal),
    'HTTP/1.1 426 Upgrade Required\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n' +
    'Connection: Upgrade, close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(refusal.reason)}\r\n\r\n${refusal.reason}`)
  t.equal(refusalResponse({ status: 405, headers: { allow: 'GET' }, reason: 'é' }),
    'HTTP/1.1 405 Method Not Allowed\r\nallow: GET\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\né',
    'Content-Length counts bytes')
})

test('parseTokenList edge cases (RFC 7230 §7)', async (t) => {
  const cases: Array<[string, string[] | null]> = [
    ['', []],
    [' ', []],
    [',', []],
    [' , ,, ', []],
    ['a', ['a']],
    ['a,b', ['a', 'b']],
    ['  a  ,\tb\t', ['a', 'b']],
    ['a,,b,', ['a', 'b']],
    ["!#$%&'*+-.^_`|~09AZaz", ["!#$%&'*+-.^_`|~09AZaz"]],
    ['a b', null],
    ['a;b', null],
    ['a=b', null],
    ['"a"', null],
    ['a/b', null],
    ['(a)', null],
    ['a,{b}', null],
    ['\u00e9', null],
    ['a\u0000', null]
  ]
  for (const [value, expected] of cases) t.same(parseTokenList(value), expected, JSON.stringify(value))
})

test('a 100 KB pathological Sec-WebSocket-Protocol value is handled', async (t) => {
  const size = 100 * 1024
  const manyTokens = 'a,'.repeat(size / 2)
  const accepted = validateHandshake(request({ 'sec-websocket-protocol': manyTokens }))
  t.notOk(isRefusal(accepted), '51200 one-letter tokens: accepted')
  t.equal(isRefusal(accepted) ? -1 : accepted.protocols.length, size / 2)
  const pathological = [
    ' '.repeat(size) + '@', // spaces then a separator
    'a'.repeat(size) + ' b', // a long token then a space inside the element
    ',;'.repeat(size / 2),
    '\t'.repeat(size - 1) + '"'
  ]
  for (const value of pathological) {
    const result = validateHandshake(request({ 'sec-websocket-protocol': value }))
    t.match(result, { status: 400 }, `${JSON.stringify(value.slice(0, 8))}...: 400`)
  }
  t.same(parseTokenList(','.repeat(size)), [], 'only commas: empty list')
  t.same(parseTokenList(' '.repeat(size)), [], 'only spaces: empty list')
})
