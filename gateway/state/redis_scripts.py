"""Lua for the Redis backend: each multi-step update is one script, so it runs atomically on the server.

The rules mirror ``rules.py`` (which the memory backend runs). Floats are written with ``%.17g``
so they survive the round trip exactly; a number handed straight to ``redis.call`` would be cut to
14 digits. Every key a script creates gets a TTL in the same script.
"""

from __future__ import annotations

FMT = "local function fmt(x) return string.format('%.17g', x) end\n"

# A settlement's marker (one hash per request id, under its scope): ``admitted`` once its admission counted,
# ``counters`` and ``budget`` once those were settled, so a repeated call (a retry after a timeout whose
# first try did land) changes nothing. Its TTL only ever grows: each part keeps it as long as it needs.
MARK = """
local function mark(key, field, ttl)
  redis.call('HSET', key, field, '1')
  if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
"""

# KEYS: one counter per limit (its current window), then the settlement's marker. ARGV: limit, amount,
# ttl_ms for each, then the marker's ttl_ms (0: no settlement id). Returns {0, 0} when admitted, else
# {index of the refused limit (1-based), its current count}. A settlement already applied counts nothing.
ADMIT = (
    MARK
    + """
local n = #KEYS - 1
local marker, marker_ttl = KEYS[#KEYS], tonumber(ARGV[3 * n + 1])
if marker_ttl > 0 and redis.call('HEXISTS', marker, 'counters') == 1 then return {0, 0} end
for i = 1, n do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + tonumber(ARGV[3 * i - 1]) > tonumber(ARGV[3 * i - 2]) then
    return {i, current}
  end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], ARGV[3 * i - 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
end
if marker_ttl > 0 then mark(marker, 'admitted', marker_ttl) end
return {0, 0}
"""
)

# KEYS: counters, then the settlement's marker. ARGV: the marker's ttl_ms (0: no settlement id), '1' when
# the admission is known to have counted (else the marker says), then for each counter: its delta if the
# admission counted, its delta if not, and the ttl_ms to create it with if not (0: its window is over).
# A counter that is gone (its window expired) stays gone unless the admission never counted; INCRBY keeps
# the TTL; a count never goes below 0.
ADJUST = (
    MARK
    + """
local n = #KEYS - 1
local marker, marker_ttl = KEYS[#KEYS], tonumber(ARGV[1])
local admitted = ARGV[2] == '1'
if marker_ttl > 0 then
  if redis.call('HEXISTS', marker, 'counters') == 1 then return 0 end
  admitted = admitted or redis.call('HEXISTS', marker, 'admitted') == 1
end
for i = 1, n do
  local current = redis.call('GET', KEYS[i])
  local delta = tonumber(ARGV[admitted and 3 * i or 3 * i + 1])
  local ttl = tonumber(ARGV[3 * i + 2])
  if current and delta ~= 0 then
    current = tonumber(current)
    local new = math.max(current + delta, 0)
    redis.call('INCRBY', KEYS[i], new - current)
  elseif not current and not admitted and delta > 0 and ttl > 0 then
    redis.call('SET', KEYS[i], delta, 'PX', ttl)
  end
end
if marker_ttl > 0 then mark(marker, 'counters', marker_ttl) end
return 0
"""
)

# Per cap two keys: a hash (spent, reserved, and r:<id> -> amount for each reservation) and a ZSET of
# reservation ids scored by expiry. KEYS: hash, zset for each cap, then the settlement's marker.
# ARGV: now, id, amount, expires_at, epsilon, then limit, ttl_ms for each cap.
# Returns {0, ''} when reserved, else {index of the refused cap (1-based), its spent + reserved}.
# An id already settled reserves nothing (a late copy of a reservation whose answer never came).
RESERVE = (
    FMT
    + """
local now, id, amount, epsilon = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
if redis.call('HEXISTS', KEYS[#KEYS], 'budget') == 1 then return {0, ''} end
local caps = (#KEYS - 1) / 2
local reserved = {}
for c = 1, caps do
  local budget, holds, ttl = KEYS[2 * c - 1], KEYS[2 * c], ARGV[5 + 2 * c]
  local r = tonumber(redis.call('HGET', budget, 'reserved') or '0')
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #expired > 0 then
    for _, old in ipairs(expired) do
      r = r - tonumber(redis.call('HGET', budget, 'r:' .. old) or '0')
      redis.call('HDEL', budget, 'r:' .. old)
    end
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
    if r < 0 or redis.call('EXISTS', holds) == 0 then r = 0 end
    redis.call('HSET', budget, 'reserved', fmt(r))
    redis.call('PEXPIRE', budget, ttl)
  end
  local spent = tonumber(redis.call('HGET', budget, 'spent') or '0')
  if spent + r + amount > tonumber(ARGV[4 + 2 * c]) + epsilon then
    return {c, fmt(spent + r)}
  end
  reserved[c] = r
end
for c = 1, caps do
  local budget, holds, ttl = KEYS[2 * c - 1], KEYS[2 * c], ARGV[5 + 2 * c]
  redis.call('HSET', budget, 'reserved', fmt(reserved[c] + amount), 'r:' .. id, ARGV[3])
  redis.call('ZADD', holds, ARGV[4], id)
  redis.call('PEXPIRE', budget, ttl)
  redis.call('PEXPIRE', holds, ttl)
end
return {0, ''}
"""
)

# KEYS: hash, zset for each cap, then the settlement's marker. ARGV: id, actual, ttl_ms for each cap,
# then the marker's ttl_ms (0: no id to remember). The actual spend counts even when the reservation
# already expired: the money was spent. An id already settled changes nothing.
SETTLE = (
    FMT
    + MARK
    + """
local id, actual = ARGV[1], tonumber(ARGV[2])
local caps = (#KEYS - 1) / 2
local marker, marker_ttl = KEYS[#KEYS], tonumber(ARGV[3 + caps])
if marker_ttl > 0 and redis.call('HEXISTS', marker, 'budget') == 1 then return 0 end
for c = 1, caps do
  local budget, holds, ttl = KEYS[2 * c - 1], KEYS[2 * c], ARGV[2 + c]
  local fields = redis.call('HMGET', budget, 'spent', 'reserved', 'r:' .. id)
  local spent = tonumber(fields[1] or '0') + actual
  local r = tonumber(fields[2] or '0')
  if fields[3] then
    r = r - tonumber(fields[3])
    redis.call('HDEL', budget, 'r:' .. id)
    redis.call('ZREM', holds, id)
  end
  if r < 0 or redis.call('EXISTS', holds) == 0 then r = 0 end
  redis.call('HSET', budget, 'spent', fmt(spent), 'reserved', fmt(r))
  redis.call('PEXPIRE', budget, ttl)
  redis.call('PEXPIRE', holds, ttl)
end
if marker_ttl > 0 then mark(marker, 'budget', marker_ttl) end
return 0
"""
)

# KEYS: budget hashes. Returns spent + reserved for each, as strings.
SPENT = (
    FMT
    + """
local out = {}
for i = 1, #KEYS do
  local fields = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  out[i] = fmt(tonumber(fields[1] or '0') + tonumber(fields[2] or '0'))
end
return out
"""
)

# KEYS[1]: ZSET of lease ids scored by expiry. ARGV: now, limit, expires_at, id, ttl_ms.
# The ZSET's own TTL only ever grows, so it outlives every lease in it.
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
"""

BREAKER_FIELDS = ("status", "opened_at", "window_start", "failures", "calls", "probe_until")

# KEYS: breaker hashes. Returns BREAKER_FIELDS of each, flattened (missing fields are nil).
BREAKER_READ = """
local out = {}
for i = 1, #KEYS do
  local fields = redis.call('HMGET', KEYS[i], 'status', 'opened_at', 'window_start', 'failures', 'calls', 'probe_until')
  for j = 1, 6 do out[#out + 1] = fields[j] end
end
return out
"""

# KEYS[1]: breaker hash. ARGV: ok (1/0), now, failures, window_seconds, failure_rate (-1: none),
# min_calls, cooldown_seconds, ttl_ms. Returns the new status. Mirrors rules.record().
BREAKER_RECORD = (
    FMT
    + """
local key, ok, now = KEYS[1], ARGV[1] == '1', tonumber(ARGV[2])
local max_failures, window, rate = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local min_calls, cooldown, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local f = redis.call('HMGET', key, 'status', 'opened_at', 'window_start', 'failures', 'calls')
if f[1] == 'open' and f[2] then
  if now < tonumber(f[2]) + cooldown then return 'open' end
  redis.call('HDEL', key, 'probe_until')
  if ok then
    redis.call('HDEL', key, 'opened_at')
    redis.call('HSET', key, 'status', 'closed', 'window_start', fmt(now), 'failures', '0', 'calls', '0')
    redis.call('PEXPIRE', key, ttl)
    return 'closed'
  end
  redis.call('HSET', key, 'opened_at', fmt(now))
  redis.call('PEXPIRE', key, ttl)
  return 'open'
end
local start, failures, calls = tonumber(f[3]), tonumber(f[4] or '0'), tonumber(f[5] or '0')
if not start or now >= start + window then start, failures, calls = now, 0, 0 end
calls = calls + 1
local status = 'closed'
if not ok then
  failures = failures + 1
  if failures >= max_failures or (rate >= 0 and calls >= min_calls and failures >= rate * calls) then
    status = 'open'
    redis.call('HSET', key, 'opened_at', fmt(now))
  end
end
redis.call('HSET', key, 'status', status, 'window_start', fmt(start), 'failures', failures, 'calls', calls)
redis.call('PEXPIRE', key, ttl)
return status
"""
)

# KEYS[1]: breaker hash. ARGV: now, cooldown_seconds, probe_seconds, ttl_ms. Mirrors rules.allow_probe().
BREAKER_PROBE = (
    FMT
    + """
local f = redis.call('HMGET', KEYS[1], 'status', 'opened_at', 'probe_until')
if f[1] ~= 'open' or not f[2] then return 1 end
local now = tonumber(ARGV[1])
if now < tonumber(f[2]) + tonumber(ARGV[2]) then return 0 end
if f[3] and now < tonumber(f[3]) then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', fmt(now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
)

SCRIPTS = {
    "admit": ADMIT,
    "adjust": ADJUST,
    "reserve": RESERVE,
    "settle": SETTLE,
    "spent": SPENT,
    "acquire": ACQUIRE,
    "breaker_read": BREAKER_READ,
    "breaker_record": BREAKER_RECORD,
    "breaker_probe": BREAKER_PROBE,
}
