/**
 * Writes queued during one tick leave together on the next: sockets that
 * queued the same frames (a fan-out) share one copy of them, whatever their
 * size, while a socket whose frames differ gets its own bytes; a 'drain'
 * listener that sends during that flush is flushed too; small frames copied
 * into the buffer shared over plain TCP survive a socket keeping them; a read
 * that publishes has its own frames written after the subscribers' copies.
 */
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455, { broadcast, type WebSocket } from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { clientFrame, start, withTimeout } from './helpers.js'

async function roomApp (t: Parameters<typeof start>[0], options: object = {}) {
  const app = Fastify()
  await app.register(fastifyRfc6455, options)
  const room: WebSocket[] = []
  app.get('/room', { ws: true }, (socket) => { room.push(socket) })
  const h = await start(t, app)
  const clients = [await h.client('/room'), await h.client('/room'), await h.client('/room'), await h.client('/room')]
  await withTimeout((async () => { while (room.length < clients.length) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 'four sockets')
  return { clients, room }
}

/** 3 KiB whose every byte is `n`: one tick of them passes the 4 KiB below which frames are always copied together. */
const message = (n: number): Buffer => Buffer.alloc(3 * 1024, n)

test('a tick of large broadcasts reaches each socket intact and in order, with a socket\'s own sends in their place', async (t) => {
  const { clients, room } = await roomApp(t)
  // Flushed in this order: the first and `odd` each on their own, then the last two share one copy.
  const [first, odd, third, last] = room
  for (let n = 0; n < 8; n++) {
    if (n === 3) {
      // `odd` gets a message of its own instead: as many frames as the others, not the same ones.
      broadcast([first, third, last], message(n))
      odd.send(message(99))
    } else {
      broadcast(room, message(n))
    }
  }
  t.ok([first, third, last].every((socket) => socket.bufferedAmount > 8 * 3 * 1024), 'all queued in this tick')
  for (const [index, client] of clients.entries()) {
    for (let n = 0; n < 8; n++) {
      const expected = index === 1 && n === 3 ? 99 : n
      const data = Buffer.from(await client.nextMessage() as ArrayBuffer)
      t.ok(data.length === 3 * 1024 && data.every((byte) => byte === expected), `socket ${index}, message ${n}`)
    }
  }
})

test('a \'drain\' listener that sends while the tick\'s writes are flushed gets its message out', async (t) => {
  const { clients, room } = await roomApp(t, { highWaterMark: 1024 })
  const [first, second] = room
  second.once('drain', () => first.send('sent from drain'))
  t.equal(second.send(Buffer.alloc(2048)), false, 'over highWaterMark: wait for drain')
  t.equal((await clients[1].nextMessage() as ArrayBuffer).byteLength, 2048)
  t.equal(await withTimeout(clients[0].nextMessage(), 'the message sent from the drain listener'), 'sent from drain')
})

test('frames a slow reader\'s socket keeps are not overwritten by the next tick\'s copies', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  let server: WebSocket | undefined
  app.get('/burst', { ws: true }, (socket) => { server = socket })
  const h = await start(t, app)
  const client = await h.rawWebSocket('/burst')
  await withTimeout((async () => { while (server === undefined) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 'the server socket')
  const socket = server as WebSocket
  client.socket.pause()
  // 16 frames of 3 KiB a tick: copied together into the shared buffer, until the kernel's buffers are full and the socket keeps them.
  const payload = (index: number): Buffer => {
    const bytes = Buffer.alloc(3 * 1024, index & 0xff)
    bytes.writeUInt32BE(index)
    return bytes
  }
  let sent = 0
  for (let tick = 0; tick < 2000 && socket.bufferedAmount < 1024 * 1024; tick++) {
    for (let i = 0; i < 16; i++) socket.send(payload(sent++))
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.ok(socket.bufferedAmount >= 1024 * 1024, `the socket kept ${socket.bufferedAmount} bytes`)
  client.socket.resume()
  let intact = 0
  for (let index = 0; index < sent; index++) {
    const frame = await withTimeout(client.readFrame(), `frame ${index}`)
    if (frame.payload.equals(payload(index))) intact++
  }
  t.equal(intact, sent, `all ${sent} frames intact and in order`)
})

test('a read that publishes gets its own frames written after every subscriber\'s copy', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  let open = 0
  app.get('/room', { ws: true }, (socket) => {
    socket.subscribe('room')
    open++
    socket.on('message', (data) => {
      app.websocket.publish('room', data)
      socket.send('published')
    })
  })
  const h = await start(t, app)
  const subscribers = []
  for (let i = 0; i < 8; i++) subscribers.push(await h.rawWebSocket('/room'))
  const publisher = await h.rawWebSocket('/room')
  await withTimeout((async () => { while (open < 9) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 'nine sockets')
  // The server's writes reach these sockets, in this process, in the order it made them.
  const arrivals: string[] = []
  subscribers.forEach((client, index) => client.socket.once('data', () => arrivals.push(`subscriber ${index}`)))
  publisher.socket.once('data', () => arrivals.push('publisher'))
  publisher.socket.write(clientFrame(Opcode.Text, 'hello'))
  for (const client of subscribers) t.equal((await client.readFrame()).payload.toString(), 'hello')
  t.same([(await publisher.readFrame()).payload.toString(), (await publisher.readFrame()).payload.toString()], ['hello', 'published'],
    'the publisher\'s copy, then its reply')
  t.equal(arrivals.length, 9)
  t.equal(arrivals.indexOf('publisher'), 8, `the publisher's frames came last: ${arrivals.join(', ')}`)
})
