-- echo_ekiden.lua - the Lua echo server of issue 10 (examples/echo.lua) for
-- bench/lua/run.sh: one coroutine task per connection, 64 KiB reads.
--
--   lua5.4 bench/lua/echo_ekiden.lua ADDR [WORKERS] [FLAVOR]
-- WORKERS: the runtime's worker threads (default 1); FLAVOR: "multi_thread"
-- (default) or "current_thread" (the reactor runs on this, the Lua, thread).
local ek = require "ekiden"

ek.run(function()
  local listener = assert(ek.tcp.listen(arg[1] or "127.0.0.1:0"))
  print("listening on " .. listener:local_addr())
  io.stdout:flush()
  while true do
    local stream = assert(listener:accept())
    ek.spawn(function()
      while true do
        local data = stream:read(65536)
        if not data or data == "" then break end
        assert(stream:write(data))
      end
      stream:close()
    end)
  end
end, { workers = tonumber(arg[2] or "1"), flavor = arg[3] })
