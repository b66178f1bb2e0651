/**
 * Our own objects per idle connection, by class: an echo app and N raw TCP
 * clients in this process; once all N are upgraded and idle, a V8 heap
 * snapshot (node:v8 writeHeapSnapshot, which collects garbage first) is read
 * and the shallow sizes of the instances of each of our classes are summed
 * and divided by N. Shallow: an object's own fields, not what it points to
 * (arrays, buffers and closures it holds are listed under their own names).
 *   npx tsx bench/idle-objects.ts [N=2000]
 */
import { Buffer } from 'node:buffer'
import { readFileSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeHeapSnapshot } from 'node:v8'
import Fastify from 'fastify'
import fastifyRfc6455 from '../lib/index.js'

/** Classes of lib/ that a connection may own. */
const OURS = ['WebSocket', 'Connection', 'Session', 'MessageReader', 'FrameParser', 'Utf8Validator', 'PerMessageDeflate', 'TcpTransport', 'Http2Transport']

const n = Number(process.argv[2] ?? 2000)
const app = Fastify()
await app.register(fastifyRfc6455)
app.get('/', { ws: true }, (socket) => {
  socket.on('message', (data) => socket.send(data))
})
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as { port: number }).port

const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')

function open (): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    socket.once('data', (data) => {
      if (data.toString('latin1').startsWith('HTTP/1.1 101')) resolve(socket)
      else reject(new Error(`no upgrade: ${data.toString('latin1', 0, 40)}`))
    })
    socket.once('error', reject)
  })
}

const sockets: Socket[] = []
for (let i = 0; i < n; i += 100) {
  sockets.push(...await Promise.all(Array.from({ length: Math.min(100, n - i) }, open)))
}
await new Promise((resolve) => setTimeout(resolve, 200))

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[]] } }
  nodes: number[]
  strings: string[]
}
const file = writeHeapSnapshot(join(tmpdir(), `idle-objects-${process.pid}.heapsnapshot`))
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
rmSync(file)
const fields = snap.snapshot.meta.node_fields
const width = fields.length
const typeAt = fields.indexOf('type')
const nameAt = fields.indexOf('name')
const sizeAt = fields.indexOf('self_size')
const objectType = snap.snapshot.meta.node_types[0].indexOf('object')
const bytes = new Map<string, number>()
const counts = new Map<string, number>()
for (let i = 0; i < snap.nodes.length; i += width) {
  if (snap.nodes[i + typeAt] !== objectType) continue
  const name = snap.strings[snap.nodes[i + nameAt]]
  if (!OURS.includes(name)) continue
  bytes.set(name, (bytes.get(name) ?? 0) + snap.nodes[i + sizeAt])
  counts.set(name, (counts.get(name) ?? 0) + 1)
}

let total = 0
console.log(`${n} idle connections; shallow bytes per connection:`)
for (const [name, size] of [...bytes].sort((a, b) => b[1] - a[1])) {
  total += size / n
  console.log(`  ${name.padEnd(18)} ${(size / n).toFixed(1).padStart(7)}  (${counts.get(name) ?? 0} instances)`)
}
console.log(`  ${'total'.padEnd(18)} ${total.toFixed(1).padStart(7)}`)
for (const socket of sockets) socket.destroy()
await app.close()
