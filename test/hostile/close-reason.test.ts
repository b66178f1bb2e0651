/**
 * A close reason longer than a close frame holds is cut to 123 bytes on a
 * UTF-8 character boundary (RFC 6455 §5.5.1: the reason is UTF-8), so the
 * peer reads the close code instead of failing with 1007 or 1006. The
 * reason here is a schema failure naming a client's JSON key of multi-byte
 * characters.
 */
import { isUtf8 } from 'node:buffer'
import { test } from 'tap'
import { WebSocket as UndiciWebSocket } from 'undici'
import { truncateReason } from '../../lib/protocol/session.js'
import { clientFrame, deferred, Opcode, RawClient, startServer, within } from './helpers.js'

/** "message does not match the schema: /" is 36 bytes: a 3-byte "€" then starts at byte 122 of the reason. */
const KEY = 'a'.repeat(86) + '€'.repeat(20)

test('a close reason cut at a multi-byte character stays UTF-8 and the client reads the code', async (t) => {
  const server = await startServer(t, {
    routes: (app) => app.get('/typed', {
      ws: { messages: 'json' },
      schema: { message: { type: 'object', additionalProperties: { type: 'number' } } }
    }, (socket) => { socket.on('message', () => {}) })
  })
  const raw = await RawClient.open(server.port, '/typed')
  raw.write(clientFrame(Opcode.Text, JSON.stringify({ [KEY]: 'not a number' })))
  const frame = await raw.waitCloseFrame()
  const body = raw.closeFrame()!.payload
  t.equal(frame.code, 1007, 'the close code of a schema failure')
  t.ok(body.length - 2 <= 123, `the reason fits a close frame (${body.length - 2} bytes)`)
  t.ok(isUtf8(body.subarray(2)), 'the reason is valid UTF-8')
  t.equal(frame.reason, `message does not match the schema: /${'a'.repeat(86)}`, 'cut before the character that does not fit')
  raw.destroy()

  // A real client: an invalid reason would make it fail the connection (1006) instead.
  const client = new UndiciWebSocket(`ws://127.0.0.1:${server.port}/typed`)
  const closed = deferred<number>()
  client.onopen = () => client.send(JSON.stringify({ [KEY]: 'not a number' }))
  client.onclose = (event) => closed.resolve(event.code)
  t.equal(await within(closed.promise, 5000, 'undici close'), 1007, 'undici reports 1007')
})

test('truncateReason cuts on character boundaries only', async (t) => {
  for (const character of ['é', '€', '😀']) {
    for (let prefix = 115; prefix <= 123; prefix++) {
      const reason = 'x'.repeat(prefix) + character.repeat(4)
      const cut = truncateReason(reason)
      t.ok(cut.length <= 123 && isUtf8(cut) && reason.startsWith(cut.toString()), `${prefix} + ${character}: ${cut.length} bytes`)
    }
  }
  t.equal(truncateReason('short').toString(), 'short')
})
