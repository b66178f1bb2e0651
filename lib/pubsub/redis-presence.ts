/**
 * Presence on Redis, for the Redis broker (lib/pubsub/redis-broker.ts): the
 * keys of a topic's presence and the Lua scripts that change and read them.
 * No Redis client here: redis-broker.ts sends the scripts.
 *
 * Per topic, beside the history keys of its events topic (presenceTopic(),
 * redis-history.ts), three keys that share their hash tag (one Redis
 * Cluster slot):
 * - `<tag>:z`, a sorted set: one entry per member per instance that holds
 *   it, `<instance id (32 hex)><member id>`, scored with the time (ms, from
 *   Redis's clock) past which it is dead unless refreshed;
 * - `<tag>:n`, a hash: per member id, how many instances hold it;
 * - `<tag>:p`, a hash: per member id, its info (JSON text).
 * A join or leave also appends the event to the events topic
 * (APPEND_FUNCTION), in the same script: the members and the events' offset
 * always agree.
 */
import { Buffer } from 'node:buffer'
import type { PresenceMember } from '../socket/presence.js'
import type { Position } from '../socket/position.js'
import { APPEND_FUNCTION, hashTag, historyKeys, POSITION_FUNCTION, script } from './redis-history.js'

/** The keys of `topic`'s presence, by the channel of its events topic, in the order the scripts take them. */
export function presenceKeys (eventsChannel: string): string[] {
  const { stream, meta } = historyKeys(eventsChannel)
  const tag = hashTag(eventsChannel)
  return [stream, meta, eventsChannel, `${tag}:p`, `${tag}:n`, `${tag}:z`]
}

/**
 * What every presence script shares. KEYS: stream, meta, events channel,
 * info hash, count hash, entries. ARGV[1..8]: the envelope header, the
 * events' history size and ttl (ms), the meta ttl (ms), a new epoch, the
 * publish command, this instance's id (32 characters), the entries' ttl (ms).
 */
const COMMON = `${APPEND_FUNCTION}
local function now()
  local t = redis.call('time')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function announce(kind, id, info)
  local event = '{"type":"' .. kind .. '","id":' .. cjson.encode(id) .. ',"info":' .. info .. '}'
  append(KEYS[1], KEYS[2], KEYS[3], ARGV[1], event, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
local function drop(entry)
  local id = string.sub(entry, 33)
  if redis.call('hincrby', KEYS[5], id, -1) > 0 then return 0 end
  redis.call('hdel', KEYS[5], id)
  local info = redis.call('hget', KEYS[4], id) or 'null'
  redis.call('hdel', KEYS[4], id)
  announce('leave', id, info)
  return 1
end
local function sweep(t)
  for _, entry in ipairs(redis.call('zrangebyscore', KEYS[6], '-inf', t)) do
    redis.call('zrem', KEYS[6], entry)
    drop(entry)
  end
end
local function hold(t, id, info)
  local entry = ARGV[7] .. id
  local held = redis.call('zscore', KEYS[6], entry)
  redis.call('zadd', KEYS[6], t + tonumber(ARGV[8]), entry)
  redis.call('hset', KEYS[4], id, info)
  if held then return 0 end
  if redis.call('hincrby', KEYS[5], id, 1) > 1 then return 0 end
  announce('join', id, info)
  return 1
end
local function keep()
  for i = 4, 6 do redis.call('pexpire', KEYS[i], 2 * tonumber(ARGV[8])) end
end
`

/**
 * This instance holds member ARGV[9] with info ARGV[10]: 1 when it joined, 0
 * when it was present. A new member past ARGV[11] members: the error
 * `PRESENCE_FULL`. Dead entries leave first.
 */
export const JOIN_SCRIPT = script(`${COMMON}
local t = now()
sweep(t)
local entry = ARGV[7] .. ARGV[9]
if not redis.call('zscore', KEYS[6], entry) and redis.call('hexists', KEYS[5], ARGV[9]) == 0
  and redis.call('hlen', KEYS[5]) >= tonumber(ARGV[11]) then
  return redis.error_reply('PRESENCE_FULL')
end
local joined = hold(t, ARGV[9], ARGV[10])
keep()
return joined
`)

/** This instance no longer holds member ARGV[9]: 1 when it left (no instance holds it). */
export const LEAVE_SCRIPT = script(`${COMMON}
local t = now()
local left = 0
if redis.call('zrem', KEYS[6], ARGV[7] .. ARGV[9]) == 1 then left = drop(ARGV[7] .. ARGV[9]) end
sweep(t)
return left
`)

/**
 * The heartbeat: this instance still holds the members ARGV[9], ARGV[11]...
 * with the info ARGV[10], ARGV[12]...: their entries live another ttl (one
 * that died meanwhile, an outage longer than the ttl, joins again). Dead
 * entries of every instance leave.
 */
export const REFRESH_SCRIPT = script(`${COMMON}
local t = now()
sweep(t)
for i = 9, #ARGV - 1, 2 do hold(t, ARGV[i], ARGV[i + 1]) end
keep()
return 0
`)

/**
 * The members (after dead entries left) and the position of the events
 * topic, in one step: { epoch, offset, [id, info, id, info...] }. A topic
 * with no events meta gets one (ARGV[5], offset 0).
 */
export const MEMBERS_SCRIPT = script(`${COMMON}${POSITION_FUNCTION}
sweep(now())
local epoch, top = position(KEYS[1], KEYS[2], ARGV[5], ARGV[4])
return {epoch, top, redis.call('hgetall', KEYS[4])}
`)

/** What a MEMBERS_SCRIPT reply means: the members whose info is JSON (another is left out), and the events' position. */
export function membersAnswer (reply: unknown): { members: PresenceMember[], position: Position } {
  const [epoch, offset, fields] = reply as [Buffer | string, number, Array<Buffer | string>]
  const members: PresenceMember[] = []
  for (let i = 0; i + 1 < fields.length; i += 2) {
    try {
      members.push({ id: fields[i].toString(), info: JSON.parse(fields[i + 1].toString()) as unknown })
    } catch {}
  }
  return { members, position: { offset: Number(offset), epoch: Buffer.isBuffer(epoch) ? epoch.toString() : epoch } }
}
