/**
 * Topic histories on Redis, for the Redis broker (lib/pubsub/redis.ts): the
 * keys of a topic, the two Lua scripts, and what their replies mean. No
 * Redis client here: redis.ts sends the scripts.
 *
 * Per history topic, two keys that share the hash tag of the topic's channel
 * (so that they and the channel live on one Redis Cluster shard):
 * - `<tag>:m`, a hash: `e` the epoch, `o` the offset of the last message;
 * - `<tag>:s`, a stream: one entry per kept message, id `<offset>-0`,
 *   fields `f` (the envelope's flags byte) and `d` (the payload).
 */
import { Buffer } from 'node:buffer'
import { createHash } from 'node:crypto'
import type { Position } from '../socket/position.js'

/** A Lua script and its SHA-1, for EVALSHA (EVAL when the server does not have it yet). */
export interface Script {
  readonly source: string
  readonly sha: string
}

export function script (source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

/**
 * Lua: `append(stream, meta, channel, header, payload, size, ttl, metaTtl,
 * newEpoch, publish)` appends one message to a history topic: takes the
 * topic's epoch (`newEpoch` when its meta is gone: its old stream is
 * dropped), the next offset, adds the message to the stream (MAXLEN ~
 * size), sets both keys' TTLs (ms), and publishes (`publish`: SPUBLISH or
 * PUBLISH) on `channel` the envelope header, the position's length and
 * string form, and the payload. Returns the offset and the epoch. Shared by
 * PUBLISH_SCRIPT and the presence scripts (redis-presence.ts).
 */
export const APPEND_FUNCTION = `
local function append(stream, meta, channel, header, payload, size, ttl, metaTtl, newEpoch, publish)
  local epoch = redis.call('hget', meta, 'e')
  if not epoch then
    epoch = newEpoch
    redis.call('del', stream)
    redis.call('hset', meta, 'e', epoch)
  end
  local offset = redis.call('hincrby', meta, 'o', 1)
  redis.call('pexpire', meta, metaTtl)
  local id = string.format('%d', offset)
  redis.call('xadd', stream, 'MAXLEN', '~', size, id .. '-0', 'f', string.sub(header, 2, 2), 'd', payload)
  redis.call('pexpire', stream, ttl)
  local position = id .. '.' .. epoch
  redis.call(publish, channel, header .. string.char(#position) .. position .. payload)
  return {offset, epoch}
end
`

/**
 * Lua: `position(stream, meta, newEpoch, metaTtl)`, a history topic's epoch
 * and last offset; a topic with no meta gets one (`newEpoch`, offset 0,
 * `metaTtl` ms to live, its old stream dropped). Shared by READ_SCRIPT and
 * the presence scripts (redis-presence.ts).
 */
export const POSITION_FUNCTION = `
local function position(stream, meta, newEpoch, metaTtl)
  local epoch = redis.call('hget', meta, 'e')
  if not epoch then
    epoch = newEpoch
    redis.call('del', stream)
    redis.call('hset', meta, 'e', epoch, 'o', 0)
    redis.call('pexpire', meta, metaTtl)
  end
  return epoch, tonumber(redis.call('hget', meta, 'o') or '0')
end
`

/**
 * Publishes one message of a history topic, atomically (APPEND_FUNCTION).
 * KEYS: stream, meta, channel. ARGV: header, payload, size, ttl (ms),
 * meta ttl (ms), new epoch, publish command (SPUBLISH or PUBLISH).
 * Returns { offset, epoch }.
 */
export const PUBLISH_SCRIPT = script(`${APPEND_FUNCTION}
return append(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
`)

/**
 * Reads a topic's position and, when ARGV[1] (an offset) is given with
 * ARGV[4] its epoch, the messages after it: only when that epoch is the
 * topic's and they are at most ARGV[2]. A topic with no meta gets one (a new
 * epoch, ARGV[3], offset 0, ARGV[5] ms to live). KEYS: stream, meta.
 * Returns { epoch, top } or { epoch, top, entries of XRANGE }.
 */
export const READ_SCRIPT = script(`${POSITION_FUNCTION}
local epoch, top = position(KEYS[1], KEYS[2], ARGV[3], ARGV[5])
if ARGV[1] == '' or ARGV[4] ~= epoch then return {epoch, top} end
local since = tonumber(ARGV[1])
if since > top or top - since > tonumber(ARGV[2]) then return {epoch, top} end
if since == top then return {epoch, top, {}} end
return {epoch, top, redis.call('xrange', KEYS[1], string.format('%d', since + 1) .. '-0', '+', 'COUNT', top - since)}
`)

/**
 * The keys of a topic's history, by its channel: they carry the channel's
 * hash tag (Redis Cluster: the part between the first `{` and the next `}`
 * when not empty, else the whole name), so that the keys and the channel
 * map to one slot. A channel with a `}` but no such tag cannot share its
 * slot with any key: on a cluster, its scripts fail with CROSSSLOT.
 */
export function historyKeys (channel: string): { stream: string, meta: string } {
  const tag = hashTag(channel)
  return { stream: `${tag}:s`, meta: `${tag}:m` }
}

/** The part of a key that puts it in `channel`'s slot: the channel when it has a tag, else the channel in braces. */
export function hashTag (channel: string): string {
  const open = channel.indexOf('{')
  const close = open < 0 ? -1 : channel.indexOf('}', open + 1)
  return close > open + 1 ? channel : `{${channel}}`
}

/** The position a PUBLISH_SCRIPT reply gives. */
export function publishedPosition (reply: unknown): Position {
  const [offset, epoch] = reply as [number, Buffer | string]
  return { offset: Number(offset), epoch: epoch.toString() }
}

/** The envelope flag (see redis.ts) of a message of a history topic: the position's length and string form follow the header. */
export const FLAG_HISTORY = 0b1000

/** A message read from a topic's stream: its envelope flags, payload and position. */
export interface StoredMessage {
  flags: number
  payload: Buffer
  position: Position
}

/**
 * What a READ_SCRIPT reply means for `since`: the position, and the
 * messages after `since` when the stream holds every one of them (none
 * trimmed by MAXLEN, none expired), else null.
 */
export function readAnswer (since: Position | undefined, reply: unknown): { position: Position, messages: StoredMessage[] | null } {
  const [epochBytes, top, entries] = reply as [Buffer | string, number, Array<[Buffer | string, Array<Buffer | string>]> | undefined]
  const position = { offset: Number(top), epoch: epochBytes.toString() }
  if (since === undefined || entries === undefined) return { position, messages: null }
  if (entries.length !== position.offset - since.offset) return { position, messages: null }
  const messages: StoredMessage[] = []
  for (const [i, [id, fields]] of entries.entries()) {
    const offset = since.offset + 1 + i
    if (id.toString() !== `${offset}-0`) return { position, messages: null }
    let flags = 0
    let payload: Buffer = Buffer.alloc(0)
    for (let f = 0; f + 1 < fields.length; f += 2) {
      const value = fields[f + 1]
      if (fields[f].toString() === 'f') flags = Buffer.from(value)[0] ?? 0
      else payload = Buffer.isBuffer(value) ? value : Buffer.from(value)
    }
    messages.push({ flags, payload, position: { offset, epoch: position.epoch } })
  }
  return { position, messages }
}
