/**
 * The HTTP/2 load client (RFC 8441): like bench/client.ts, a process of its
 * own on the client core, told a ClientJob on the command line and printing
 * one PhaseResult line per phase; but every WebSocket is a stream of a
 * node:http2 client session to a cleartext (h2c) server, opened with an
 * extended CONNECT once the server's SETTINGS allow it (§3, §4).
 *
 *   node --import tsx bench/h2client.ts '<ClientJob as JSON>'
 *
 *   echo       `conns` WebSockets spread evenly over `sessions` connections
 *              (default 1), each keeping `window` binary messages in flight
 *   handshake  on one connection opened beforehand, `parallel` loops of:
 *              CONNECT, :status 200, masked close frame, the server's close
 *              frame and END_STREAM, our END_STREAM
 *
 * The client's receive windows (per stream and per connection) are opened to
 * 16 MiB, so that what limits the echoes is the server's side, its windows
 * left at Node's defaults (64 KiB - 1) as an app gets them. Idle and fan-out
 * phases are bench/client.ts's only.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import { type EchoLink, driveEcho, driveHandshakes } from './drivers.js'
import type { ClientJob, EchoPhase, HandshakePhase, PhaseResult } from './types.js'
import { type FrameReader, SERVER_CLOSE, guardOpening, sleep } from './wire.js'

const HOST = '127.0.0.1'
/** Bytes of each receive window of the client, stream and connection. */
const RECEIVE_WINDOW = 16 * 1024 * 1024
const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants

const job = JSON.parse(process.argv[2]) as ClientJob
/** The extended CONNECT of RFC 8441 §4 (no Sec-WebSocket-Key, §5). */
const CONNECT = {
  ':method': 'CONNECT',
  ':protocol': 'websocket',
  ':scheme': 'http',
  ':path': '/',
  ':authority': `${HOST}:${job.port}`,
  'sec-websocket-version': '13'
}

/** Opens an h2c session and resolves once the server's SETTINGS advertise SETTINGS_ENABLE_CONNECT_PROTOCOL. */
function connect (): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${HOST}:${job.port}`, { settings: { initialWindowSize: RECEIVE_WINDOW } })
    const { fail, opened } = guardOpening(session, 'no SETTINGS from the server', reject)
    session.once('remoteSettings', (settings) => {
      if (settings.enableConnectProtocol !== true) {
        fail(new Error('the server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)'))
        return
      }
      opened()
      session.setLocalWindowSize(RECEIVE_WINDOW)
      resolve(session)
    })
  })
}

/** One WebSocket: a CONNECT stream answered with :status 200. */
function openStream (session: ClientHttp2Session): Promise<ClientHttp2Stream> {
  return new Promise((resolve, reject) => {
    const stream = session.request(CONNECT, { endStream: false })
    stream.once('error', reject)
    stream.once('response', (headers) => {
      stream.off('error', reject)
      stream.on('error', () => {})
      if (headers[':status'] !== 200) {
        stream.close(NGHTTP2_CANCEL)
        reject(new Error(`CONNECT refused: :status ${headers[':status']}`))
        return
      }
      resolve(stream)
    })
  })
}

/** One echoing WebSocket: its stream and its reader. */
interface Link extends EchoLink<Link> {
  stream: ClientHttp2Stream
}

/** Echo over CONNECT streams (see bench/drivers.ts), spread evenly over `sessions` connections. */
async function echo (phase: EchoPhase): Promise<PhaseResult> {
  const sessions = await Promise.all(Array.from({ length: phase.sessions ?? 1 }, connect))
  return await driveEcho<Link>(phase, job, {
    open: async (count, makeReader) => {
      const opened = await Promise.allSettled(Array.from({ length: count }, (_, i) => openStream(sessions[i % sessions.length])))
      const links = opened.flatMap((s) => s.status === 'fulfilled' ? [echoLink(s.value, makeReader())] : [])
      return { links, failed: count - links.length }
    },
    write: (link, data) => link.stream.write(data),
    close: () => {
      for (const session of sessions) session.destroy()
    }
  })
}

/** A Link on `stream`, passing the frames each chunk completes to its `onFrames`. */
function echoLink (stream: ClientHttp2Stream, reader: FrameReader): Link {
  const link: Link = { stream, reader, onFrames: () => {}, slot: 0, head: 0 }
  stream.on('data', (chunk: Buffer) => {
    const done = reader.read(chunk)
    if (done > 0) link.onFrames(link, done)
  })
  return link
}

/** Handshakes (see bench/drivers.ts): CONNECT streams opened and closed on one connection opened beforehand. */
async function handshakes (phase: HandshakePhase): Promise<PhaseResult> {
  const session = await connect()
  const result = await driveHandshakes(phase, job, (closeFrame, done) => {
    const stream = session.request(CONNECT, { endStream: false })
    let response: Buffer = Buffer.alloc(0)
    let step = 0 // 0: awaiting :status 200, 1: awaiting the close frame, 2: done
    stream.setTimeout(10000, () => stream.close(NGHTTP2_CANCEL))
    stream.on('error', () => {})
    stream.once('response', (headers) => {
      if (headers[':status'] !== 200) {
        stream.close(NGHTTP2_CANCEL)
        return
      }
      step = 1
      stream.write(closeFrame)
    })
    stream.on('data', (chunk: Buffer) => {
      response = response.length === 0 ? chunk : Buffer.concat([response, chunk])
      if (step !== 1 || response.length < SERVER_CLOSE.length) return
      if (!response.subarray(0, SERVER_CLOSE.length).equals(SERVER_CLOSE)) {
        stream.close(NGHTTP2_CANCEL)
        return
      }
      step = 2
    })
    stream.on('end', () => stream.end())
    stream.on('close', () => done(step === 2 && stream.rstCode === NGHTTP2_NO_ERROR))
  })
  session.destroy()
  return result
}

for (const phase of job.phases) {
  if (phase.kind === 'fanout') throw new Error('bench/h2client.ts runs echo and handshake phases only')
  const result = phase.kind === 'echo' ? await echo(phase) : await handshakes(phase)
  process.stdout.write(JSON.stringify(result) + '\n')
  await sleep(0.2)
}
process.exit(0)
