-- Export records for a mirror's load: one SCAN step, and for each record key found its
-- name without the prefix (kind:value), expiry (the full form's expires_at, else the
-- key's EXPIRETIME; -1: none), revoked_at and issued_before (-1 when it has none), flat.
-- Reading the numbers here, next to the data, spares the loader a parse per record; the
-- SCAN runs here so that a page is one round trip.
--
-- Standalone and Sentinel only: the keys read are found by the SCAN, not passed as KEYS,
-- which Redis Cluster would refuse (a Cluster store loads through its listing instead).
-- ARGV: cursor, match pattern, count, prefix length.

local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local skip = tonumber(ARGV[4])
local kinds = {jti = true, sub = true, sid = true, kid = true, client = true}
local out = {reply[1]}
local n = 1
for _, key in ipairs(reply[2]) do
  local name = string.sub(key, skip + 1)
  local kind = string.match(name, '^(%l+):.')
  if kind and kinds[kind] then
    local raw = redis.call('GET', key)
    if raw then
      -- Inside a JSON string every quote is escaped, so the first '"field":' is the field
      -- itself: three pattern matches cost less than decoding the object.
      local revoked = tonumber(string.match(raw, '"revoked_at":(%-?%d+)'))
      local expiry = tonumber(string.match(raw, '"expires_at":(%-?%d+)'))
      local cutoff = tonumber(string.match(raw, '"issued_before":(%-?%d+)')) or -1
      if revoked then
        if not expiry then expiry = redis.call('EXPIRETIME', key) end
        if expiry ~= -2 then
          out[n + 1], out[n + 2], out[n + 3], out[n + 4] = name, expiry, revoked, cutoff
          n = n + 4
        end
      end
    end
  end
end
return out
