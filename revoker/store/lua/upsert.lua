-- Revoke a batch of records atomically per key: store each one, or merge it into the one
-- already stored, and append its event to the stream.
--
-- Two concurrent revokers of one key never shorten it: the later expiry and the later
-- issued_before win, and the first revoked_at, reason and actor are kept. The expiry of
-- what is stored is the key's own (EXPIRETIME); an older full-form value may also carry
-- it as "expires_at", and is rewritten in the compact form.
--
-- KEYS: the n record keys, then the events key when ARGV[3] is '1' (on Cluster the stream
-- lives in another slot and the caller appends events itself).
-- ARGV: events maxlen, at, '1'/'0', then per record: its compact JSON (what the key and the
-- expiry do not carry), its full JSON (for the event), its expires_at.
-- Returns, per record: created (1/0), the stored compact JSON, the expiry.

local FIELDS = 3
local NAMES = {'revoked_at', 'issued_before', 'reason', 'actor'}
local n = (#ARGV - 3) / FIELDS
local events = nil
if ARGV[3] == '1' then events = KEYS[n + 1] end

local function present(v)
  return v ~= nil and v ~= cjson.null
end

local function compact(t)
  local c = {}
  for _, name in ipairs(NAMES) do
    if present(t[name]) then c[name] = t[name] end
  end
  return c
end

local out = {}
for i = 1, n do
  local key, base = KEYS[i], 3 + FIELDS * (i - 1) + 1
  local stored, full = ARGV[base], ARGV[base + 1]
  local expires_at = tonumber(ARGV[base + 2])
  local created = 1
  local old = redis.call('GET', key)
  if old then
    created = 0
    local prev = cjson.decode(old)
    local old_exp = redis.call('EXPIRETIME', key)
    if present(prev.expires_at) and tonumber(prev.expires_at) > old_exp then
      old_exp = tonumber(prev.expires_at)
    end
    if old_exp > expires_at then expires_at = old_exp end
    local new = cjson.decode(full)
    local cut = new.issued_before
    if present(prev.issued_before) and (not present(cut) or prev.issued_before > cut) then
      cut = prev.issued_before
    end
    local merged = compact({revoked_at = prev.revoked_at, issued_before = cut,
                            reason = prev.reason, actor = prev.actor})
    stored = cjson.encode(merged)
    merged.kind, merged.value, merged.expires_at = new.kind, new.value, expires_at
    full = cjson.encode(merged)
  end
  redis.call('SET', key, stored, 'EXAT', expires_at)
  if events then
    redis.call('XADD', events, 'MAXLEN', '~', ARGV[1], '*',
               'type', 'revoked', 'record', full, 'at', ARGV[2])
  end
  out[3 * i - 2] = created
  out[3 * i - 1] = stored
  out[3 * i] = expires_at
end
return out
