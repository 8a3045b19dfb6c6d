-- echo_ekiden.lua - the Lua echo server of issue 10 for bench/lua/run.sh: one
-- coroutine task per connection, 64 KiB reads.
--
--   lua5.4 bench/lua/echo_ekiden.lua ADDR [WORKERS] [FLAVOR] [READS]
-- WORKERS: the runtime's worker threads (default 1); FLAVOR: "multi_thread"
-- (default) or "current_thread" (the reactor runs on this, the Lua, thread);
-- READS: "string" (stream:read, a new string per read: examples/echo.lua, the
-- default) or "buffer" (stream:read_into one ek.buffer per connection, no
-- garbage: docs/lua.md "Buffers") or "lean" (the buffer loop with its three
-- methods looked up once, before the loop, into locals: Lua's own idiom for a
-- hot loop, docs/lua.md "Performance notes"). The collector's setting comes from GC
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

-- The same loop with the methods in locals: no method lookup (a metatable's
-- __index per call) per round trip.
local function echo_lean(stream)
  local buf = ek.buffer(65536)
  local read_into, write, reset = stream.read_into, stream.write, buf.reset
  while true do
    local n = read_into(stream, buf)
    if not n or n == 0 then break end
    if not write(stream, buf) then break end
    reset(buf)
  end
  buf:close()
  stream:close()
end

local loops = { string = echo_string, buffer = echo_buffer, lean = echo_lean }
local echo = loops[arg[4] or "string"]
assert(echo, "READS: string, buffer or lean")

ek.run(function()
  local listener = assert(ek.tcp.listen(arg[1] or "127.0.0.1:0"))
  print("listening on " .. listener:local_addr())
  io.stdout:flush()
  while true do
    local stream = assert(listener:accept())
    ek.spawn(echo, stream)
  end
end, { workers = tonumber(arg[2] or "1"), flavor = arg[3], gc = gc })
