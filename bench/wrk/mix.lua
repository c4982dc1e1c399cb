-- One wrk script for every row, so revoker and the baselines get the same request mix.
-- BENCH_ROW: check_jti | check_claims | authz | revoke
-- BENCH_DATA: file with one revoked jti (check rows) or one token (authz rows) per line
-- BENCH_REVOKED_PCT: share of check requests that name a revoked jti (default 1)
-- BENCH_KEY: API key sent as X-Revoker-Key
-- BENCH_PATH: the path of the authz row (default /v1/authz; bench/gateway.py sends the
--   authz row to nginx, which asks revoker in an auth_request subrequest)
-- BENCH_DELAY_MS: when set, each connection waits this long on average after an answer
--   before its next request (wrk's delay hook, a uniformly random whole number of ms up to
--   twice that), so that every server gets the same request rate rather than as many
--   requests as it can answer; latency is timed from the send. The wait is random so that
--   the connections do not fall into step and arrive in bursts of 64.
local row = os.getenv("BENCH_ROW") or "check_jti"
local data_file = os.getenv("BENCH_DATA")
local revoked_pct = tonumber(os.getenv("BENCH_REVOKED_PCT") or "1")
local key = os.getenv("BENCH_KEY") or ""
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local lines = {}
local counter = 0
local tag = ""
local now = os.time()

local pace_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace_ms then
  -- defined only when pacing: wrk looks for the function once, at start
  function delay()
    return math.random(0, 2 * pace_ms)
  end
end

local threads = {}
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

-- Eight bytes of the kernel's randomness, in hex: wrk's math.random starts from the same
-- seed in every run, and a tag drawn from it would repeat from one run to the next (a
-- revoke row would then re-revoke the jtis of the run before: merges, not new records).
local function entropy()
  local f = io.open("/dev/urandom", "rb")
  if not f then return tostring(os.time()) .. "-" .. tostring(os.clock()) end
  local bytes = f:read(8)
  f:close()
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function init(args)
  tag = tostring(tid or 0) .. "-" .. entropy()
  math.randomseed(os.time() * 1000 + (tid or 0))
  if data_file then
    for line in io.lines(data_file) do
      if #line > 0 then table.insert(lines, line) end
    end
  end
  counter = (tid or 1) - 1
end

local function jti()
  counter = counter + 1
  if #lines > 0 and math.random() * 100 < revoked_pct then
    return lines[math.random(1, #lines)]
  end
  return "live-" .. tag .. "-" .. counter
end

function request()
  if row == "check_jti" then
    return wrk.format("GET", "/v1/check/" .. jti(), {["X-Revoker-Key"] = key})
  elseif row == "check_claims" then
    local body = '{"claims":{"jti":"' .. jti() .. '","sub":"user-' .. (counter % 5000)
      .. '","iat":' .. now .. '}}'
    return wrk.format("POST", "/v1/check",
      {["X-Revoker-Key"] = key, ["Content-Type"] = "application/json"}, body)
  elseif row == "authz" then
    -- threads take interleaved tokens, so each token recurs only once per full cycle
    counter = counter + nthreads
    local token = lines[(counter % #lines) + 1]
    return wrk.format("GET", os.getenv("BENCH_PATH") or "/v1/authz",
      {["X-Revoker-Key"] = key, ["Authorization"] = "Bearer " .. token})
  elseif row == "revoke" then
    counter = counter + 1
    local body = '{"kind":"jti","value":"rv-' .. tag .. '-' .. counter .. '","ttl":3600}'
    return wrk.format("POST", "/v1/revocations",
      {["X-Revoker-Key"] = key, ["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", os.getenv("BENCH_PATH") or "/", {["X-Revoker-Key"] = key})
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
