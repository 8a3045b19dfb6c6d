-- kv_luv.lua - the key-value service of kv_ekiden.lua on luv, with a RESP parser
-- in Lua (multibulk and inline commands, pipelined): the peer of kv_ekiden.lua in
-- bench/lua/run.sh.
--
--   lua5.4 bench/lua/kv_luv.lua HOST:PORT
-- The collector's setting comes from GC (bench/lua/gc_policy.lua), applied
-- with collectgarbage before the loop runs, as for kv_ekiden.lua.
local uv = require "luv"
select(2, dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/gc_policy.lua"))()
local find, sub, tonumber, concat = string.find, string.sub, tonumber, table.concat

local store = {}
local function handle(cmd, n)
  local name = cmd[1]
  if name == "SET" or name == "set" then
    store[cmd[2]] = cmd[3]
    return "+OK\r\n"
  elseif name == "GET" or name == "get" then
    local v = store[cmd[2]]
    if v == nil then return "$-1\r\n" end
    return "$" .. #v .. "\r\n" .. v .. "\r\n"
  elseif name == "PING" or name == "ping" then
    return "+PONG\r\n"
  elseif name == "DEL" or name == "del" then
    local c = 0
    for i = 2, n do
      if store[cmd[i]] ~= nil then c = c + 1 store[cmd[i]] = nil end
    end
    return ":" .. c .. "\r\n"
  end
  return "-ERR unknown command '" .. tostring(name) .. "'\r\n"
end

-- Parse one command from buf at pos: cmd, n, next position; nil if incomplete;
-- false, message on a protocol error.
local function parse(buf, pos)
  if sub(buf, pos, pos) == "*" then
    local e = find(buf, "\r\n", pos, true)
    if not e then return nil end
    local count = tonumber(sub(buf, pos + 1, e - 1))
    if not count then return false, "invalid multibulk length" end
    local cmd, p = {}, e + 2
    for i = 1, count do
      if sub(buf, p, p) ~= "$" then
        if p > #buf then return nil end
        return false, "expected '$'"
      end
      local e2 = find(buf, "\r\n", p, true)
      if not e2 then return nil end
      local len = tonumber(sub(buf, p + 1, e2 - 1))
      if not len then return false, "invalid bulk length" end
      local s = e2 + 2
      if s + len + 1 > #buf then return nil end
      cmd[i] = sub(buf, s, s + len - 1)
      p = s + len + 2
    end
    return cmd, count, p
  end
  local e = find(buf, "\n", pos, true)
  if not e then return nil end
  local line = sub(buf, pos, e - 1)
  local cmd, n = {}, 0
  for w in line:gmatch("%S+") do n = n + 1 cmd[n] = w end
  return cmd, n, e + 1
end

local host, port = (arg[1] or "127.0.0.1:0"):match("^(.*):(%d+)$")
local server = uv.new_tcp()
assert(server:bind(host, tonumber(port)))
assert(server:listen(1024, function(err)
  assert(not err, err)
  local client = uv.new_tcp()
  server:accept(client)
  client:nodelay(true)
  local buf = ""
  client:read_start(function(rerr, data)
    if rerr or not data then
      client:close()
      return
    end
    buf = buf .. data
    local out, no, pos = {}, 0, 1
    while true do
      local cmd, n, nxt = parse(buf, pos)
      if cmd == nil then break end
      if cmd == false then
        no = no + 1
        out[no] = "-ERR Protocol error: " .. n .. "\r\n"
        client:write(concat(out))
        client:close()
        return
      end
      pos = nxt
      if n > 0 then
        no = no + 1
        out[no] = handle(cmd, n)
      end
    end
    buf = sub(buf, pos)
    if no > 0 then client:write(concat(out)) end
  end)
end))
print("listening on " .. host .. ":" .. server:getsockname().port)
io.stdout:flush()
uv.run()
