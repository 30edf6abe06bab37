// Lua scripts of the Redis store. Each runs on the keys of one user (one hash
// tag, so one slot of a Redis Cluster), which makes append, remove, read and
// sweep atomic per user. Key layout: redis_keys.ts.
//
// Shared argument prefix: ARGV[1] now (ms, node clock), ARGV[2] offline_expire
// in ms, ARGV[3] policy spec "|100=f|101=l|" (types with a first/last policy).
// An entry is expired when its ct <= now - expire (as in the embedded store).
//
// The policy hash also holds field '#bytes': the UTF-8 bytes of the user's
// stored packets, for offline_max_bytes (policy fields are "type|from", so
// the name cannot clash). A missing field means "not counted yet" (inboxes
// written before the cap existed): COMMIT recounts before it adds.

/** Entry value: header `[ct,type,from]` as JSON, a newline, then the packet. */
export function encodeEntry(ct: number, type: number, from: string, packet: string): string {
  return `${JSON.stringify([ct, type, from])}\n${packet}`;
}

/** Splits a stored value back into its parts; throws on a value this store did not write. */
export function decodeEntry(v: string): { ct: number; type: number; from: string; packet: string } {
  const nl = v.indexOf("\n");
  const head = nl < 0 ? null : JSON.parse(v.slice(0, nl)) as unknown;
  if (!Array.isArray(head) || typeof head[0] !== "number" || typeof head[2] !== "string") {
    throw new Error(`malformed inbox entry ${JSON.stringify(v.slice(0, 80))}`);
  }
  return { ct: head[0], type: Number(head[1]), from: head[2], packet: v.slice(nl + 1) };
}

/** Policy spec passed to the scripts (ARGV[3]). */
export function policySpec(policy: Record<string, "first" | "last" | "all">): string {
  let spec = "|";
  for (const [type, mode] of Object.entries(policy)) {
    if (mode === "first") spec += `${type}=f|`;
    else if (mode === "last") spec += `${type}=l|`;
  }
  return spec;
}

// KEYS[1] inbox, KEYS[2] order, KEYS[3] policy in every script.
const PRELUDE = `
local inbox, order, policy = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local cutoff = now - tonumber(ARGV[2])
local spec = ARGV[3]

local function ctOf(v)
  return tonumber(string.match(v, '^%[([^,]+),'))
end

-- Deletes one entry and the policy slot that points at it; returns its packet's bytes.
local function unlink(id, v)
  redis.call('ZREM', order, id)
  redis.call('HDEL', inbox, id)
  local nl = string.find(v, '\\n', 1, true)
  -- Below zero only when the field was missing: it stays missing (uncounted).
  if redis.call('HINCRBY', policy, '#bytes', nl - #v) < 0 then redis.call('HDEL', policy, '#bytes') end
  local m = cjson.decode(string.sub(v, 1, nl - 1))
  local ty = tostring(m[2])
  if string.find(spec, '|' .. ty .. '=', 1, true) then
    local f = ty .. '|' .. m[3]
    if redis.call('HGET', policy, f) == id then redis.call('HDEL', policy, f) end
  end
  return #v - nl
end

-- Deletes expired entries from the oldest end, at most limit; returns how many.
local function dropExpiredHead(limit)
  local n = 0
  for _ = 1, limit do
    local id = redis.call('ZRANGE', order, 0, 0)[1]
    if not id then break end
    local v = redis.call('HGET', inbox, id)
    if not v then
      redis.call('ZREM', order, id)
    elseif ctOf(v) <= cutoff then
      unlink(id, v)
      n = n + 1
    else
      break
    end
  end
  return n
end
`;

/**
 * One user's share of a batch: expired head, appends (blacklist, duplicate id,
 * first/last policy), removes, cap trim, key TTLs, sent ids.
 * KEYS[4] blacklist, KEYS[5] sent. ARGV[4] max, ARGV[5] dedup_ids, ARGV[6]
 * key lifetime after the newest entry's ct (ms: expire + grace), ARGV[7]
 * sent-ids TTL (ms), ARGV[8..10] counts of appends, removes and sent ids,
 * ARGV[11] max bytes, then the appends (id, from, type, ct, value), removed
 * ids and sent ids.
 * Returns {depth or -1 when nothing was stored, expired, cap, policy, blocked}.
 */
export const COMMIT = `${PRELUDE}
local max, dedup = tonumber(ARGV[4]), tonumber(ARGV[5])
local keep, sentTtl = tonumber(ARGV[6]), tonumber(ARGV[7])
local na, nr, ns = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local maxBytes = tonumber(ARGV[11])
local expired, blocked, pol, stored, newest, seq = 0, 0, 0, 0, nil, 0
if na > 0 then
  expired = dropExpiredHead(100)
  seq = tonumber(redis.call('ZRANGE', order, -1, -1, 'WITHSCORES')[2] or '0')
end
-- Makes '#bytes' exact before the first entry is added (called only then, so
-- the key gets its TTL below): recounted when missing, zero on an empty inbox
-- (the keys may have expired apart).
local counted = false
local function countBytes()
  counted = true
  local b = 0
  if redis.call('ZCARD', order) == 0 then
    redis.call('HSET', policy, '#bytes', 0)
  elseif not redis.call('HGET', policy, '#bytes') then
    local ids = redis.call('ZRANGE', order, 0, -1)
    for c = 1, #ids, 500 do
      for _, v in ipairs(redis.call('HMGET', inbox, unpack(ids, c, math.min(c + 499, #ids)))) do
        if v then b = b + #v - string.find(v, '\\n', 1, true) end
      end
    end
    redis.call('HSET', policy, '#bytes', b)
  end
end
local i = 12
for _ = 1, na do
  local id, from, ty, ct, v = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  i = i + 5
  if ct <= cutoff then
    expired = expired + 1
  elseif redis.call('ZSCORE', KEYS[4], from) then
    blocked = blocked + 1
  elseif redis.call('HEXISTS', inbox, id) == 1 then
    -- Same id already kept (a retried write whose first try went through).
    stored = stored + 1
  else
    local mode, f = nil, nil
    local at = string.find(spec, '|' .. ty .. '=', 1, true)
    if at then
      mode = string.sub(spec, at + #ty + 2, at + #ty + 2)
      f = ty .. '|' .. from
    end
    local keepIt = true
    if mode then
      local old = redis.call('HGET', policy, f)
      local ov = old and redis.call('HGET', inbox, old)
      if ov then
        if ctOf(ov) <= cutoff then
          unlink(old, ov)
          expired = expired + 1
        elseif mode == 'f' then
          pol = pol + 1
          keepIt = false
        else
          unlink(old, ov)
          pol = pol + 1
        end
      end
    end
    if keepIt then
      seq = seq + 1
      if not counted then countBytes() end
      redis.call('ZADD', order, seq, id)
      redis.call('HSET', inbox, id, v)
      redis.call('HINCRBY', policy, '#bytes', #v - string.find(v, '\\n', 1, true))
      if mode then redis.call('HSET', policy, f, id) end
      stored = stored + 1
      if not newest or ct > newest then newest = ct end
    end
  end
end
for _ = 1, nr do
  local id = ARGV[i]
  i = i + 1
  local v = redis.call('HGET', inbox, id)
  if v then unlink(id, v) end
end
local cap, depth = 0, -1
if stored > 0 then
  local over = redis.call('ZCARD', order) - max
  if over > 0 then
    for _, id in ipairs(redis.call('ZRANGE', order, 0, over - 1)) do
      local v = redis.call('HGET', inbox, id)
      if v then unlink(id, v) else redis.call('ZREM', order, id) end
    end
    cap = over
  end
  local bytes = tonumber(redis.call('HGET', policy, '#bytes') or '0')
  while bytes > maxBytes do
    local id = redis.call('ZRANGE', order, 0, 0)[1]
    if not id then break end
    local v = redis.call('HGET', inbox, id)
    if v then
      bytes = bytes - unlink(id, v)
      cap = cap + 1
    else
      redis.call('ZREM', order, id)
    end
  end
  depth = redis.call('ZCARD', order)
end
if newest then
  -- The keys outlive their newest entry by between keep - grace / 2 and keep
  -- ms: renewed only when half the grace is used up, never shortened.
  local ttl = math.floor(newest + keep - now)
  local slack = (keep - tonumber(ARGV[2])) / 2
  for _, k in ipairs({inbox, order, policy}) do
    local cur = redis.call('PTTL', k)
    if cur == -1 or (cur >= 0 and cur < ttl - slack) then redis.call('PEXPIRE', k, ttl) end
  end
end
if ns > 0 and dedup > 0 then
  for j = i, i + ns - 1 do redis.call('RPUSH', KEYS[5], ARGV[j]) end
  redis.call('LTRIM', KEYS[5], -dedup, -1)
  redis.call('PEXPIRE', KEYS[5], sentTtl)
end
return {depth, expired, cap, pol, blocked}
`;

/**
 * Unexpired entries, oldest first, deleting expired ones met on the way.
 * Returns {expired, id1, value1, id2, value2, ...}.
 */
export const READ = `${PRELUDE}
local ids = redis.call('ZRANGE', order, 0, -1)
local out = {0}
local expired = 0
for c = 1, #ids, 500 do
  local chunk = {unpack(ids, c, math.min(c + 499, #ids))}
  local vals = redis.call('HMGET', inbox, unpack(chunk))
  for j, id in ipairs(chunk) do
    local v = vals[j]
    if not v then
      redis.call('ZREM', order, id)
    elseif ctOf(v) <= cutoff then
      unlink(id, v)
      expired = expired + 1
    else
      out[#out + 1] = id
      out[#out + 1] = v
    end
  end
end
out[1] = expired
return out
`;

/** Deletes expired entries from the oldest end of one inbox (ARGV[4]: at most). */
export const SWEEP = `${PRELUDE}
return dropExpiredHead(tonumber(ARGV[4]))
`;
