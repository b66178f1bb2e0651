/**
 * Autobahn section 6, UTF-8 Handling. "When an endpoint is to interpret a byte
 * stream as UTF-8 but finds that the byte stream is not, in fact, a valid
 * UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_" (RFC 6455
 * §8.1), with 1007: "an endpoint is terminating the connection because it has
 * received data within a message that was not consistent with the type of
 * the message (e.g., non-UTF-8 [RFC3629] data within a text message)" (§7.4.1).
 *
 * - 6.1-6.3: empty fragments, valid text cut on and inside code points,
 *   invalid text whole and one byte per frame;
 * - 6.4: fail fast: the close 1007 must come as soon as the invalid byte
 *   arrives, before the rest of the message is sent (Autobahn's strict "OK");
 * - 6.5-6.23: Markus Kuhn's UTF-8 decoder test cases, as Autobahn numbers
 *   them: valid ones echoed byte for byte, invalid ones failed with 1007. Each
 *   is also sent one byte per frame (beyond Autobahn, which sends these in
 *   one frame) to exercise the validator across frame boundaries.
 *
 * Every table entry's validity is also checked against the WHATWG decoder,
 * so a typo in the table cannot pass silently.
 */
import t, { type Test } from 'tap'
import {
  closeAfter, connect, continuation, echoServerFor, expectServerCloses, fragments, isWellFormedUtf8, OP,
  type RawClient, repeat, text
} from './client.js'

const server = await echoServerFor(t)

/** Bytes from hex pairs separated by spaces. */
const x = (hex: string): Buffer => Buffer.from(hex.replace(/ /g, ''), 'hex')
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1')

/** κόσμε: Greek "kosme", 2- and 3-byte sequences (the UTF-8 test file's first line). */
const KOSME = x('ce ba e1 bd b9 cf 83 ce bc ce b5')

/** Sends a text message in one frame, or one payload byte per frame. */
async function sendText (client: RawClient, payload: Buffer, perOctet: boolean): Promise<void> {
  await client.send(...(perOctet ? fragments(OP.text, payload, 1) : [text(payload)]))
}

async function expectEchoOrFail (t: Test, payload: Buffer, valid: boolean, perOctet: boolean): Promise<void> {
  const client = await connect(t, server)
  await sendText(client, payload, perOctet)
  if (valid) await closeAfter(t, client, [{ text: payload }])
  else await expectServerCloses(t, client, [{ close: 1007 }])
}

// 6.1 Valid UTF-8 with zero payload fragments

t.test('6.1.1: text message of length 0 is echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(text(''))
  await closeAfter(t, client, [{ text: '' }])
})

t.test('6.1.2: text message in 3 fragments of length 0 is echoed empty', async (t) => {
  const client = await connect(t, server)
  await client.send(text('', { fin: false }), continuation('', { fin: false }), continuation(''))
  await closeAfter(t, client, [{ text: '' }])
})

t.test('6.1.3: 3 fragments, first and last empty: the middle payload is echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(text('', { fin: false }), continuation('middle frame payload', { fin: false }), continuation(''))
  await closeAfter(t, client, [{ text: 'middle frame payload' }])
})

// 6.2 Valid UTF-8 unfragmented, fragmented on code points and within code points

const HELLO = Buffer.from('Hello-µ@ßöäüàá-UTF-8!!', 'utf8')

t.test('6.2.1: valid UTF-8 text message in one frame is echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(text(HELLO))
  await closeAfter(t, client, [{ text: HELLO }])
})

t.test('6.2.2: valid UTF-8 text message in 2 fragments cut on a code point boundary is echoed', async (t) => {
  const part1 = Buffer.from('Hello-µ@ßöä', 'utf8')
  const part2 = Buffer.from('üàá-UTF-8!!', 'utf8')
  const client = await connect(t, server)
  await client.send(text(part1, { fin: false }), continuation(part2))
  await closeAfter(t, client, [{ text: Buffer.concat([part1, part2]) }])
})

t.test('6.2.3: valid UTF-8 text message in fragments of 1 byte is echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(...fragments(OP.text, HELLO, 1))
  await closeAfter(t, client, [{ text: HELLO }])
})

t.test('6.2.4: κόσμε in fragments of 1 byte is echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(...fragments(OP.text, KOSME, 1))
  await closeAfter(t, client, [{ text: KOSME }])
})

// 6.3 Invalid UTF-8 differently fragmented

/** κόσμε, then U+D800 (a surrogate: invalid at its second byte, 0xa0, the 12th of the payload), then "edited". */
const SURROGATE_PAYLOAD = Buffer.concat([KOSME, x('ed a0 80'), ascii('edited')])

t.test('6.3.1: invalid UTF-8 text message in one frame fails with 1007', async (t) => {
  await expectEchoOrFail(t, SURROGATE_PAYLOAD, false, false)
})

t.test('6.3.2: invalid UTF-8 text message in fragments of 1 byte fails with 1007', async (t) => {
  await expectEchoOrFail(t, SURROGATE_PAYLOAD, false, true)
})

// 6.4 Fail-fast on invalid UTF-8

/** κόσμε, then 0x110000 encoded as in the UTF-8 scheme (past U+10FFFF: invalid at 0x90, the 12th byte), then "edited". */
const PART1 = KOSME
const PART2 = x('f4 90 80 80')
const PART3 = ascii('edited')
const PAYLOAD = Buffer.concat([PART1, PART2, PART3])

/**
 * Sends `parts` with a wait after the first: nothing may happen then (the
 * bytes so far are valid UTF-8); after the second, which holds the invalid
 * byte, the close 1007 and the end of the TCP connection must come before the
 * third part is sent. The third part is never sent.
 */
async function failFast (t: Test, client: RawClient, parts: [Buffer, Buffer, Buffer]): Promise<void> {
  await client.send(parts[0])
  t.same(await client.quiet(100), { frames: 0, serverEnded: false }, 'part 1 is valid so far: no reaction')
  await client.send(parts[1])
  await expectServerCloses(t, client, [{ close: 1007 }])
  t.equal(client.bytesSent, parts[0].length + parts[1].length, 'the close came before part 3 was sent')
}

t.test('6.4.1: 3 frames, the 2nd makes the text invalid: 1007 before the 3rd is sent', async (t) => {
  const client = await connect(t, server)
  await failFast(t, client, [text(PART1, { fin: false }), continuation(PART2, { fin: false }), continuation(PART3)])
})

t.test('6.4.2: as 6.4.1, the 2nd frame holding only the invalid byte: 1007 before the 3rd is sent', async (t) => {
  const client = await connect(t, server)
  await failFast(t, client, [
    text(PAYLOAD.subarray(0, 12), { fin: false }),
    continuation(PAYLOAD.subarray(12, 13), { fin: false }),
    continuation(PAYLOAD.subarray(13))
  ])
})

t.test('6.4.3: one frame cut in 3 chops, the 2nd makes the text invalid: 1007 before the 3rd is sent', async (t) => {
  const bytes = text(PAYLOAD)
  const header = bytes.length - PAYLOAD.length
  const cut1 = header + PART1.length
  const cut2 = cut1 + PART2.length
  const client = await connect(t, server)
  await failFast(t, client, [bytes.subarray(0, cut1), bytes.subarray(cut1, cut2), bytes.subarray(cut2)])
})

t.test('6.4.4: as 6.4.3, the 2nd chop holding only the invalid byte: 1007 before the 3rd is sent', async (t) => {
  const bytes = text(PAYLOAD)
  const header = bytes.length - PAYLOAD.length
  const client = await connect(t, server)
  await failFast(t, client, [bytes.subarray(0, header + 12), bytes.subarray(header + 12, header + 13), bytes.subarray(header + 13)])
})

t.test('extra: fail fast inside one large frame: 1007 before the rest of its payload is sent', async (t) => {
  const payload = Buffer.concat([repeat('a', 1000), x('ed a0 80'), repeat('a', 64 * 1024)])
  const bytes = text(payload)
  const header = bytes.length - payload.length
  const client = await connect(t, server)
  await failFast(t, client, [bytes.subarray(0, header + 1000), bytes.subarray(header + 1000, header + 1002), bytes.subarray(header + 1002)])
})

t.test('extra: fail fast on the first payload byte of a continuation frame', async (t) => {
  // 0xe0 must be followed by 0xa0-0xbf (no overlong form): 0x80 is invalid at once.
  const second = continuation(Buffer.concat([x('80 80'), repeat('a', 1000)]))
  const client = await connect(t, server)
  await failFast(t, client, [text(Buffer.concat([ascii('abc'), x('e0')]), { fin: false }), second.subarray(0, 9), second.subarray(9)])
})

t.test('extra: a fragmented text message that ends inside a sequence fails with 1007', async (t) => {
  const client = await connect(t, server)
  await client.send(text(x('ce'), { fin: false }), continuation(''))
  await expectServerCloses(t, client, [{ close: 1007 }])
})

t.test('extra: the same invalid bytes in a binary message are echoed', async (t) => {
  const client = await connect(t, server)
  await client.send(...fragments(OP.binary, SURROGATE_PAYLOAD, 5))
  await closeAfter(t, client, [{ binary: SURROGATE_PAYLOAD }])
})

// 6.5-6.23 Markus Kuhn's UTF-8 decoder capability and stress test, as Autobahn lists it

type Entry = [valid: boolean, bytes: Buffer]

const lastContinuationMissing = [
  'c0', 'e0 80', 'f0 80 80', 'f8 80 80 80', 'fc 80 80 80 80', 'df', 'ef bf', 'f7 bf bf', 'fb bf bf bf', 'fd bf bf bf bf'
].map(x)

/** Start bytes in [from, to) each followed by a space. */
function lonely (from: number, to: number): Buffer {
  const bytes: number[] = []
  for (let b = from; b < to; b++) bytes.push(b, 0x20)
  return Buffer.from(bytes)
}

function nonCharacters (): Buffer[] {
  const out = [x('ef bf be'), x('ef bf bf')]
  for (const z1 of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
    for (const z2 of [0x8f, 0x9f, 0xaf, 0xbf]) {
      if (z1 === 0xf4 && z2 !== 0x8f) continue // past U+10FFFF
      for (const z3 of [0xbe, 0xbf]) {
        if (z1 === 0xf0 && z2 === 0x8f) continue // overlong
        out.push(Buffer.from([z1, z2, 0xbf, z3]))
      }
    }
  }
  return out
}

const valid = (bytes: Buffer): Entry => [true, bytes]
const invalid = (bytes: Buffer): Entry => [false, bytes]

const sections: Array<[string, Entry[]]> = [
  ['6.5 Some valid UTF-8 sequences', [
    valid(ascii('hello$world')),
    valid(Buffer.concat([ascii('hello'), x('c2 a2'), ascii('world')])),
    valid(Buffer.concat([ascii('hello'), x('e2 82 ac'), ascii('world')])),
    valid(Buffer.concat([ascii('hello'), x('f0 a4 ad a2'), ascii('world')])),
    valid(KOSME)
  ]],
  // Prefixes end on a code point boundary after 2, 5, 7, 9 and 11 bytes.
  ['6.6 All prefixes of κόσμε', Array.from({ length: 11 }, (_, i): Entry => [[2, 5, 7, 9, 11].includes(i + 1), KOSME.subarray(0, i + 1)])],
  ['6.7 First possible sequence of a certain length', ['00', 'c2 80', 'e0 a0 80', 'f0 90 80 80'].map((h) => valid(x(h)))],
  ['6.8 First possible sequence length 5/6 (invalid code points)', ['f8 88 80 80 80', 'fc 84 80 80 80 80'].map((h) => invalid(x(h)))],
  ['6.9 Last possible sequence of a certain length', ['7f', 'df bf', 'ef bf bf', 'f4 8f bf bf'].map((h) => valid(x(h)))],
  ['6.10 Last possible sequence length 4/5/6 (invalid code points)', ['f7 bf bf bf', 'fb bf bf bf bf', 'fd bf bf bf bf bf'].map((h) => invalid(x(h)))],
  ['6.11 Other boundary conditions', [
    valid(x('ed 9f bf')), valid(x('ee 80 80')), valid(x('ef bf bd')), valid(x('f4 8f bf bf')), invalid(x('f4 90 80 80'))
  ]],
  ['6.12 Unexpected continuation bytes', [
    ...['80', 'bf', '80 bf', '80 bf 80', '80 bf 80 bf', '80 bf 80 bf 80', '80 bf 80 bf 80 bf'].map((h) => invalid(x(h))),
    invalid(Buffer.from(Array.from({ length: 0xbf - 0x80 }, (_, i) => 0x80 + i)))
  ]],
  ['6.13 Lonely start characters', [
    invalid(lonely(0xc0, 0xdf)), invalid(lonely(0xe0, 0xef)), invalid(lonely(0xf0, 0xf7)),
    invalid(lonely(0xf8, 0xfb)), invalid(lonely(0xfc, 0xfd))
  ]],
  ['6.14 Sequences with last continuation byte missing', lastContinuationMissing.map(invalid)],
  ['6.15 Concatenation of incomplete sequences', [invalid(Buffer.concat(lastContinuationMissing))]],
  ['6.16 Impossible bytes', ['fe', 'ff', 'fe fe ff ff'].map((h) => invalid(x(h)))],
  ['6.17 Examples of an overlong ASCII character', ['c0 af', 'e0 80 af', 'f0 80 80 af', 'f8 80 80 80 af', 'fc 80 80 80 80 af'].map((h) => invalid(x(h)))],
  ['6.18 Maximum overlong sequences', ['c1 bf', 'e0 9f bf', 'f0 8f bf bf', 'f8 87 bf bf bf', 'fc 83 bf bf bf bf'].map((h) => invalid(x(h)))],
  ['6.19 Overlong representation of the NUL character', ['c0 80', 'e0 80 80', 'f0 80 80 80', 'f8 80 80 80 80', 'fc 80 80 80 80 80'].map((h) => invalid(x(h)))],
  ['6.20 Single UTF-16 surrogates', ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf', 'ed b0 80', 'ed be 80', 'ed bf bf'].map((h) => invalid(x(h)))],
  ['6.21 Paired UTF-16 surrogates', [
    'ed a0 80 ed b0 80', 'ed a0 80 ed bf bf', 'ed ad bf ed b0 80', 'ed ad bf ed bf bf',
    'ed ae 80 ed b0 80', 'ed ae 80 ed bf bf', 'ed af bf ed b0 80', 'ed af bf ed bf bf'
  ].map((h) => invalid(x(h)))],
  ['6.22 Non-character code points (valid UTF-8)', nonCharacters().map(valid)],
  ['6.23 Unicode specials (i.e. replacement char)', ['ef bf b9', 'ef bf ba', 'ef bf bb', 'ef bf bc', 'ef bf bd', 'ef bf be', 'ef bf bf'].map((h) => valid(x(h)))]
]

t.test('the 6.5-6.23 tables match Autobahn\'s case counts and the WHATWG decoder', async (t) => {
  t.same(sections.map(([, entries]) => entries.length), [5, 11, 4, 2, 4, 3, 5, 8, 5, 10, 1, 3, 5, 5, 5, 7, 8, 34, 7])
  for (const [title, entries] of sections) {
    entries.forEach(([isValid, bytes], i) => {
      t.equal(isWellFormedUtf8(bytes), isValid, `${title.split(' ')[0]}.${i + 1} (${bytes.toString('hex')}) is ${isValid ? 'valid' : 'invalid'}`)
    })
  }
})

for (const [title, entries] of sections) {
  const section = title.split(' ')[0]
  t.test(title, async (t) => {
    for (const [i, [isValid, bytes]] of entries.entries()) {
      const name = `${section}.${i + 1}: 0x${bytes.toString('hex')} ${isValid ? 'is echoed' : 'fails with 1007'}`
      await t.test(name, (t) => expectEchoOrFail(t, bytes, isValid, false))
      await t.test(`${name}, sent one byte per frame (extra)`, (t) => expectEchoOrFail(t, bytes, isValid, true))
    }
  })
}
