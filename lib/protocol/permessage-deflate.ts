import { Buffer } from 'node:buffer'
import type { DeflateRaw, InflateRaw } from 'node:zlib'
import { CloseCode } from './constants.js'
import { messageTooBig, ProtocolError } from './errors.js'
import type { ExtensionOffer } from './extensions.js'
import { encodeHeader } from './frame.js'

/** Options of permessage-deflate (RFC 7692); sizes in bytes. */
export interface PerMessageDeflateOptions {
  /** Messages shorter than this many bytes are sent uncompressed; `send(data, { compress })` overrides it. Default 1024. */
  threshold?: number
  /**
   * Always reset the compressor after each message (and say so with
   * server_no_context_takeover, RFC 7692 §7.1.1.1): a worse ratio, but the
   * compressor's memory is freed between messages. Default false.
   */
  serverNoContextTakeover?: boolean
  /** Ask the client to reset its compressor after each message (client_no_context_takeover, §7.1.1.2). Default false. */
  clientNoContextTakeover?: boolean
  /**
   * Largest LZ77 window of the server's compressor, 8-15 bits (§7.1.2.1):
   * smaller costs less memory and compresses less. Default 15.
   */
  serverMaxWindowBits?: number
  /**
   * Largest window to ask of a client that offers client_max_window_bits
   * (§7.1.2.2), 8-15 bits; the server's decompressor then needs only that
   * much. Default 15.
   */
  clientMaxWindowBits?: number
  /** zlib memLevel of the compressor, 1-9: memory is 2^(memLevel+9) bytes. Default 8. */
  memLevel?: number
  /** zlib compression level, 0-9. Default 1 (fastest). */
  level?: number
}

/** Parameters agreed for one connection (RFC 7692 §7.1). */
export interface DeflateParams {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number
  clientMaxWindowBits: number
}

/** The extension token (RFC 7692 §7). */
export const EXTENSION_NAME = 'permessage-deflate'
/** The sync-flush marker removed from each compressed message and added back before inflating (§7.2.1, §7.2.2). */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff])

/**
 * Picks the first acceptable permessage-deflate offer (RFC 7692 §5.1, §7.1)
 * and builds the response's extension value. An offer with an unknown
 * parameter, a repeated one or an invalid value is declined, and the next one
 * considered; null when none is acceptable (the connection goes on
 * uncompressed).
 * - server_no_context_takeover offered, or forced by the options: echoed;
 * - client_no_context_takeover offered or asked by the options: sent;
 * - server_max_window_bits=N offered: answered with min(N, option);
 * - client_max_window_bits offered (with or without a value): answered with a
 *   value only when the server wants a window smaller than 15 or than the
 *   offered value; never sent when not offered (§7.1.2.2).
 */
export function negotiateDeflate (offers: ExtensionOffer[], options: PerMessageDeflateOptions): { params: DeflateParams, response: string } | null {
  for (const offer of offers) {
    if (offer.name !== EXTENSION_NAME) continue
    const offered = readOffer(offer)
    if (offered === null) continue
    const serverNoContextTakeover = offered.serverNoContextTakeover || options.serverNoContextTakeover === true
    const clientNoContextTakeover = offered.clientNoContextTakeover || options.clientNoContextTakeover === true
    const serverMaxWindowBits = Math.min(offered.serverMaxWindowBits ?? 15, options.serverMaxWindowBits ?? 15)
    let clientMaxWindowBits = 15
    let response = EXTENSION_NAME
    if (serverNoContextTakeover) response += '; server_no_context_takeover'
    if (clientNoContextTakeover) response += '; client_no_context_takeover'
    if (offered.serverMaxWindowBits !== undefined) response += `; server_max_window_bits=${serverMaxWindowBits}`
    if (offered.clientMaxWindowBits !== undefined) {
      const limit = offered.clientMaxWindowBits === true ? 15 : offered.clientMaxWindowBits
      clientMaxWindowBits = Math.min(limit, options.clientMaxWindowBits ?? 15)
      if (clientMaxWindowBits < 15 || offered.clientMaxWindowBits !== true) response += `; client_max_window_bits=${clientMaxWindowBits}`
    }
    return {
      params: { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits },
      response
    }
  }
  return null
}

interface Offered {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits?: number
  clientMaxWindowBits?: number | true
}

/** The parameters of one offer, or null when the offer must be declined (§7.1). */
function readOffer (offer: ExtensionOffer): Offered | null {
  const result: Offered = { serverNoContextTakeover: false, clientNoContextTakeover: false }
  const seen = new Set<string>()
  for (const [name, value] of offer.params) {
    if (seen.has(name)) return null
    seen.add(name)
    switch (name) {
      case 'server_no_context_takeover':
        if (value !== true) return null
        result.serverNoContextTakeover = true
        break
      case 'client_no_context_takeover':
        if (value !== true) return null
        result.clientNoContextTakeover = true
        break
      case 'server_max_window_bits': {
        const bits = windowBits(value)
        if (bits === null) return null
        result.serverMaxWindowBits = bits
        break
      }
      case 'client_max_window_bits': {
        if (value === true) {
          result.clientMaxWindowBits = true
          break
        }
        const bits = windowBits(value)
        if (bits === null) return null
        result.clientMaxWindowBits = bits
        break
      }
      default:
        return null
    }
  }
  return result
}

/** A window size value: a decimal 8-15 without leading zeros (§7.1.2.1). */
function windowBits (value: string | true): number | null {
  if (value === true || !/^(?:[89]|1[0-5])$/.test(value)) return null
  return Number(value)
}

/**
 * Called once an operation is done: with an error (and an empty Buffer), or
 * with the output; a compression shared by several connections also gives
 * the frame header for its output, the same Buffer for all of them.
 */
export type Callback = (error: ProtocolError | null, data: Buffer, header?: Buffer) => void

const EMPTY = Buffer.alloc(0)

type Zlib = typeof import('node:zlib')
let zlibModule: Zlib | null = null

/**
 * node:zlib, taken when the first compressor or decompressor is made: an
 * app whose WebSockets never negotiate permessage-deflate does not load it
 * (0.2-0.4 MB of live heap; on Node 26 it loads Node's ZIP archive modules too).
 */
function zlib (): Zlib {
  return zlibModule ??= process.getBuiltinModule('node:zlib')
}

/**
 * The compressor and decompressor of one connection (RFC 7692 §6, §7.2),
 * through node:zlib. Each zlib context is created on the first message that
 * needs it; with no context takeover in that direction it is freed after
 * each message, so an idle connection holds none. One operation runs at a
 * time in each direction: the Session queues the rest, which keeps order.
 *
 * Memory, from zlib's own formulas: the decompressor 2^clientMaxWindowBits
 * bytes plus about 7 KiB (32 KiB + 7 KiB at 15 bits); the compressor
 * 2^(serverMaxWindowBits+2) + 2^(memLevel+9) bytes plus about 6 KiB
 * (128 KiB + 128 KiB + 6 KiB at 15 bits and memLevel 8).
 */
export class PerMessageDeflate {
  readonly params: DeflateParams
  readonly threshold: number
  private readonly maxPayload: number
  private readonly memLevel: number
  private readonly level: number
  private deflate: DeflateRaw | null = null
  private inflate: InflateRaw | null = null

  /** `maxPayload`: bytes of one inflated message; past it inflation stops and the connection fails with 1009. */
  constructor (params: DeflateParams, options: PerMessageDeflateOptions, maxPayload: number) {
    this.params = params
    this.threshold = options.threshold ?? 1024
    this.memLevel = options.memLevel ?? 8
    this.level = options.level ?? 1
    this.maxPayload = maxPayload
  }

  /**
   * Compresses one message's payload (§7.2.1): raw DEFLATE, flushed with
   * Z_SYNC_FLUSH, the trailing 00 00 ff ff removed.
   */
  compress (data: Buffer, callback: Callback): void {
    const deflate = this.deflate ??= this.createDeflate()
    runDeflate(deflate, data, (error, output) => {
      if (error !== null) {
        this.freeDeflate()
        callback(error, EMPTY)
        return
      }
      if (this.deflate !== deflate) return
      if (this.params.serverNoContextTakeover) this.freeDeflate()
      callback(null, output)
    })
  }

  /**
   * Settings that decide the compressed bytes of a message when every
   * message starts with an empty compressor (server_no_context_takeover):
   * connections with the same key may share one compression (see
   * PreparedMessage). Null with context takeover, where the output depends on
   * the connection's earlier messages too.
   */
  get shareKey (): string | null {
    if (!this.params.serverNoContextTakeover) return null
    return `${this.params.serverMaxWindowBits}:${this.memLevel}:${this.level}`
  }

  /**
   * Compresses `data` as `compress()` does with no context takeover, with a
   * compressor of its own, freed once done: this connection's is not touched.
   */
  compressAlone (data: Buffer, callback: Callback): void {
    const deflate = this.createDeflate()
    runDeflate(deflate, data, (error, output) => {
      deflate.close()
      callback(error, output)
    })
  }

  /**
   * Inflates one message's payload (§7.2.2) with the trailer added back.
   * Inflation stops as soon as the output passes `maxPayload` bytes (1009);
   * data that does not inflate fails with 1007.
   */
  decompress (data: Buffer, callback: Callback): void {
    const inflate = this.inflate ??= zlib().createInflateRaw({ windowBits: this.params.clientMaxWindowBits }).on('error', ignore)
    const chunks: Buffer[] = []
    let length = 0
    let failed = false
    const stop = (error: ProtocolError): void => {
      failed = true
      // The error may be kept by the application: keep nothing inflated alive with it.
      chunks.length = 0
      inflate.removeListener('data', onData)
      this.freeInflate()
      callback(error, EMPTY)
    }
    const onData = (chunk: Buffer): void => {
      length += chunk.length
      if (length > this.maxPayload) stop(messageTooBig(this.maxPayload))
      else chunks.push(chunk)
    }
    const onError = (error: Error): void => {
      if (!failed) stop(new ProtocolError('WS_ERR_INVALID_COMPRESSED_DATA', CloseCode.InvalidPayloadData, `invalid compressed data: ${error.message}`))
    }
    const consumedBefore = inflate.bytesWritten
    inflate.on('data', onData)
    inflate.once('error', onError)
    inflate.write(data)
    inflate.write(TRAILER)
    inflate.flush(() => {
      if (failed) return
      inflate.removeListener('data', onData)
      inflate.removeListener('error', onError)
      // A block with BFINAL set ends zlib's stream and it ignores the rest
      // (RFC 7692 §7.2.3.4): the next message needs a new decompressor.
      const ended = inflate.bytesWritten - consumedBefore < data.length + TRAILER.length
      if (ended || this.params.clientNoContextTakeover) this.freeInflate()
      callback(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length))
    })
  }

  /** Frees both zlib contexts; later calls create new ones. */
  close (): void {
    this.freeDeflate()
    this.freeInflate()
  }

  private createDeflate (): DeflateRaw {
    return zlib().createDeflateRaw({
      windowBits: this.params.serverMaxWindowBits,
      memLevel: this.memLevel,
      level: this.level
    }).on('error', ignore)
  }

  private freeDeflate (): void {
    this.deflate?.close()
    this.deflate = null
  }

  private freeInflate (): void {
    this.inflate?.close()
    this.inflate = null
  }
}

/**
 * A payload of at most this many bytes is copied behind its frame header in
 * a PreparedMessage: every connection of a fan-out then queues one buffer
 * per message instead of two (measured: 1,000 subscribers × 128 B, 2-20 %
 * more deliveries/s, 3-17 % less server CPU per delivery).
 */
const JOINED_PAYLOAD_BYTES = 1024

/**
 * One message framed once, and compressed once, for every connection that
 * can share the bytes: the fan-out of a publish (gorilla/websocket calls the
 * idea a prepared message). Uncompressed, every connection writes `head`
 * then `tail`. With server_no_context_takeover (RFC 7692 §7.1.1.1)
 * each message is compressed from an empty LZ77 window, so its bytes depend
 * only on the payload and the compressor's settings (`shareKey`): the first
 * connection with a given key starts one compression, the others with that
 * key wait for it, and all of them queue the same compressed payload and
 * frame header. A connection with context takeover compresses on its own.
 */
export class PreparedMessage {
  readonly opcode: number
  readonly payload: Buffer
  /** The uncompressed frame's first bytes: its header (RFC 6455 §5.2), with the payload behind it when that is at most JOINED_PAYLOAD_BYTES. */
  readonly head: Buffer
  /** The rest of the uncompressed frame: the payload, or nothing when `head` holds it. */
  readonly tail: Buffer
  /** Per shareKey, the shared compression; created on the first connection that needs one. */
  private shared: Map<string, SharedCompression> | null = null

  /** `opcode`: Text or Binary, the frame's opcode (RFC 6455 §5.2). */
  constructor (opcode: number, payload: Buffer) {
    this.opcode = opcode
    this.payload = payload
    const header = encodeHeader(opcode, payload.length)
    if (payload.length > JOINED_PAYLOAD_BYTES) {
      this.head = header
      this.tail = payload
    } else {
      this.head = Buffer.concat([header, payload], header.length + payload.length)
      this.tail = EMPTY
    }
  }

  /**
   * Calls `callback` with this message compressed by `deflate`'s settings:
   * the shared output when `deflate` has no context takeover (with its
   * frame header), else compressed by `deflate` itself.
   */
  compress (deflate: PerMessageDeflate, callback: Callback): void {
    const key = deflate.shareKey
    if (key === null) {
      deflate.compress(this.payload, callback)
      return
    }
    const shared = this.shared ??= new Map()
    let compression = shared.get(key)
    if (compression === undefined) {
      compression = new SharedCompression(this.opcode)
      shared.set(key, compression)
      deflate.compressAlone(this.payload, compression.done)
    }
    compression.wait(callback)
  }
}

/** One compression awaited by several connections; each gets the result in the order it asked. */
class SharedCompression {
  private readonly opcode: number
  private waiting: Callback[] | null = []
  private error: ProtocolError | null = null
  private data: Buffer = EMPTY
  private header: Buffer = EMPTY

  constructor (opcode: number) {
    this.opcode = opcode
  }

  wait (callback: Callback): void {
    if (this.waiting !== null) this.waiting.push(callback)
    else callback(this.error, this.data, this.error === null ? this.header : undefined)
  }

  readonly done = (error: ProtocolError | null, data: Buffer): void => {
    this.error = error
    this.data = data
    if (error === null) this.header = encodeHeader(this.opcode, data.length, { rsv1: true })
    const waiting = this.waiting as Callback[]
    this.waiting = null
    for (const callback of waiting) callback(error, data, error === null ? this.header : undefined)
  }
}

/**
 * Compresses one message's payload on `deflate` (§7.2.1): raw DEFLATE,
 * flushed with Z_SYNC_FLUSH, the trailing 00 00 ff ff removed.
 */
function runDeflate (deflate: DeflateRaw, data: Buffer, callback: Callback): void {
  const chunks: Buffer[] = []
  let length = 0
  let failed = false
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk)
    length += chunk.length
  }
  const onError = (error: Error): void => {
    failed = true
    deflate.removeListener('data', onData)
    callback(new ProtocolError('WS_ERR_INTERNAL', CloseCode.InternalError, `compression failed: ${error.message}`), EMPTY)
  }
  deflate.on('data', onData)
  deflate.once('error', onError)
  deflate.write(data)
  deflate.flush(zlib().constants.Z_SYNC_FLUSH, () => {
    if (failed) return
    deflate.removeListener('data', onData)
    deflate.removeListener('error', onError)
    const output = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length)
    callback(null, output.subarray(0, endsWithTrailer(output) ? output.length - 4 : output.length))
  })
}

function endsWithTrailer (data: Buffer): boolean {
  const n = data.length
  return n >= 4 && data[n - 4] === 0x00 && data[n - 3] === 0x00 && data[n - 2] === 0xff && data[n - 1] === 0xff
}

/** Each zlib stream keeps this listener so that a late error never goes unheard (and never crashes the process). */
function ignore (): void {}
