-- Unrevoke: remove a record and append an "unrevoked" event carrying the full record.
--
-- KEYS[1]: the record key; KEYS[2]: the events key (absent on Cluster, where the caller
-- appends the event itself). ARGV: events maxlen, at, kind, value.
-- Returns the removed record as full JSON, or nil when there was none.

local old = redis.call('GET', KEYS[1])
if not old then return false end
local expires_at = redis.call('EXPIRETIME', KEYS[1])
redis.call('DEL', KEYS[1])
local prev = cjson.decode(old)
local full = {}
for _, name in ipairs({'revoked_at', 'issued_before', 'reason', 'actor'}) do
  local v = prev[name]
  if v ~= nil and v ~= cjson.null then full[name] = v end
end
if expires_at < 0 and prev.expires_at ~= nil and prev.expires_at ~= cjson.null then
  expires_at = prev.expires_at
end
full.kind, full.value, full.expires_at = ARGV[3], ARGV[4], expires_at
local encoded = cjson.encode(full)
if KEYS[2] then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*',
             'type', 'unrevoked', 'record', encoded, 'at', ARGV[2])
end
return encoded
