-- Look records up: per key, nil when absent, else the stored value and the key's
-- absolute expiry (EXPIRETIME), since the compact form leaves the expiry to the key.
-- One round trip whether or not anything is found: measured as cheap as MGET for a miss,
-- and cheaper for a hit than MGET then EXPIRETIME, two round trips (bench/memory.py).
--
-- KEYS: the record keys (all in one slot: standalone and Sentinel only).

local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value then
    out[i] = {value, redis.call('EXPIRETIME', key)}
  else
    out[i] = false
  end
end
return out
