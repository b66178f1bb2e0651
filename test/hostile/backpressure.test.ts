/**
 * Clients that send without reading. The server must stop reading once its
 * unsent backlog passes highWaterMark (so the client's own data waits in TCP
 * buffers, not in the server's memory), resume when the client reads, emit
 * 'drain' after send() returned false, and fail with 1008 past
 * maxBackpressure when the application keeps writing regardless.
 */
import { test } from 'tap'
import type { WebSocket } from '../../lib/index.js'
import { assertStillServes, captureLogs, clientFrame, Opcode, RawClient, sleep, startServer, until, within } from './helpers.js'

/** One TCP read of the server: Node reads up to 64 KiB at a time. */
const READ_CHUNK = 64 * 1024

/** Waits until `count()` has not moved for `quietMs` (the server stopped reading); bounded by `ms`. */
async function settles (count: () => number, quietMs: number, ms: number, label: string): Promise<void> {
  let last = -1
  let since = Date.now()
  await until(() => {
    const now = count()
    if (now !== last) {
      last = now
      since = Date.now()
    }
    return Date.now() - since >= quietMs
  }, ms, label)
}

/** A message whose first 4 bytes are its index, so that order and content are both checked. */
function indexed (index: number, size: number): Buffer {
  const payload = Buffer.alloc(size, index & 0xff)
  payload.writeUInt32BE(index, 0)
  return payload
}

test('echo to a client that never reads: reading pauses at highWaterMark, resumes with drain, every echo arrives', async (t) => {
  const highWaterMark = 16 * 1024
  const record = { messages: 0, maxBuffered: 0, falses: 0, drains: 0 }
  const server = await startServer(t, {
    plugin: { highWaterMark },
    routes (app) {
      app.get('/recorded', { ws: true }, (socket) => {
        socket.on('message', (data) => {
          record.messages++
          if (!socket.send(data)) record.falses++
          record.maxBuffered = Math.max(record.maxBuffered, socket.bufferedAmount)
        })
        socket.on('drain', () => { record.drains++ })
      })
    }
  })
  const client = await RawClient.open(server.port, '/recorded')
  client.pause()
  // 16 MiB in 1 KiB binary messages: more than the kernel buffers of both directions hold.
  const total = 16 * 1024
  const size = 1024
  for (let batch = 0; batch < total; batch += 256) {
    client.write(Buffer.concat(Array.from({ length: 256 }, (_, i) => clientFrame(Opcode.Binary, indexed(batch + i, size)))))
  }
  await settles(() => record.messages, 300, 15000, 'server stops reading')
  t.comment(`server read ${record.messages} of ${total} messages, max bufferedAmount ${record.maxBuffered}, send() false ${record.falses} times`)
  t.ok(record.messages < total, 'the server stopped reading while the client does not read')
  t.ok(record.falses > 0, 'send() returned false past highWaterMark')
  t.ok(record.maxBuffered <= highWaterMark + READ_CHUNK + size + 4,
    `bufferedAmount stayed under highWaterMark + one read's echoes (max ${record.maxBuffered})`)
  const drainsWhileStalled = record.drains
  await sleep(100)
  t.equal(record.drains, drainsWhileStalled, "no 'drain' while the client does not read")
  client.resume()
  await client.waitFrames(total, 20000, 'every echo')
  t.equal(record.messages, total, 'the server read everything once the client read')
  t.ok(record.drains > drainsWhileStalled, "'drain' came once the client read")
  let exact = 0
  for (const [index, frame] of client.frames.entries()) {
    if (frame.opcode === Opcode.Binary && frame.fin && frame.payload.equals(indexed(index, size))) exact++
  }
  t.equal(exact, total, 'every echo byte-exact, in order')
  t.ok(record.maxBuffered <= highWaterMark + READ_CHUNK + size + 4, `bufferedAmount bounded throughout (max ${record.maxBuffered})`)
  client.destroy()
  await assertStillServes(t, server)
})

test('highWaterMark under 16 KiB: reading resumes and drain comes once the client reads', async (t) => {
  // Node's socket emits 'drain' only after a write() that returned false,
  // that is with 16 KiB (its writableHighWaterMark) or more queued. With a
  // smaller highWaterMark the backlog can sit between the two.
  const highWaterMark = 1024
  const record = { messages: 0, afterFlush: 0, falses: 0, drains: 0, onRead: (): void => {} }
  const server = await startServer(t, {
    plugin: { highWaterMark, closeTimeout: 500 },
    routes (app) {
      app.get('/recorded', { ws: true }, (socket) => {
        socket.on('message', (data) => {
          if (!socket.send(data)) record.falses++
          // The connection flushes after each read: look at the backlog once it has.
          setImmediate(() => {
            record.afterFlush = socket.bufferedAmount
            record.messages++
            record.onRead()
          })
        })
        socket.on('drain', () => { record.drains++ })
      })
    }
  })
  const client = await RawClient.open(server.port, '/recorded')
  client.pause()
  const frame = clientFrame(Opcode.Binary, Buffer.alloc(8 * 1024, 0x62))
  // One 8 KiB message per read, until the kernel buffers are full and the echo waits in the socket.
  let sent = 0
  while (record.afterFlush <= highWaterMark) {
    const read = new Promise<void>((resolve) => { record.onRead = resolve })
    client.write(frame)
    sent++
    await within(read, 5000, `server reads message ${sent}`)
    if (sent > 10000) throw new Error('the backlog never grew')
  }
  t.comment(`backlog of ${record.afterFlush} bytes after ${sent} messages: reading paused`)
  client.write(frame)
  sent++
  client.resume()
  await until(() => record.messages === sent, 3000, 'the server reads again once the client reads').catch((error: Error) => {
    t.fail(`${error.message}: read ${record.messages} of ${sent}, echoes received ${client.frames.length}`)
  })
  t.equal(record.messages, sent, 'every message read')
  t.ok(record.falses > 0, 'send() returned false')
  t.ok(record.drains > 0, "'drain' came after send() returned false")
  client.destroy()
  await assertStillServes(t, server)
})

test("highWaterMark under 16 KiB: 'drain' follows a send() that returned false, with a client that reads", async (t) => {
  const events: string[] = []
  const server = await startServer(t, {
    plugin: { highWaterMark: 1024 },
    routes (app) {
      app.get('/big', { ws: true }, (socket) => {
        socket.on('drain', () => events.push('drain'))
        socket.on('message', () => { events.push(`send ${String(socket.send(Buffer.alloc(4096, 0x63)))}`) })
      })
    }
  })
  const client = await RawClient.open(server.port, '/big')
  client.write(clientFrame(Opcode.Text, 'go'))
  await client.waitFrames(1)
  t.equal(client.frames[0].payload.length, 4096, 'the 4 KiB message arrived')
  await until(() => events.includes('drain'), 2000, "'drain'").catch((error: Error) => t.fail(error.message))
  t.same(events, ['send false', 'drain'], "send() over highWaterMark returns false, then 'drain'")
  client.destroy()
  await assertStillServes(t, server)
})

test('an application that keeps writing to a client that never reads: 1008 past maxBackpressure', async (t) => {
  const maxBackpressure = 1024 * 1024
  const chunk = Buffer.alloc(64 * 1024, 0x64)
  const logs = captureLogs()
  const record = {
    errors: [] as Array<{ code: string, closeCode: number }>,
    closes: [] as Array<[number, string]>,
    maxBuffered: 0,
    sendsAfterFailure: [] as boolean[],
    readyState: -1
  }
  const server = await startServer(t, {
    app: { logger: { level: 'info', stream: logs.stream } },
    plugin: { highWaterMark: 16 * 1024, maxBackpressure, closeTimeout: 300 },
    routes (app) {
      app.get('/flood', { ws: true }, (socket: WebSocket) => {
        const timer = setInterval(() => {
          record.maxBuffered = Math.max(record.maxBuffered, socket.bufferedAmount)
          const sent = socket.send(chunk)
          if (record.errors.length > 0) record.sendsAfterFailure.push(sent)
        }, 1)
        socket.on('error', (error) => record.errors.push({ code: error.code, closeCode: error.closeCode }))
        socket.on('close', (code, reason) => {
          clearInterval(timer)
          record.closes.push([code, reason])
          record.readyState = socket.readyState
        })
      })
    }
  })
  const client = await RawClient.open(server.port, '/flood')
  client.pause()
  await until(() => record.closes.length > 0, 10000, 'server closes the connection')
  t.same(record.errors, [{ code: 'WS_ERR_BACKPRESSURE', closeCode: 1008 }], "one 'error' event: WS_ERR_BACKPRESSURE, close code 1008")
  t.same(record.closes, [[1006, '']], 'close event 1006: the client never sent a close frame')
  t.equal(record.readyState, 3, 'CLOSED')
  t.ok(record.sendsAfterFailure.every((sent) => !sent), 'send() returns false once failed')
  t.ok(record.maxBuffered <= maxBackpressure + chunk.length + 14, `backlog bounded by maxBackpressure + one message (max ${record.maxBuffered})`)
  const failures = logs.lines.filter((line) => line.code === 'WS_ERR_BACKPRESSURE')
  t.equal(failures.length, 1, 'logged once')
  t.equal(failures[0]?.level, 30, 'at info level')
  t.equal(failures[0]?.closeCode, 1008)
  client.resume()
  await client.waitClosed(10000)
  t.equal(client.closeFrame(), undefined, 'no close frame reached the client: it stayed behind the unsent backlog')
  await assertStillServes(t, server)
})

test('ping flood from a client that never reads: pongs bounded by highWaterMark, all delivered once it reads', async (t) => {
  const highWaterMark = 16 * 1024
  const record = { pings: 0, maxBuffered: 0 }
  const server = await startServer(t, {
    plugin: { highWaterMark },
    routes (app) {
      app.get('/pinged', { ws: true }, (socket) => {
        socket.on('ping', () => {
          record.pings++
          record.maxBuffered = Math.max(record.maxBuffered, socket.bufferedAmount)
        })
      })
    }
  })
  const client = await RawClient.open(server.port, '/pinged')
  client.pause()
  // 60,000 pings of 125 bytes: 7.6 MB of pongs, more than the kernel buffers hold.
  const total = 60000
  const payloadOf = (index: number): Buffer => Buffer.concat([Buffer.from(`ping ${index} `), Buffer.alloc(125, 0x70)]).subarray(0, 125)
  for (let batch = 0; batch < total; batch += 1000) {
    client.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => clientFrame(Opcode.Ping, payloadOf(batch + i)))))
  }
  await settles(() => record.pings, 300, 15000, 'server stops reading pings')
  t.comment(`server read ${record.pings} of ${total} pings, max bufferedAmount ${record.maxBuffered}`)
  t.ok(record.pings < total, 'the server stopped reading while the client does not read')
  t.ok(record.maxBuffered <= highWaterMark + READ_CHUNK, `pong backlog under highWaterMark + one read's pongs (max ${record.maxBuffered})`)
  client.resume()
  await client.waitFrames(total, 20000, 'every pong')
  t.equal(record.pings, total, 'every ping read')
  let exact = 0
  for (const [index, frame] of client.frames.entries()) {
    if (frame.opcode === Opcode.Pong && frame.payload.equals(payloadOf(index))) exact++
  }
  t.equal(exact, total, 'every pong carries its ping\'s payload, in order (RFC 6455 §5.5.3)')
  client.destroy()
  await sleep(10)
  await assertStillServes(t, server)
})
