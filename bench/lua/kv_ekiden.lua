-- kv_ekiden.lua - a key-value service (PING, SET, GET, DEL) as a Lua service on
-- ek.serve{codec = "resp"}: the C server reads, parses RESP and writes; the Lua
-- function gets each command's elements as its arguments (ek.service's
-- args = true: no request table), e.g. handle("SET", "k", "v"). For
-- bench/lua/run.sh (driven by redis-benchmark); the same logic as kv_luv.lua.
--
--   lua5.4 bench/lua/kv_ekiden.lua ADDR [WORKERS] [FLAVOR] [table]
-- "table": the command as one request table { "SET", "k", "v", n = 3 } instead.
-- The collector's setting comes from GC (bench/lua/gc_policy.lua), as ek.run's
-- gc option: the same for kv_luv.lua.
local ek = require "ekiden"
local gc = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/gc_policy.lua")

local store = {}
local OK, PONG = { ok = "OK" }, { ok = "PONG" }
local function handle(name, a, b, ...)
  if name == "SET" or name == "set" then
    store[a] = b
    return OK
  elseif name == "GET" or name == "get" then
    return store[a]
  elseif name == "PING" or name == "ping" then
    return PONG
  elseif name == "DEL" or name == "del" then
    local n = 0
    for _, k in ipairs({ a, b, ... }) do
      if store[k] ~= nil then n = n + 1 store[k] = nil end
    end
    return n
  end
  return { err = "ERR unknown command '" .. tostring(name) .. "'" }
end

-- The same, for the request table of the default ek.service.
local function handle_table(cmd)
  local name = cmd[1]
  if name == "SET" or name == "set" then
    store[cmd[2]] = cmd[3]
    return OK
  elseif name == "GET" or name == "get" then
    return store[cmd[2]]
  end
  return handle(table.unpack(cmd, 1, cmd.n))
end

ek.run(function()
  local svc = arg[4] == "table" and ek.service(handle_table) or ek.service(handle, { args = true })
  local server = assert(ek.serve { addr = arg[1] or "127.0.0.1:0", codec = "resp", service = svc })
  print("listening on " .. server:local_addr())
  io.stdout:flush()
  ek.sleep(1e9)
end, { workers = tonumber(arg[2] or "1"), flavor = arg[3], gc = gc })
