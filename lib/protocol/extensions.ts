/**
 * One extension offered in Sec-WebSocket-Extensions: its name and its
 * parameters in order, a parameter without a value as `true` (RFC 6455 §9.1).
 */
export interface ExtensionOffer {
  name: string
  params: Array<[name: string, value: string | true]>
}

/**
 * Parses a Sec-WebSocket-Extensions header (RFC 6455 §9.1, RFC 7230 §3.2.6):
 *
 *     extension-list = 1#extension
 *     extension      = token *( ";" param )
 *     param          = token [ "=" ( token / quoted-string ) ]
 *
 * A quoted value must itself be a token once unquoted (§9.1). Returns the
 * offers in order, or null when the header is malformed. One pass over the
 * value, so any input is parsed in linear time.
 */
export function parseExtensions (header: string): ExtensionOffer[] | null {
  const offers: ExtensionOffer[] = []
  const length = header.length
  let pos = 0
  let offer: ExtensionOffer | null = null
  while (true) {
    pos = skipSpace(header, pos)
    const nameEnd = tokenEnd(header, pos)
    if (nameEnd === pos) {
      // An empty list element ("a, , b") is allowed by the # rule; nothing else is.
      if (offer === null && (pos === length || header[pos] === ',')) {
        if (pos === length) return offers
        pos++
        continue
      }
      return null
    }
    const name = header.slice(pos, nameEnd)
    pos = skipSpace(header, nameEnd)
    if (offer === null) {
      offer = { name, params: [] }
      offers.push(offer)
    } else {
      let value: string | true = true
      if (header[pos] === '=') {
        pos = skipSpace(header, pos + 1)
        if (header[pos] === '"') {
          const quoted = readQuoted(header, pos)
          if (quoted === null) return null
          // "the value ... MUST conform to the ABNF [token] after unescaping" (§9.1).
          value = quoted.value
          if (value === '' || tokenEnd(value, 0) !== value.length) return null
          pos = quoted.end
        } else {
          const end = tokenEnd(header, pos)
          if (end === pos) return null
          value = header.slice(pos, end)
          pos = end
        }
        pos = skipSpace(header, pos)
      }
      offer.params.push([name, value])
    }
    if (pos === length) return offers
    const separator = header[pos++]
    if (separator === ',') offer = null
    else if (separator !== ';') return null
  }
}

/**
 * Reads the quoted-string starting at `pos` (RFC 7230 §3.2.6), unescaping
 * quoted-pairs; returns its value and the index after the closing quote.
 */
function readQuoted (text: string, pos: number): { value: string, end: number } | null {
  let value = ''
  for (let i = pos + 1; i < text.length; i++) {
    const char = text[i]
    if (char === '"') return { value, end: i + 1 }
    if (char === '\\') {
      if (++i === text.length) return null
      value += text[i]
    } else {
      value += char
    }
  }
  return null
}

/** Whether `code` is a tchar (RFC 7230 §3.2.6). */
function isTokenChar (code: number): boolean {
  if (code >= 0x30 && code <= 0x39) return true // 0-9
  if (code >= 0x41 && code <= 0x5a) return true // A-Z
  if (code >= 0x61 && code <= 0x7a) return true // a-z
  return "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code)) && code < 0x7f
}

function tokenEnd (text: string, pos: number): number {
  while (pos < text.length && isTokenChar(text.charCodeAt(pos))) pos++
  return pos
}

function skipSpace (text: string, pos: number): number {
  while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t')) pos++
  return pos
}
