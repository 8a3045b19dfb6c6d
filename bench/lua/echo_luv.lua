-- echo_luv.lua - the same echo server on luv (libuv for Lua, Debian lua-luv):
-- the peer of bench/lua/echo_ekiden.lua in bench/lua/run.sh.
--
--   lua5.4 bench/lua/echo_luv.lua HOST:PORT
-- The collector's setting comes from GC (bench/lua/gc_policy.lua), applied
-- with collectgarbage before the loop runs: the same as the ekiden servers'.
local uv = require "luv"
select(2, dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/gc_policy.lua"))()
local host, port = (arg[1] or "127.0.0.1:0"):match("^(.*):(%d+)$")
local server = uv.new_tcp()
assert(server:bind(host, tonumber(port)))
assert(server:listen(1024, function(err)
  assert(not err, err)
  local client = uv.new_tcp()
  server:accept(client)
  client:read_start(function(rerr, data)
    if rerr or not data then
      client:close()
      return
    end
    client:write(data)
  end)
end))
print("listening on " .. host .. ":" .. server:getsockname().port)
io.stdout:flush()
uv.run()
