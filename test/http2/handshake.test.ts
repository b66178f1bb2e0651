/**
 * validateExtendedConnect, the pure check of an RFC 8441 extended CONNECT
 * (§4, §5): headers in, the offer or the refusal out, no sockets.
 */
import { test } from 'tap'
import { isRefusal, validateExtendedConnect } from '../../lib/protocol/handshake.js'

function headers (changes: Record<string, string | string[] | undefined> = {}): Record<string, string | string[] | undefined> {
  return {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': '/chat?room=1',
    ':authority': 'server.example.com',
    'sec-websocket-version': '13',
    ...changes
  }
}

test('a valid extended CONNECT: the offer, with no key to check', async (t) => {
  t.same(validateExtendedConnect(headers()), { protocols: [], extensions: [] })
  t.same(validateExtendedConnect(headers({ 'sec-websocket-key': undefined })), { protocols: [], extensions: [] }, 'no Sec-WebSocket-Key needed (§5)')
  const offer = validateExtendedConnect(headers({
    'sec-websocket-protocol': 'chat, superchat',
    'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits'
  }))
  t.notOk(isRefusal(offer))
  t.same(!isRefusal(offer) && offer.protocols, ['chat', 'superchat'], 'subprotocols in the client\'s order')
  t.same(!isRefusal(offer) && offer.extensions.map((e) => e.name), ['permessage-deflate'])
})

test('refusals: 405 without :protocol websocket, 400 without the pseudo-headers §4 requires, 426 for the version', async (t) => {
  const cases: Array<[string, Record<string, string | string[] | undefined>, number]> = [
    ['no :protocol (a plain CONNECT)', { ':protocol': undefined }, 405],
    ['another :protocol', { ':protocol': 'connect-udp' }, 405],
    ['no :scheme', { ':scheme': undefined }, 400],
    ['no :path', { ':path': undefined }, 400],
    ['no :authority', { ':authority': undefined }, 400],
    ['no Sec-WebSocket-Version', { 'sec-websocket-version': undefined }, 426],
    ['Sec-WebSocket-Version 8', { 'sec-websocket-version': '8' }, 426],
    ['a malformed Sec-WebSocket-Protocol', { 'sec-websocket-protocol': 'a b' }, 400],
    ['a malformed Sec-WebSocket-Extensions', { 'sec-websocket-extensions': 'x; =' }, 400]
  ]
  for (const [label, changes, status] of cases) {
    const result = validateExtendedConnect(headers(changes))
    t.ok(isRefusal(result), `${label}: refused`)
    if (!isRefusal(result)) continue
    t.equal(result.status, status, `${label}: ${status}`)
    t.ok(result.reason.length > 0 && result.reason.length < 100, `${label}: a short reason`)
    t.notOk('upgrade' in result.headers || 'connection' in result.headers, `${label}: no HTTP/1.1-only header`)
  }
  const version = validateExtendedConnect(headers({ 'sec-websocket-version': '8' }))
  t.same(isRefusal(version) && version.headers, { 'sec-websocket-version': '13' }, '426 says which version the server speaks')
})
