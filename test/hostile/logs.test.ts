/**
 * What a client chooses never makes a long log line: the plugin's own lines
 * cut client-derived strings (validation messages and the JSON keys in
 * their paths, request paths) to 200 characters, and leave the query
 * string (`?access_token=...`) out.
 */
import { test } from 'tap'
import { captureLogs, clientFrame, Opcode, RawClient, startServer, until } from './helpers.js'

const LONGEST_LINE = 2000

test('a schema failure on a 900,000-character JSON key: the log line stays short', async (t) => {
  const logs = captureLogs()
  const server = await startServer(t, {
    app: { logger: { level: 'info', stream: logs.stream }, bodyLimit: 2 * 1024 * 1024 },
    routes: (app) => app.get('/typed', {
      ws: { messages: 'json' },
      schema: { message: { type: 'object', additionalProperties: { type: 'number' } } }
    }, (socket) => { socket.on('message', () => {}) })
  })
  const client = await RawClient.open(server.port, '/typed')
  client.write(clientFrame(Opcode.Text, JSON.stringify({ ['k'.repeat(900_000)]: 'not a number' })))
  const { code } = await client.waitCloseFrame(10_000)
  t.equal(code, 1007)
  await until(() => logs.lines.some((line) => String(line.msg).startsWith('WebSocket failed')), 5000, 'the failure logged')
  const failed = logs.lines.find((line) => String(line.msg).startsWith('WebSocket failed'))!
  const length = JSON.stringify(failed).length
  t.ok(length < LONGEST_LINE, `the line is ${length} characters`)
  t.match(String(failed.msg), /900001 characters/, 'it says how long the cut text was')
  client.destroy()
})

test('refusals log the path, cut, without the query string', async (t) => {
  const logs = captureLogs()
  const server = await startServer(t, { app: { logger: { level: 'info', stream: logs.stream }, maxParamLength: 100_000 } })
  const longPath = '/' + 'p'.repeat(15_000)
  for (const target of [`${longPath}?access_token=secret`, `/nowhere?access_token=${'s'.repeat(15_000)}`]) {
    const client = await RawClient.connect(server.port)
    client.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    await client.waitResponse()
    t.equal(client.status, 404)
    client.destroy()
  }
  const post = await RawClient.connect(server.port)
  post.write(`POST /echo?access_token=secret HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n')
  await post.waitResponse()
  t.equal(post.status, 405)
  post.destroy()
  const own = logs.lines.filter((line) => String(line.msg).startsWith('WebSocket handshake refused'))
  t.equal(own.length, 3, 'three refusals logged')
  for (const line of own) {
    const text = JSON.stringify(line)
    t.ok(text.length < LONGEST_LINE, `${String(line.msg)}: ${text.length} characters`)
    t.notMatch(text, /access_token/, 'no query string')
  }
})
