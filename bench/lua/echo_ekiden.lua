-- echo_ekiden.lua - the Lua echo server of issue 10 for bench/lua/run.sh: one
-- coroutine task per connection, 64 KiB reads.
--
--   lua5.4 bench/lua/echo_ekiden.lua ADDR [WORKERS] [FLAVOR] [READS]
-- WORKERS: the runtime's worker threads (default 1); FLAVOR: "multi_thread"
-- (default) or "current_thread" (the reactor runs on this, the Lua, thread);
-- READS: "string" (stream:read, a new string per read: examples/echo.lua, the
-- default) or "buffer" (stream:read_into one ek.buffer per connection, no
-- garbage: docs/lua.md "Buffers"). The collector's setting comes from GC
-- (bench/lua/gc_policy.lua), as ek.run's gc option.
local ek = require "ekiden"
local gc = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/gc_policy.lua")

local function echo_string(stream)
  while true do
    local data = stream:read(65536)
    if not data or data == "" then break end
    assert(stream:write(data))
  end
  stream:close()
end

local function echo_buffer(stream)
  local buf = ek.buffer(65536)
  while true do
    local n = stream:read_into(buf)
    if not n or n == 0 then break end
    assert(stream:write(buf))
    buf:reset()
  end
  buf:close()
  stream:close()
end

local echo = arg[4] == "buffer" and echo_buffer or echo_string
assert(arg[4] == nil or arg[4] == "buffer" or arg[4] == "string", "READS: string or buffer")

ek.run(function()
  local listener = assert(ek.tcp.listen(arg[1] or "127.0.0.1:0"))
  print("listening on " .. listener:local_addr())
  io.stdout:flush()
  while true do
    local stream = assert(listener:accept())
    ek.spawn(echo, stream)
  end
end, { workers = tonumber(arg[2] or "1"), flavor = arg[3], gc = gc })
