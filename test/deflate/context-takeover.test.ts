/**
 * Many messages on one connection with `ws` 8 compressing on the client side
 * (RFC 7692 §7.2.1, §7.2.2): with context takeover (each message compressed
 * on the window of the ones before, both ways) and without it
 * (server_no_context_takeover and client_no_context_takeover negotiated),
 * compressed and uncompressed messages, text and binary, and pings
 * interleaved; every echo byte-exact and in order. The server's TCP byte
 * counts show that compression happened on the wire both ways.
 */
import type { Socket } from 'node:net'
import { test, type Test } from 'tap'
import type { ClientOptions } from 'ws'
import { Opcode } from '../../lib/protocol/constants.js'
import { compressMessage, ContextInflater, pseudoRandomBytes, start, type Teardown, type WsClient } from './helpers.js'

/** An echo app with permessage-deflate; the server side's TCP socket of each connection is collected. */
async function echoApp (t: Teardown, sockets: Socket[]) {
  return start(t, { perMessageDeflate: true }, (app) => {
    app.get('/echo', { ws: true }, (socket, request) => {
      sockets.push(request.raw.socket)
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString('utf8')))
    })
  })
}

/** Message i of the exchange: repetitive records (so they compress well) of a size that varies from 11 bytes to about 8 KB. */
function message (i: number): string | Buffer {
  const records = 1 + (i * 37) % 200
  const text = Array.from({ length: records }, (_, r) => `{"id":${i},"row":${r},"name":"user-${r % 7}","ok":true}`).join('\n')
  return i % 2 === 0 ? text : Buffer.from(text.toUpperCase())
}

/** Sends `count` messages, compressed or not by turns, with a ping every 10th, then checks every echo and pong. */
async function exchange (t: Test, client: WsClient, count: number): Promise<number> {
  let total = 0
  for (let i = 0; i < count; i++) {
    const data = message(i)
    total += data.length
    await client.send(data, { compress: i % 3 !== 0 })
    if (i % 10 === 0) client.ws.ping(`ping ${i}`)
  }
  let mismatches = 0
  for (let i = 0; i < count; i++) {
    const { data, isBinary } = await client.nextMessage()
    const expected = message(i)
    if (isBinary !== Buffer.isBuffer(expected) || !data.equals(Buffer.from(expected))) mismatches++
  }
  t.equal(mismatches, 0, `${count} messages echoed byte-exact, with their opcode, in order`)
  const pongs: string[] = []
  for (let i = 0; i < count; i += 10) pongs.push((await client.nextPong()).toString())
  t.same(pongs, Array.from({ length: Math.ceil(count / 10) }, (_, k) => `ping ${k * 10}`), 'every ping answered, in order')
  return total
}

/**
 * Sends the same 4000-character message 10 times and returns the TCP bytes
 * each way. Alone it compresses to about 3/4 (base64 of random bytes); with
 * context takeover each copy after the first is one back-reference to the
 * copy before it, a few bytes.
 */
async function repeats (client: WsClient, server: Socket): Promise<{ read: number, written: number, single: number }> {
  const text = pseudoRandomBytes(3000, 99).toString('base64')
  const read = server.bytesRead
  const written = server.bytesWritten
  for (let i = 0; i < 10; i++) await client.send(text, { compress: true })
  for (let i = 0; i < 10; i++) {
    const { data } = await client.nextMessage()
    if (data.toString() !== text) throw new Error(`copy ${i} was not echoed intact`)
  }
  return { read: server.bytesRead - read, written: server.bytesWritten - written, single: compressMessage(Buffer.from(text)).length }
}

const COUNT = 300

test('context takeover both ways: 300 messages with ws, compressed and not, text and binary, pings between', async (t) => {
  const sockets: Socket[] = []
  const harness = await echoApp(t, sockets)
  const client = await harness.ws('/echo', { perMessageDeflate: { threshold: 0 } })
  t.equal(client.extensionsHeader, 'permessage-deflate', 'ws offers client_max_window_bits; the server answers plainly')
  const total = await exchange(t, client, COUNT)
  const [server] = sockets
  // ws sends 2/3 of the messages compressed and the server compresses those of 1024 bytes
  // or more: on such repetitive data, compression shows as a fraction of the bytes.
  t.ok(server.bytesRead < total / 2, `client to server: ${server.bytesRead} bytes on the wire for ${total} bytes of messages`)
  t.ok(server.bytesWritten < total / 4, `server to client: ${server.bytesWritten} bytes on the wire for ${total} bytes of messages`)
  t.comment(`context takeover: ${total} bytes of messages; read ${server.bytesRead}, written ${server.bytesWritten}`)
  const { read, written, single } = await repeats(client, server)
  t.ok(read < 2 * single, `10 copies of a message that compresses alone to ${single} bytes: ${read} bytes read (ws shares its window)`)
  t.ok(written < 2 * single, `and ${written} bytes written (the server shares its window)`)
})

test('no context takeover both ways (server_no_context_takeover; client_no_context_takeover): the same exchange', async (t) => {
  const sockets: Socket[] = []
  const harness = await echoApp(t, sockets)
  const options: ClientOptions = { perMessageDeflate: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true } }
  const client = await harness.ws('/echo', options)
  t.equal(client.extensionsHeader, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover')
  const total = await exchange(t, client, COUNT)
  const [server] = sockets
  t.ok(server.bytesRead < total / 2, `client to server: ${server.bytesRead} bytes for ${total}`)
  t.ok(server.bytesWritten < total / 4, `server to client: ${server.bytesWritten} bytes for ${total}`)
  t.comment(`no context takeover: ${total} bytes of messages; read ${server.bytesRead}, written ${server.bytesWritten}`)
  const { read, written, single } = await repeats(client, server)
  t.ok(read >= 10 * single, `10 copies of a message that compresses alone to ${single} bytes: ${read} bytes read (each on an empty window)`)
  t.ok(written >= 10 * single, `and ${written} bytes written: the server resets its compressor after each message`)
})

test('small windows: ws asks server_max_window_bits=10 and client_max_window_bits=9, then 8 and 8', async (t) => {
  const sockets: Socket[] = []
  const harness = await echoApp(t, sockets)
  for (const [server, client] of [[10, 9], [8, 8]]) {
    const ws = await harness.ws('/echo', { perMessageDeflate: { threshold: 0, serverMaxWindowBits: server, clientMaxWindowBits: client } })
    t.equal(ws.extensionsHeader, `permessage-deflate; server_max_window_bits=${server}; client_max_window_bits=${client}`)
    await exchange(t, ws, 60)
  }
})

test('server_max_window_bits=8: what the server sends inflates with a 256-byte window', async (t) => {
  // zlib cannot compress raw DEFLATE with 8 window bits and uses 9, but its
  // longest distance is then 512 - 262 = 250 bytes: within a 256-byte window.
  const sockets: Socket[] = []
  const harness = await echoApp(t, sockets)
  const raw = await harness.rawWebSocket('/echo', 'permessage-deflate; server_max_window_bits=8')
  t.equal(raw.response?.headers['sec-websocket-extensions'], 'permessage-deflate; server_max_window_bits=8')
  const inflater = new ContextInflater(8)
  for (const period of [100, 200, 255, 256, 300, 400, 500]) {
    // A block of `period` varied bytes, repeated: matches at distance `period`, if the window allows.
    const block = Array.from({ length: period }, (_, k) => String.fromCharCode(0x21 + (k * 7919 + period) % 94)).join('')
    const text = block.repeat(Math.ceil(3000 / period))
    raw.sendFrame(Opcode.Text, text)
    const frame = await raw.readFrame()
    t.equal(frame.bytes[0], 0xc1, `period ${period}: compressed`)
    t.equal(inflater.inflate(frame.payload).toString(), text, `period ${period}: inflates with an 8-bit window`)
  }
})
