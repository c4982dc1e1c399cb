-- HAProxy 2.6+ action asking revoker about every request, with HAProxy's built-in
-- Lua HTTP client (core.httpclient). Loaded by haproxy.cfg (lua-load) and used as
--
--     http-request lua.revoker_authz <revoker base URL> <gateway key>
--
-- revoker's answer decides:
--   2xx      the request goes on; txn.revoker_subject / txn.revoker_jti hold revoker's
--            X-Auth-Subject / X-Auth-Jti for haproxy.cfg to put on the upstream request
--   401/403  revoker's answer (status, WWW-Authenticate, body) goes back to the client
--   503 with Retry-After (revoker's closed fail mode): passed to the client as is
--   anything else (no answer at all: refused connection, timeout; any other status)
--            503 "authorization service unavailable" with Retry-After: 1: the request
--            is refused, never let through unchecked
--
-- Only the client's Authorization travels to revoker, plus the gateway's key; the body is
-- never sent. The original path and query are appended to /v1/authz so that revoker's
-- metrics can tell routes apart (revoker answers the same for every path under it).

-- Per attempt. HAProxy 2.6 gives up on a revoker that accepts the connection but does not
-- answer after about four times this (observed: 4 x 500 ms = 2 s), then refuses with 503.
local TIMEOUT_MS = 500

local function first(headers, name)
    local values = headers and headers[name]
    if values == nil then
        return nil
    end
    -- HAProxy indexes header values from 0
    return values[0] or values[1]
end

local function reply(txn, status, headers, body)
    local r = txn:reply()
    r:set_status(status)
    r:add_header("cache-control", "no-store")
    for name, value in pairs(headers) do
        if value ~= nil then
            r:add_header(name, value)
        end
    end
    r:set_body(body or "")
    txn:done(r)
end

local function authz(txn, base, key)
    local request_headers = { ["X-Revoker-Key"] = { key } }
    local client = txn.http:req_get_headers()["authorization"]
    if client ~= nil then
        local values = {}
        local i = 0
        while client[i] ~= nil do
            values[#values + 1] = client[i]
            i = i + 1
        end
        request_headers["Authorization"] = values
    end

    local hc = core.httpclient()
    local res = hc:get{
        url = base .. "/v1/authz" .. (txn.f:pathq() or "/"),
        headers = request_headers,
        timeout = TIMEOUT_MS,
    }
    local status = res and tonumber(res.status) or 0
    local headers = res and res.headers or {}
    local body = res and res.body or ""

    if status >= 200 and status < 300 then
        txn:set_var("txn.revoker_subject", first(headers, "x-auth-subject") or "")
        txn:set_var("txn.revoker_jti", first(headers, "x-auth-jti") or "")
        return
    end
    if status == 401 or status == 403 then
        reply(txn, status, {
            ["www-authenticate"] = first(headers, "www-authenticate"),
            ["content-type"] = first(headers, "content-type"),
        }, body)
        return
    end
    local retry_after = first(headers, "retry-after")
    if status == 503 and retry_after ~= nil then
        -- revoker's own "revocation state unknown" (closed fail mode)
        reply(txn, 503, {
            ["retry-after"] = retry_after,
            ["content-type"] = first(headers, "content-type"),
        }, body)
        return
    end
    -- No answer from revoker: core.httpclient reports a refused connection or a timeout
    -- as a 503 of HAProxy's own (an HTML page, no Retry-After), or no status at all.
    core.Warning("revoker_authz: no usable answer from revoker (status " .. status .. ")")
    reply(txn, 503, { ["retry-after"] = "1", ["content-type"] = "text/plain" },
          "authorization service unavailable\n")
end

core.register_action("revoker_authz", { "http-req" }, authz, 2)
