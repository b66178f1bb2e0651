import { isUtf8 } from 'node:buffer'

/**
 * Streaming UTF-8 validation for text messages that arrive in pieces, failing
 * on the first byte that cannot begin or continue a well-formed sequence
 * (RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
 * finds that the byte stream is not, in fact, a valid UTF-8 stream, that
 * endpoint MUST _Fail the WebSocket Connection_"). Well-formedness follows
 * Unicode Table 3-7 (RFC 3629 §4): no overlongs, no surrogates, nothing over
 * U+10FFFF.
 *
 * Whole runs are checked by the runtime (`buffer.isUtf8`); only the up to 3
 * bytes of a sequence cut by a piece boundary are checked here, byte by byte,
 * so that an invalid prefix fails before the rest of it arrives.
 */
export class Utf8Validator {
  /** Lead byte of the cut sequence, 0 when none. */
  private lead = 0
  /** Bytes of the cut sequence seen so far, lead included. */
  private seen = 0
  /** Bytes the cut sequence needs in all. */
  private needed = 0

  /** Validates the next piece; false as soon as the stream is ill-formed. */
  push (data: Uint8Array): boolean {
    let start = 0
    while (this.lead !== 0 && start < data.length) {
      if (!continues(this.lead, this.seen, data[start])) return false
      start++
      if (++this.seen === this.needed) this.lead = 0
    }
    if (start >= data.length) return true
    // Find a sequence cut at the end of the piece: a lead byte in the last 3.
    let cut = data.length
    for (let i = data.length - 1; i >= start && i >= data.length - 3; i--) {
      const byte = data[i]
      if (byte < 0x80) break
      if (byte >= 0xc0) {
        const length = sequenceLength(byte)
        if (length === 0) return false
        if (data.length - i < length) cut = i
        break
      }
    }
    if (!isUtf8(data.subarray(start, cut))) return false
    if (cut < data.length) {
      this.lead = data[cut]
      this.needed = sequenceLength(this.lead)
      this.seen = 1
      for (let i = cut + 1; i < data.length; i++, this.seen++) {
        if (!continues(this.lead, this.seen, data[i])) return false
      }
    }
    return true
  }

  /** At the end of the message: false if a sequence is left unfinished. */
  end (): boolean {
    const complete = this.lead === 0
    this.lead = 0
    return complete
  }
}

/** Length of the sequence a lead byte starts, 0 for bytes that cannot lead one. */
function sequenceLength (lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2
  if (lead >= 0xe0 && lead <= 0xef) return 3
  if (lead >= 0xf0 && lead <= 0xf4) return 4
  return 0
}

/** Whether `byte` may stand at index `index` (1-3) of a sequence led by `lead` (Table 3-7). */
function continues (lead: number, index: number, byte: number): boolean {
  if (index === 1) {
    if (lead === 0xe0) return byte >= 0xa0 && byte <= 0xbf
    if (lead === 0xed) return byte >= 0x80 && byte <= 0x9f
    if (lead === 0xf0) return byte >= 0x90 && byte <= 0xbf
    if (lead === 0xf4) return byte >= 0x80 && byte <= 0x8f
  }
  return byte >= 0x80 && byte <= 0xbf
}
