/**
 * Hostile framing: messages cut into thousands of one-byte fragments
 * (RFC 6455 §5.4), and frame headers that declare payloads far beyond
 * maxPayload (§5.2, §10.4). Memory is checked with figures from a forced
 * garbage collection, against generous bounds.
 */
import { test } from 'tap'
import {
  assertStillServes, clientFrame, closeBody, heldBytes, MASKING_KEY, Opcode, RawClient, sleep, startServer, until
} from './helpers.js'

/** 16,001 bytes of UTF-8 whose characters take 1 to 4 bytes, so that one-byte fragments cut them everywhere. */
const MESSAGE = Buffer.from('a€é𝄞'.repeat(1600) + 'z', 'utf8')

/**
 * `message` as one-byte masked frames: Text (FIN clear), then Continuation
 * frames; FIN set on the last one only when `final`. Written as one buffer
 * of 7-byte frames.
 */
function oneByteFragments (message: Uint8Array, from: number, to: number, final: boolean): Buffer {
  const out = Buffer.allocUnsafe((to - from) * 7)
  for (let i = from; i < to; i++) {
    const at = (i - from) * 7
    const last = final && i === message.length - 1
    out[at] = (last ? 0x80 : 0) | (i === 0 ? Opcode.Text : Opcode.Continuation)
    out[at + 1] = 0x80 | 1
    MASKING_KEY.copy(out, at + 2)
    out[at + 6] = message[i] ^ MASKING_KEY[0]
  }
  return out
}

test('16,000 one-byte fragments then the final one, 10 connections at once: echoed whole, memory bounded', async (t) => {
  const server = await startServer(t)
  const clients = await Promise.all(Array.from({ length: 10 }, () => RawClient.open(server.port)))
  const before = heldBytes()
  const fragments = MESSAGE.length - 1
  await Promise.all(clients.map(async (client, index) => {
    for (let from = 0; from < fragments; from += 1000) {
      client.write(oneByteFragments(MESSAGE, from, Math.min(from + 1000, fragments), false))
    }
    // A ping between fragments is allowed (§5.4); its pong proves every fragment before it was read.
    client.write(clientFrame(Opcode.Ping, `sync ${index}`))
    await client.waitFrames(1, 10000, `pong after 16,000 fragments on connection ${index}`)
  }))
  const during = heldBytes()
  const perConnection = (during - before) / clients.length
  t.comment(`held bytes: ${before} before, ${during} with 10 incomplete messages of 16,000 fragments: ${Math.round(perConnection)} bytes per connection`)
  t.ok(perConnection < 4 * 1024 * 1024, 'under 4 MB per connection holding an incomplete message')
  for (const [index, client] of clients.entries()) {
    t.same(client.frames.map((f) => [f.opcode, f.payload.toString()]), [[Opcode.Pong, `sync ${index}`]], 'only the pong so far')
    client.write(oneByteFragments(MESSAGE, fragments, MESSAGE.length, true))
  }
  for (const client of clients) {
    const [, echo] = await client.waitFrames(2, 10000, 'echo of the reassembled message')
    t.equal(echo.opcode, Opcode.Text)
    t.equal(echo.fin, true, 'echoed as one frame')
    t.ok(echo.payload.equals(MESSAGE), 'byte-exact, 16,001 bytes')
    client.destroy()
  }
  await assertStillServes(t, server)
})

test('262,144 one-byte fragments (1.8 MB on the wire) are reassembled in time linear in their number', async (t) => {
  // Reassembly that grows its buffer by one fragment at a time copies
  // n²/2 bytes: 3.4 × 10^10 here, tens of seconds of CPU on the event loop,
  // and 12 minutes for a 1 MiB message (the default maxPayload). A doubling
  // buffer echoes it in well under a second; the bound is generous.
  const server = await startServer(t, { plugin: { closeTimeout: 500 } })
  const message = Buffer.alloc(256 * 1024, 'f')
  const client = await RawClient.open(server.port)
  t.teardown(() => client.destroy())
  client.write(oneByteFragments(message, 0, message.length, true))
  const [echo] = await client.waitFrames(1, 10000, 'echo of a 256 KiB message sent as 262,144 fragments')
  t.equal(echo.opcode, Opcode.Text)
  t.equal(echo.payload.length, message.length)
  t.ok(echo.payload.equals(message), 'byte-exact')
  client.destroy()
  await assertStillServes(t, server)
})

/** A masked frame header declaring `length` bytes (64-bit extended payload length, §5.2) and no payload. */
function hugeHeader (opcode: number, high: number, low: number): Buffer {
  const header = Buffer.alloc(14)
  header[0] = 0x80 | opcode
  header[1] = 0x80 | 127
  header.writeUInt32BE(high, 2)
  header.writeUInt32BE(low, 6)
  MASKING_KEY.copy(header, 10)
  return header
}

test('a header declaring 2^40 bytes with no payload: close 1009 at once, nothing allocated', async (t) => {
  const errors: Array<{ code: string, closeCode: number }> = []
  const closes: number[] = []
  const server = await startServer(t, {
    routes (app) {
      app.get('/watched', { ws: true }, (socket) => {
        socket.on('error', (error) => errors.push({ code: error.code, closeCode: error.closeCode }))
        socket.on('close', (code) => closes.push(code))
      })
    }
  })
  const client = await RawClient.open(server.port, '/watched')
  const before = heldBytes()
  client.write(hugeHeader(Opcode.Binary, 0x100, 0)) // 2^40
  const close = await client.waitCloseFrame()
  t.same(close, { code: 1009, reason: 'message exceeds maxPayload of 1048576 bytes' }, 'close 1009 before any payload')
  t.equal(client.frames.length, 1, 'nothing but the close frame')
  await until(() => client.ended, 5000, 'server ends TCP (FIN)')
  t.ok(heldBytes() - before < 1024 * 1024, 'under 1 MB more memory held')
  client.write(clientFrame(Opcode.Close, closeBody(1009)))
  await client.waitClosed()
  await until(() => closes.length > 0, 5000, 'server close event')
  t.same(errors, [{ code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', closeCode: 1009 }], "one 'error' event")
  t.same(closes, [1006], 'close event 1006: the server stopped reading when it failed the connection')
  await assertStillServes(t, server)
})

test('a 64-bit payload length with its most significant bit set: close 1002', async (t) => {
  const server = await startServer(t)
  const client = await RawClient.open(server.port)
  client.write(hugeHeader(Opcode.Binary, 0x80000000, 0))
  t.same(await client.waitCloseFrame(), { code: 1002, reason: '64-bit payload length has its most significant bit set' })
  client.destroy()
  await assertStillServes(t, server)
})

test('with maxPayload over 2^40, a declared 2^40 allocates only what arrives', async (t) => {
  const server = await startServer(t, { plugin: { maxPayload: 2 ** 41 } })
  const client = await RawClient.open(server.port)
  const before = heldBytes()
  // A binary frame of 2^40 bytes, FIN set, then 1 MiB of its payload.
  client.write(hugeHeader(Opcode.Binary, 0x100, 0))
  const piece = Buffer.alloc(64 * 1024, 0x5a)
  for (let i = 0; i < 16; i++) client.write(piece)
  // The server is still in the frame's payload: a ping now is payload, not a frame. Wait for the bytes to be read.
  await until(() => client.socket.writableLength === 0, 5000, 'client writes handed to the kernel')
  await sleep(100)
  const growth = heldBytes() - before
  t.comment(`held bytes grew by ${growth} after 1 MiB of a 2^40-byte frame`)
  t.ok(growth < 8 * 1024 * 1024, 'under 8 MB: proportional to the 1 MiB received')
  t.equal(client.frames.length, 0, 'nothing sent back')
  t.equal(client.closed, false, 'still open')
  client.destroy()
  await assertStillServes(t, server)
})
