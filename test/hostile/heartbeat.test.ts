/**
 * The heartbeat is on by default: every 30 s the server pings each socket,
 * and one whose pong has not come back by the next ping is terminated, so an
 * idle socket whose peer vanished does not live forever. The interval runs
 * on node:test's mock timers (only `setInterval` is mocked): 30 s pass in a
 * tick, while the sockets' I/O stays real.
 */
import { mock } from 'node:test'
import { test } from 'tap'
import { clientFrame, Opcode, RawClient, sleep, startServer, until } from './helpers.js'

test('without options, a ping every 30 s and a socket that never answers is terminated', async (t) => {
  mock.timers.enable({ apis: ['setInterval'] })
  t.teardown(() => mock.timers.reset())
  const closes: number[] = []
  const server = await startServer(t, {
    routes: (app) => app.get('/idle', { ws: true }, (socket) => { socket.on('close', (code) => closes.push(code)) })
  })
  const silent = await RawClient.open(server.port, '/idle')
  const answering = await RawClient.open(server.port, '/idle')
  t.teardown(() => { silent.destroy(); answering.destroy() })

  mock.timers.tick(29_999)
  await sleep(50)
  t.equal(silent.frames.length, 0, 'nothing before 30 s')
  mock.timers.tick(1)
  await silent.waitFrames(1, 5000, 'the first ping')
  await answering.waitFrames(1, 5000, 'the first ping')
  t.equal(silent.frames[0].opcode, Opcode.Ping, 'a ping at 30 s')
  answering.write(clientFrame(Opcode.Pong, answering.frames[0].payload))
  await sleep(50)

  mock.timers.tick(30_000)
  await silent.waitClosed()
  t.pass('the socket that never answered is terminated at the next ping')
  await answering.waitFrames(2, 5000, 'the second ping')
  t.equal(answering.frames[1].opcode, Opcode.Ping, 'the socket that answered gets the next ping')
  t.notOk(answering.closed, 'and stays open')
  await until(() => closes.length === 1, 5000, 'close event')
  t.same(closes, [1006], 'the terminated socket reports 1006')
})
