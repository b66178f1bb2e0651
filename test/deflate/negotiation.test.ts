/**
 * Negotiation of permessage-deflate (RFC 7692 §5, §7.1): the parser of
 * Sec-WebSocket-Extensions (RFC 6455 §9.1), negotiateDeflate() rule by rule,
 * and the same rules through real opening handshakes, asserting the exact
 * Sec-WebSocket-Extensions of the 101 response.
 */
import { test } from 'tap'
import { Opcode } from '../../lib/protocol/constants.js'
import { parseExtensions } from '../../lib/protocol/extensions.js'
import { negotiateDeflate, type PerMessageDeflateOptions } from '../../lib/protocol/permessage-deflate.js'
import type { WebSocket as ServerSocket } from '../../lib/index.js'
import { echoRoute, hex, start, upgradeRequest } from './helpers.js'

/** negotiateDeflate() on a header value: the response, or null when no offer was accepted. */
function respond (header: string, options: PerMessageDeflateOptions = {}): string | null {
  const offers = parseExtensions(header)
  if (offers === null) throw new Error(`malformed header in a test: ${header}`)
  return negotiateDeflate(offers, options)?.response ?? null
}

// parseExtensions() (RFC 6455 §9.1)

test('parseExtensions: names, parameters with and without values, in order', async (t) => {
  t.same(parseExtensions(''), [], 'no header value: no offers')
  t.same(parseExtensions('permessage-deflate'), [{ name: 'permessage-deflate', params: [] }])
  t.same(parseExtensions('permessage-deflate; client_max_window_bits'),
    [{ name: 'permessage-deflate', params: [['client_max_window_bits', true]] }], 'a parameter without a value is true')
  t.same(parseExtensions('a; x; y=1; z=abc'), [{ name: 'a', params: [['x', true], ['y', '1'], ['z', 'abc']] }])
  t.same(parseExtensions('a; x=1, b, c; y'), [
    { name: 'a', params: [['x', '1']] },
    { name: 'b', params: [] },
    { name: 'c', params: [['y', true]] }
  ], 'a list of extensions, in the client\'s order of preference')
  t.same(parseExtensions('a; x; x'), [{ name: 'a', params: [['x', true], ['x', true]] }], 'a repeated parameter is kept for the negotiator to decline')
  t.same(parseExtensions("a; !#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~09AZaz"),
    [{ name: 'a', params: [["!#$%&'*+-.^_`|~09AZaz", "!#$%&'*+-.^_`|~09AZaz"]] }], 'every tchar of RFC 7230 §3.2.6')
})

test('parseExtensions: quoted-string values are unquoted and must be tokens', async (t) => {
  t.same(parseExtensions('permessage-deflate; server_max_window_bits="10"'),
    [{ name: 'permessage-deflate', params: [['server_max_window_bits', '10']] }])
  t.same(parseExtensions('a; x="1", b'), [{ name: 'a', params: [['x', '1']] }, { name: 'b', params: [] }])
  t.equal(parseExtensions('a; x=""'), null, 'an empty quoted value is not a token')
  t.equal(parseExtensions('a; x="1 0"'), null, 'a space inside the quotes is not a token')
  t.equal(parseExtensions('a; x="1,0"'), null, 'nor a comma')
  t.equal(parseExtensions('a; x="10'), null, 'an unterminated quoted-string')
  t.equal(parseExtensions('"a"'), null, 'a quoted extension name')
  t.equal(parseExtensions('a; "x"=1'), null, 'a quoted parameter name')
})

test('parseExtensions: a quoted-pair is unescaped before the token check (RFC 6455 §9.1, RFC 7230 §3.2.6)', async (t) => {
  // RFC 6455 §9.1: "When using the quoted-string syntax variant, the value
  // after quoted-string unescaping MUST conform to the 'token' ABNF." The
  // quoted-string "1\0" unescapes to the token 10.
  t.same(parseExtensions('a; x="1\\0"'), [{ name: 'a', params: [['x', '10']] }])
  t.equal(parseExtensions('a; x="\\"10"'), null, 'an escaped quote is part of the value, and not a tchar')
  t.equal(parseExtensions('a; x="10\\"'), null, 'a backslash escaping the closing quote leaves the string unterminated')
})

test('parseExtensions: optional whitespace, spaces and tabs, around every separator', async (t) => {
  const expected = [{ name: 'a', params: [['x', '1'], ['y', true]] }, { name: 'b', params: [] }]
  t.same(parseExtensions('a;x=1;y,b'), expected, 'no whitespace')
  t.same(parseExtensions('  a ; x = 1 ;\ty\t,\t b  '), expected, 'whitespace everywhere it may be')
  t.same(parseExtensions('a; x = "1" ; y , b'), expected)
})

test('parseExtensions: empty list elements are allowed (RFC 7230 §7)', async (t) => {
  t.same(parseExtensions('a,,b'), [{ name: 'a', params: [] }, { name: 'b', params: [] }])
  t.same(parseExtensions(', a ,  , b ,'), [{ name: 'a', params: [] }, { name: 'b', params: [] }])
  t.same(parseExtensions(' , ,'), [])
})

test('parseExtensions: malformed values are null', async (t) => {
  const malformed = [
    'a;', 'a; ', ';a', ';', 'a;;x', 'a; =1', 'a; x=', 'a; x= ', 'a; x==1', 'a=1', 'a b', 'a; x=1 2',
    'a; x y', 'a; x=(1)', 'a; x=1;', 'a/b', 'a; x=[1]', 'ä', 'a; x=ü', 'a; x="ü"', 'a\u0000', 'a; x=1\r\n'
  ]
  for (const value of malformed) t.equal(parseExtensions(value), null, JSON.stringify(value))
})

test('parseExtensions: 100 KB pathological values are answered, and answered right', async (t) => {
  const manyParams = parseExtensions('permessage-deflate' + '; x'.repeat(34_000))
  t.equal(manyParams?.length, 1)
  t.equal(manyParams?.[0].params.length, 34_000, 'one offer with 34 000 parameters')
  t.same(parseExtensions(', '.repeat(50_000)), [], '50 000 empty list elements')
  const manyOffers = parseExtensions('a; x="1", '.repeat(10_000))
  t.equal(manyOffers?.length, 10_000, '10 000 offers with quoted values')
  t.equal(parseExtensions('a; x="' + 'b'.repeat(100_000)), null, 'an unterminated quoted-string of 100 000 bytes')
  t.equal(parseExtensions('a; x="' + '"'.repeat(100_000)), null, '100 000 quotes')
  t.equal(parseExtensions('a' + ' '.repeat(100_000) + ';'), null, '100 000 spaces then a dangling semicolon')
  t.equal(parseExtensions('a' + ';'.repeat(100_000)), null, '100 000 semicolons')
  t.same(parseExtensions('a'.repeat(100_000)), [{ name: 'a'.repeat(100_000), params: [] }], 'a 100 000-byte token')
})

// negotiateDeflate() (RFC 7692 §5, §7.1)

test('a plain offer is accepted with a plain response and default parameters', async (t) => {
  const result = negotiateDeflate(parseExtensions('permessage-deflate') ?? [], {})
  t.same(result, {
    response: 'permessage-deflate',
    params: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
  })
})

test('§5.1: several offers: the first acceptable one wins, and the response has one element only', async (t) => {
  t.equal(respond('permessage-deflate; server_max_window_bits=10, permessage-deflate'),
    'permessage-deflate; server_max_window_bits=10', 'the first of two acceptable offers')
  t.equal(respond('permessage-deflate; foo, permessage-deflate; client_no_context_takeover'),
    'permessage-deflate; client_no_context_takeover', 'an offer with an unknown parameter is declined, the next accepted')
  t.equal(respond('permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=16, permessage-deflate; server_no_context_takeover'),
    'permessage-deflate; server_no_context_takeover', 'the third offer, after two unacceptable ones')
  t.equal(respond('permessage-deflate; foo, permessage-deflate; bar'), null, 'no acceptable offer: declined (null)')
  t.equal(respond(''), null, 'no offer at all')
})

test('§7.1: an extension parameter with a quoted value is read unquoted', async (t) => {
  t.equal(respond('permessage-deflate; server_max_window_bits="10"'), 'permessage-deflate; server_max_window_bits=10')
  t.equal(respond('permessage-deflate; client_max_window_bits="11"'), 'permessage-deflate; client_max_window_bits=11')
})

test('§7.1: an offer with a repeated parameter is declined', async (t) => {
  t.equal(respond('permessage-deflate; server_no_context_takeover; server_no_context_takeover'), null)
  t.equal(respond('permessage-deflate; client_no_context_takeover; client_no_context_takeover'), null)
  t.equal(respond('permessage-deflate; server_max_window_bits=10; server_max_window_bits=10'), null, 'even with the same value')
  t.equal(respond('permessage-deflate; client_max_window_bits; client_max_window_bits=10'), null, 'once without a value, once with')
  t.equal(respond('permessage-deflate; client_max_window_bits; client_max_window_bits, permessage-deflate'),
    'permessage-deflate', 'and the next offer is considered')
})

test('§7.1.2: window bits other than a decimal 8-15 without leading zeroes are invalid: the offer is declined', async (t) => {
  for (const value of ['7', '16', '0', '010', '08', '-9', '+9', '9.0', '1e1', 'abc', 'ten', '15a', '"7"', '"010"']) {
    t.equal(respond(`permessage-deflate; server_max_window_bits=${value}`), null, `server_max_window_bits=${value}`)
    t.equal(respond(`permessage-deflate; client_max_window_bits=${value}`), null, `client_max_window_bits=${value}`)
  }
  t.equal(respond('permessage-deflate; server_max_window_bits'), null, 'server_max_window_bits needs a value (§7.1.2.1)')
  for (const bits of [8, 9, 10, 11, 12, 13, 14, 15]) {
    t.equal(respond(`permessage-deflate; server_max_window_bits=${bits}`), `permessage-deflate; server_max_window_bits=${bits}`, `${bits} is valid`)
  }
})

test('§7.1.1: the no_context_takeover parameters have no value', async (t) => {
  t.equal(respond('permessage-deflate; server_no_context_takeover=1'), null)
  t.equal(respond('permessage-deflate; client_no_context_takeover="true"'), null)
})

test('§7.1.1.1: server_no_context_takeover offered is echoed', async (t) => {
  const result = negotiateDeflate(parseExtensions('permessage-deflate; server_no_context_takeover') ?? [], {})
  t.equal(result?.response, 'permessage-deflate; server_no_context_takeover')
  t.equal(result?.params.serverNoContextTakeover, true, 'and the server resets its compressor after each message')
})

test('§7.1.1.2: client_no_context_takeover offered is included in the response', async (t) => {
  const result = negotiateDeflate(parseExtensions('permessage-deflate; client_no_context_takeover') ?? [], {})
  t.equal(result?.response, 'permessage-deflate; client_no_context_takeover')
  t.equal(result?.params.clientNoContextTakeover, true, 'and the server may reset its decompressor after each message')
})

test('options serverNoContextTakeover / clientNoContextTakeover add those parameters to any accepted offer', async (t) => {
  t.equal(respond('permessage-deflate', { serverNoContextTakeover: true }), 'permessage-deflate; server_no_context_takeover')
  t.equal(respond('permessage-deflate', { clientNoContextTakeover: true }), 'permessage-deflate; client_no_context_takeover')
  t.equal(respond('permessage-deflate; server_no_context_takeover', { serverNoContextTakeover: true, clientNoContextTakeover: true }),
    'permessage-deflate; server_no_context_takeover; client_no_context_takeover', 'each once, even when offered too')
  t.equal(respond('permessage-deflate', { serverNoContextTakeover: false, clientNoContextTakeover: false }), 'permessage-deflate')
})

test('§7.1.2.1: server_max_window_bits=N offered is answered with min(N, serverMaxWindowBits)', async (t) => {
  t.equal(respond('permessage-deflate; server_max_window_bits=10'), 'permessage-deflate; server_max_window_bits=10')
  t.equal(respond('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 9 }), 'permessage-deflate; server_max_window_bits=9',
    'a smaller window than offered is allowed')
  t.equal(respond('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 12 }), 'permessage-deflate; server_max_window_bits=10',
    'never a larger one')
  const params = negotiateDeflate(parseExtensions('permessage-deflate; server_max_window_bits=8') ?? [], {})?.params
  t.equal(params?.serverMaxWindowBits, 8, 'the compressor is made with the agreed window')
  // Not offered: the server may still compress with a smaller window, without saying so.
  const quiet = negotiateDeflate(parseExtensions('permessage-deflate') ?? [], { serverMaxWindowBits: 10 })
  t.equal(quiet?.response, 'permessage-deflate')
  t.equal(quiet?.params.serverMaxWindowBits, 10)
})

test('§7.1.2.2: client_max_window_bits without a value is answered only when the server wants a smaller window', async (t) => {
  t.equal(respond('permessage-deflate; client_max_window_bits'), 'permessage-deflate', 'not answered: the client may use 15 bits')
  t.equal(respond('permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 15 }), 'permessage-deflate')
  const result = negotiateDeflate(parseExtensions('permessage-deflate; client_max_window_bits') ?? [], { clientMaxWindowBits: 10 })
  t.equal(result?.response, 'permessage-deflate; client_max_window_bits=10', 'answered with the option')
  t.equal(result?.params.clientMaxWindowBits, 10, 'and the decompressor is made with that window')
})

test('§7.1.2.2: client_max_window_bits=N offered is answered with min(N, clientMaxWindowBits)', async (t) => {
  t.equal(respond('permessage-deflate; client_max_window_bits=10'), 'permessage-deflate; client_max_window_bits=10')
  t.equal(respond('permessage-deflate; client_max_window_bits=10', { clientMaxWindowBits: 9 }), 'permessage-deflate; client_max_window_bits=9')
  t.equal(respond('permessage-deflate; client_max_window_bits=10', { clientMaxWindowBits: 12 }), 'permessage-deflate; client_max_window_bits=10')
})

test('§7.1.2.2: client_max_window_bits is never sent when the client did not offer it', async (t) => {
  const result = negotiateDeflate(parseExtensions('permessage-deflate') ?? [], { clientMaxWindowBits: 9 })
  t.equal(result?.response, 'permessage-deflate', 'the response MUST NOT include it')
  t.equal(result?.params.clientMaxWindowBits, 15, 'so the server must inflate with a 15-bit window')
})

test('all parameters together, in the order the response lists them', async (t) => {
  t.equal(respond('permessage-deflate; client_max_window_bits; server_max_window_bits=12; client_no_context_takeover; server_no_context_takeover',
    { clientMaxWindowBits: 11 }),
  'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11')
})

test('other extension names are ignored: x-webkit-deflate-frame, deflate-frame', async (t) => {
  t.equal(respond('x-webkit-deflate-frame'), null)
  t.equal(respond('deflate-frame; no_context_takeover'), null)
  t.equal(respond('x-webkit-deflate-frame, permessage-deflate'), 'permessage-deflate', 'the permessage-deflate offer after it is taken')
  t.equal(respond('permessage-deflate-x, x-permessage-deflate'), null)
})

test('every response parses back as one valid offer (the client will parse it)', async (t) => {
  const response = respond('permessage-deflate; client_max_window_bits; server_max_window_bits=9; server_no_context_takeover',
    { clientMaxWindowBits: 8, clientNoContextTakeover: true })
  const parsed = parseExtensions(response ?? '')
  t.equal(parsed?.length, 1)
  t.same(parsed?.[0], {
    name: 'permessage-deflate',
    params: [['server_no_context_takeover', true], ['client_no_context_takeover', true], ['server_max_window_bits', '9'], ['client_max_window_bits', '8']]
  })
})

// Through real handshakes

test('handshake: Sec-WebSocket-Extensions of the 101 for each kind of offer', async (t) => {
  const sockets: ServerSocket[] = []
  const harness = await start(t, { perMessageDeflate: { clientMaxWindowBits: 12 } }, (app) => echoRoute(app, '/echo', sockets))
  const cases: Array<[offer: string | undefined, response: string | undefined]> = [
    ['permessage-deflate', 'permessage-deflate'],
    ['permessage-deflate; client_max_window_bits', 'permessage-deflate; client_max_window_bits=12'],
    ['permessage-deflate; foo, permessage-deflate; server_max_window_bits="10"', 'permessage-deflate; server_max_window_bits=10'],
    ['permessage-deflate; server_no_context_takeover; client_no_context_takeover', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
    ['x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=9', 'permessage-deflate; client_max_window_bits=9'],
    ['permessage-deflate; server_max_window_bits=7', undefined],
    ['permessage-deflate; client_max_window_bits=abc', undefined],
    ['x-webkit-deflate-frame', undefined],
    [undefined, undefined]
  ]
  for (const [offer, response] of cases) {
    const raw = await harness.rawWebSocket('/echo', offer)
    t.equal(raw.response?.headers['sec-websocket-extensions'], response, `offer ${offer ?? '(none)'}`)
    raw.closeAndDestroy()
  }
  t.same(sockets.map((socket) => socket.extensions), cases.map(([, response]) => response ?? ''),
    'socket.extensions is the response\'s value, \'\' when none')
})

test('handshake: offers split over two Sec-WebSocket-Extensions header lines form one list', async (t) => {
  const harness = await start(t, { perMessageDeflate: true }, (app) => echoRoute(app))
  const raw = await harness.raw()
  raw.write(upgradeRequest('/echo').replace('\r\n\r\n',
    '\r\nSec-WebSocket-Extensions: x-foo; a=1\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n'))
  const response = await raw.readHttpResponse()
  t.equal(response.status, 101)
  t.equal(response.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover')
})

test('handshake: no acceptable offer: no Sec-WebSocket-Extensions, and the connection works uncompressed', async (t) => {
  const harness = await start(t, { perMessageDeflate: true }, (app) => echoRoute(app))
  const raw = await harness.rawWebSocket('/echo?compress=always', 'permessage-deflate; server_max_window_bits=16')
  t.equal(raw.response?.headers['sec-websocket-extensions'], undefined)
  raw.sendFrame(Opcode.Text, 'Hello')
  t.equal(hex((await raw.readFrame()).bytes), hex(Buffer.from('\x81\x05Hello', 'latin1')),
    'send(data, { compress: true }) sends uncompressed: RSV1 clear')
  raw.sendFrame(Opcode.Text, Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), { rsv1: true })
  t.equal(await raw.readCloseCode(), 1002, 'and RSV1 from the client fails the connection (RFC 6455 §5.2)')
})

test('handshake: a malformed Sec-WebSocket-Extensions is answered 400, a long one is answered too', async (t) => {
  const harness = await start(t, { perMessageDeflate: true }, (app) => echoRoute(app))
  const malformed = [
    'permessage-deflate;', 'permessage-deflate; server_max_window_bits="10', 'permessage-deflate; a b', ';',
    'permessage-deflate; x="' + 'a'.repeat(12_000)
  ]
  for (const offer of malformed) {
    const raw = await harness.raw()
    const response = await raw.handshake('/echo', { extensions: offer })
    t.equal(response.status, 400, offer.slice(0, 60))
    t.match(response.body.toString(), /Sec-WebSocket-Extensions/)
    raw.destroy()
  }
  const declined = await harness.rawWebSocket('/echo', 'permessage-deflate' + '; x'.repeat(4000))
  t.equal(declined.response?.headers['sec-websocket-extensions'], undefined, '12 KB, 4000 unknown parameters: the offer is declined')
})

test('handshake: permessage-deflate is off by default, and per route', async (t) => {
  const harness = await start(t, {}, (app) => {
    echoRoute(app, '/off')
    app.get('/on', { ws: { perMessageDeflate: { serverNoContextTakeover: true } } }, (socket) => {
      socket.on('message', (data) => socket.send(data))
    })
  })
  const off = await harness.rawWebSocket('/off', 'permessage-deflate')
  t.equal(off.response?.headers['sec-websocket-extensions'], undefined, 'plugin default: the offer is ignored')
  off.sendFrame(Opcode.Text, Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), { rsv1: true })
  t.equal(await off.readCloseCode(), 1002, 'and RSV1 is a protocol error there')
  const on = await harness.rawWebSocket('/on', 'permessage-deflate')
  t.equal(on.response?.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover', 'a route may turn it on')

  const harness2 = await start(t, { perMessageDeflate: true }, (app) => {
    app.get('/plain', { ws: { perMessageDeflate: false } }, (socket) => { socket.on('message', (data) => socket.send(data)) })
  })
  const plain = await harness2.rawWebSocket('/plain', 'permessage-deflate')
  t.equal(plain.response?.headers['sec-websocket-extensions'], undefined, 'and a route may turn it off')
})
