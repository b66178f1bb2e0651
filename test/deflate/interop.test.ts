/**
 * Interoperability with `ws` 8, permessage-deflate on both sides: messages of
 * the sizes around every payload length boundary (RFC 6455 §5.2: 125/126,
 * 65535/65536) and the threshold (1023/1024/1025), up to maxPayload - 1
 * (1 MiB - 1, the app's default bodyLimit), text and binary, echoed
 * byte-exact. Binary payloads are pseudo-random (they do not compress: the
 * compressed form is a little longer than the message), text payloads are
 * words (they compress).
 */
import { test, type Test } from 'tap'
import { echoRoute, pseudoRandomBytes, pseudoRandomText, start, type WsClient } from './helpers.js'

const SIZES = [0, 1, 125, 126, 1023, 1024, 1025, 65535, 65536, 1024 * 1024 - 1]

/** Sends every size as text then binary, and checks each echo byte for byte. */
async function roundTrips (t: Test, client: WsClient, compress: boolean): Promise<void> {
  for (const size of SIZES) {
    for (const binary of [false, true]) {
      const sent = binary ? pseudoRandomBytes(size, size + 1) : pseudoRandomText(size, size + 1)
      await client.send(sent, { compress })
      const label = `${binary ? 'binary' : 'text'} of ${size} bytes`
      const reply = await client.nextMessage().catch(() => null)
      if (reply === null) {
        const close = await client.waitClose()
        t.fail(`${label}: no echo; the server closed the connection with ${close.code} "${close.reason}"`)
        return
      }
      const { data, isBinary } = reply
      t.equal(isBinary, binary, `${label}: opcode kept`)
      t.ok(data.equals(Buffer.from(sent)), `${label}: echoed byte-exact (${data.length} bytes back)`)
    }
  }
}

test('ws compresses every message (threshold 0); the server echoes by its threshold', async (t) => {
  const harness = await start(t, { perMessageDeflate: true }, (app) => echoRoute(app))
  const client = await harness.ws('/echo', { perMessageDeflate: { threshold: 0 } })
  t.equal(client.extensionsHeader, 'permessage-deflate')
  await roundTrips(t, client, true)
})

test('ws sends uncompressed; the server compresses every echo', async (t) => {
  const harness = await start(t, { perMessageDeflate: true }, (app) => echoRoute(app))
  const client = await harness.ws('/echo?compress=always', { perMessageDeflate: { threshold: 0 } })
  await roundTrips(t, client, false)
})

test('both sides without context takeover and with 9-bit windows', async (t) => {
  const harness = await start(t, { perMessageDeflate: { serverMaxWindowBits: 9, clientMaxWindowBits: 9 } }, (app) => echoRoute(app))
  const client = await harness.ws('/echo?compress=always', {
    perMessageDeflate: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true }
  })
  t.equal(client.extensionsHeader, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9')
  await roundTrips(t, client, true)
})
