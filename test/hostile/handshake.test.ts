/**
 * Hostile opening handshakes (RFC 6455 §4.2.1): floods of headers, oversized
 * lines, duplicated keys, old HTTP, garbage, slow requests and pathological
 * Sec-WebSocket-Protocol / Sec-WebSocket-Extensions values. Each is answered
 * with one exact status (or a close) and the server goes on serving.
 *
 * Limits that are Node's, not the plugin's: the size of the request head
 * (`maxHeaderSize`, 16 KiB by default, counted over the request line, header
 * names and values), the number of headers (`maxHeadersCount`: Node 20 keeps
 * the first 2000 and drops the rest; Node 22, 24 and 26 take 1000 and answer
 * 431 past them),
 * and the time to send the head (`headersTimeout`, checked every
 * `connectionsCheckingInterval`). Fastify's default clientError handler
 * answers 431, 408 or 400 with a JSON body.
 */
import { test } from 'tap'
import { ACCEPT, assertStillServes, KEY, pseudoRandomBytes, RawClient, sleep, startServer, upgradeRequest, within } from './helpers.js'

const HEADER_OVERFLOW_BODY = '{"error":"Request Header Fields Too Large","message":"Exceeded maximum allowed HTTP header size","statusCode":431}'
const CLIENT_ERROR_BODY = '{"error":"Bad Request","message":"Client Error","statusCode":400}'
const TIMEOUT_BODY = '{"error":"Request Timeout","message":"Client Timeout","statusCode":408}'

/** Sends `request` on a fresh connection and waits for the response head and the server's close. */
async function exchange (port: number, request: string | Buffer): Promise<RawClient> {
  const client = await RawClient.connect(port)
  client.write(request)
  await client.waitResponse()
  await client.waitClosed()
  return client
}

function floodHeaders (count: number, value: string): string[] {
  return Array.from({ length: count }, (_, i) => `h${i}: ${value}`)
}

test('2,000 header lines over maxHeaderSize: 431 from Node\'s parser, connection closed', async (t) => {
  const server = await startServer(t)
  // 2,000 × ~30 bytes of names and values: over 16 KiB.
  const client = await exchange(server.port, upgradeRequest('/echo', floodHeaders(2000, 'x'.repeat(20))))
  t.equal(client.status, 431)
  t.equal(client.body.toString(), HEADER_OVERFLOW_BODY)
  await assertStillServes(t, server)
})

/** Node 22 and later answer 431 past maxHeadersCount (1000 by default there); Node 20 drops the headers past it (2000). */
const HEADER_COUNT_REFUSED = Number(process.versions.node.split('.')[0]) >= 22

test('900 short header lines, under maxHeaderSize and maxHeadersCount: the handshake is judged on its own headers (101)', async (t) => {
  const server = await startServer(t)
  // Node counts names and values only: 900 × "hN" + "1" stays under 16 KiB.
  const client = await RawClient.connect(server.port)
  client.write(upgradeRequest('/echo', floodHeaders(900, '1')))
  await client.waitResponse()
  t.equal(client.status, 101)
  t.equal(client.header('sec-websocket-accept'), ACCEPT)
  client.destroy()
  await assertStillServes(t, server)
})

test('WebSocket headers after 2,000 others: dropped by maxHeadersCount (400) on Node 20, 431 from Node 22', async (t) => {
  const server = await startServer(t)
  const flood = floodHeaders(2000, '1')
  const request = [
    'GET /echo HTTP/1.1', ...flood, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${KEY}`
  ].join('\r\n') + '\r\n\r\n'
  const client = await exchange(server.port, request)
  if (HEADER_COUNT_REFUSED) {
    t.equal(client.status, 431)
    t.equal(client.body.toString(), HEADER_OVERFLOW_BODY)
  } else {
    t.equal(client.status, 400)
    t.equal(client.body.toString(), 'missing Host header')
  }
  await assertStillServes(t, server)
})

test('an 80 KB header line: 431, connection closed', async (t) => {
  const server = await startServer(t)
  const client = await exchange(server.port, upgradeRequest('/echo', [`X-Big: ${'a'.repeat(80 * 1024)}`]))
  t.equal(client.status, 431)
  t.equal(client.body.toString(), HEADER_OVERFLOW_BODY)
  await assertStillServes(t, server)
})

test('an 80 KB request target: 431', async (t) => {
  const server = await startServer(t)
  const client = await exchange(server.port, upgradeRequest(`/echo?${'q'.repeat(80 * 1024)}`))
  t.equal(client.status, 431)
  await assertStillServes(t, server)
})

test('maxHeaderSize is the bound: Fastify({ http: { maxHeaderSize: 4096 } }) answers a 5 KB header with 431', async (t) => {
  const server = await startServer(t, { app: { http: { maxHeaderSize: 4096 } } })
  const client = await exchange(server.port, upgradeRequest('/echo', [`X-Big: ${'a'.repeat(5000)}`]))
  t.equal(client.status, 431)
  await assertStillServes(t, server)
})

test('duplicated Sec-WebSocket-Key header lines: 400', async (t) => {
  const server = await startServer(t)
  const client = await exchange(server.port, upgradeRequest('/echo', [`Sec-WebSocket-Key: ${KEY}`]))
  t.equal(client.status, 400)
  t.equal(client.header('connection'), 'close')
  t.equal(client.body.toString(), 'Sec-WebSocket-Key must be the base64 of 16 bytes')
  await assertStillServes(t, server)
})

test('an HTTP/1.0 upgrade request: 400 (RFC 6455 §4.2.1 needs HTTP/1.1)', async (t) => {
  const server = await startServer(t)
  const client = await exchange(server.port, upgradeRequest('/echo', [], 'HTTP/1.0'))
  t.equal(client.status, 400)
  t.equal(client.body.toString(), 'WebSocket handshake needs HTTP/1.1 or later')
  await assertStillServes(t, server)
})

test('64 KiB of random bytes instead of a request: 400 or a plain close, nothing else', async (t) => {
  const server = await startServer(t)
  for (const seed of [1, 0x6455, 0xdeadbeef]) {
    const client = await RawClient.connect(server.port)
    client.write(pseudoRandomBytes(64 * 1024, seed))
    await client.waitClosed()
    if (client.responseHead === '') {
      t.equal(client.receivedBytes, 0, `seed ${seed}: closed without a byte`)
    } else {
      t.equal(client.status, 400, `seed ${seed}: 400`)
      t.equal(client.body.toString(), CLIENT_ERROR_BODY)
    }
  }
  await assertStillServes(t, server)
})

/** Writes `request` one byte every `everyMs` and resolves when the server closes, or after `limitMs`. */
async function trickle (port: number, request: string, everyMs: number, limitMs: number): Promise<RawClient> {
  const client = await RawClient.connect(port)
  const bytes = Buffer.from(request)
  let sent = 0
  const timer = setInterval(() => {
    if (client.closed || sent >= bytes.length) return
    client.write(bytes.subarray(sent, sent + 1))
    sent++
  }, everyMs)
  try {
    await within(new Promise<void>((resolve) => client.socket.once('close', () => resolve())), limitMs, 'server closes the slow request')
  } finally {
    clearInterval(timer)
    client.destroy()
  }
  return client
}

test('a request sent byte by byte: headersTimeout answers 408 and closes', async (t) => {
  // Node checks headersTimeout every connectionsCheckingInterval (30 s by default).
  const server = await startServer(t, { app: { http: { headersTimeout: 300, connectionsCheckingInterval: 50 } } })
  // ~2 KB at one byte per 10 ms would take 20 s to complete.
  const client = await trickle(server.port, upgradeRequest('/echo', [`X-Pad: ${'p'.repeat(2000)}`]), 10, 5000)
  t.equal(client.status, 408)
  t.equal(client.body.toString(), TIMEOUT_BODY)
  await assertStillServes(t, server)
})

test('a request sent byte by byte: Fastify requestTimeout answers 408 and closes', async (t) => {
  const server = await startServer(t, { app: { requestTimeout: 300, http: { connectionsCheckingInterval: 50 } } })
  const client = await trickle(server.port, upgradeRequest('/echo', [`X-Pad: ${'p'.repeat(2000)}`]), 10, 5000)
  t.equal(client.status, 408)
  t.equal(client.body.toString(), TIMEOUT_BODY)
  await assertStillServes(t, server)
})

test('a request that stalls half-way: Fastify connectionTimeout closes the socket without an answer', async (t) => {
  const server = await startServer(t, { app: { connectionTimeout: 300 } })
  const client = await RawClient.connect(server.port)
  client.write('GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n')
  await client.waitClosed()
  t.equal(client.receivedBytes, 0, 'closed without a byte')
  await assertStillServes(t, server)
})

test('connectionTimeout does not reach an established WebSocket', async (t) => {
  const server = await startServer(t, { app: { connectionTimeout: 200 } })
  const client = await RawClient.open(server.port)
  await sleep(800)
  t.equal(client.closed, false, 'still open after 4 × connectionTimeout of silence')
  t.equal(client.frames.length, 0, 'nothing sent by the server')
  client.destroy()
  await assertStillServes(t, server)
})

test('pathological Sec-WebSocket-Protocol values are answered', async (t) => {
  const server = await startServer(t, { plugin: { protocols: ['chat'] } })
  const cases: Array<[label: string, value: string, status: number, chosen: string]> = [
    ['8 KB of ", , , ,"', ', '.repeat(4096), 101, ''],
    ['one 8 KB token', 't'.repeat(8192), 101, ''],
    ['an 8 KB token then chat', `${'t'.repeat(8192)}, chat`, 101, 'chat'],
    ['4,000 one-letter tokens then chat', `${'a,'.repeat(4000)}chat`, 101, 'chat'],
    ['8 KB of spaces inside a token', `a${' b'.repeat(4096)}`, 400, ''],
    ['8 KB of separators', '/'.repeat(8192), 400, '']
  ]
  for (const [label, value, status, chosen] of cases) {
    const client = await RawClient.connect(server.port)
    client.write(upgradeRequest('/echo', [`Sec-WebSocket-Protocol: ${value}`]))
    await client.waitResponse()
    t.equal(client.status, status, `${label}: ${status}`)
    t.equal(client.header('sec-websocket-protocol'), chosen, `${label}: subprotocol "${chosen}"`)
    if (status === 400) t.equal(client.body.toString(), 'malformed Sec-WebSocket-Protocol header')
    client.destroy()
  }
  await assertStillServes(t, server)
})

test('pathological Sec-WebSocket-Extensions values are answered', async (t) => {
  const plain = await startServer(t)
  const deflating = await startServer(t, { plugin: { perMessageDeflate: true } })
  const cases: Array<[label: string, value: string, status: number, withDeflate: string]> = [
    ['8 KB of ", , , ,"', ', '.repeat(4096), 101, ''],
    ['one 8 KB token', 'x'.repeat(8192), 101, ''],
    ['2,000 parameters', `permessage-deflate${'; p'.repeat(2000)}`, 101, ''],
    ['500 declined offers then a good one', `${'permessage-deflate; bogus, '.repeat(500)}permessage-deflate`, 101, 'permessage-deflate'],
    ['an unterminated 8 KB quoted value', `permessage-deflate; a="${'b'.repeat(8192)}`, 400, ''],
    ['a trailing ";" after 400 offers', 'permessage-deflate; '.repeat(400), 400, ''],
    ['8 KB of "="', `a=${'='.repeat(8192)}`, 400, '']
  ]
  for (const [label, value, status, withDeflate] of cases) {
    for (const [server, expected] of [[plain, ''], [deflating, withDeflate]] as const) {
      const client = await RawClient.connect(server.port)
      client.write(upgradeRequest('/echo', [`Sec-WebSocket-Extensions: ${value}`]))
      await client.waitResponse()
      const which = server === plain ? 'deflate off' : 'deflate on'
      t.equal(client.status, status, `${label}, ${which}: ${status}`)
      t.equal(client.header('sec-websocket-extensions'), expected, `${label}, ${which}: extensions "${expected}"`)
      if (status === 400) t.equal(client.body.toString(), 'malformed Sec-WebSocket-Extensions header')
      client.destroy()
    }
  }
  await assertStillServes(t, plain)
  await assertStillServes(t, deflating)
})
