/**
 * The conformance suite over HTTP/2: every case file of this directory, run
 * in this process with one HTTP/2 stream per client (an extended CONNECT,
 * RFC 8441) instead of a TCP connection. The cases are the same; only the
 * transport of test/conformance/client.ts changes.
 */
import t from 'tap'

process.env.CONFORMANCE_TRANSPORT = 'http2'
const { TRANSPORT } = await import('./client.js')
t.equal(TRANSPORT, 'http2', 'the cases below connect over HTTP/2 streams')

await import('./s1-framing.test.js')
await import('./s2-pings.test.js')
await import('./s3-reserved-bits.test.js')
await import('./s4-opcodes.test.js')
await import('./s5-fragmentation.test.js')
await import('./s6-utf8.test.js')
await import('./s7-close.test.js')
await import('./s9-limits.test.js')
await import('./s10-autofragmentation.test.js')
