-- kv_ekiden.lua - a key-value service (PING, SET, GET, DEL) as a Lua service on
-- ek.serve{codec = "resp"}: the C server reads, parses RESP and writes; the Lua
-- function sees each command as { "SET", "k", "v", n = 3 }. For bench/lua/run.sh
-- (driven by redis-benchmark); the same logic as kv_luv.lua.
--
--   lua5.4 bench/lua/kv_ekiden.lua ADDR [WORKERS] [FLAVOR]
local ek = require "ekiden"

local store = {}
local OK, PONG = { ok = "OK" }, { ok = "PONG" }
local function handle(cmd)
  local name = cmd[1]
  if name == "SET" or name == "set" then
    store[cmd[2]] = cmd[3]
    return OK
  elseif name == "GET" or name == "get" then
    return store[cmd[2]]
  elseif name == "PING" or name == "ping" then
    return PONG
  elseif name == "DEL" or name == "del" then
    local n = 0
    for i = 2, cmd.n do
      if store[cmd[i]] ~= nil then n = n + 1 store[cmd[i]] = nil end
    end
    return n
  end
  return { err = "ERR unknown command '" .. tostring(name) .. "'" }
end

ek.run(function()
  local server = assert(ek.serve { addr = arg[1] or "127.0.0.1:0", codec = "resp",
                                   service = ek.service(handle) })
  print("listening on " .. server:local_addr())
  io.stdout:flush()
  ek.sleep(1e9)
end, { workers = tonumber(arg[2] or "1"), flavor = arg[3] })
