-- echo.lua - the echo server on the Lua binding: every byte a client sends comes
-- back. One coroutine task per connection, all on this thread; the sockets'
-- readiness and the timers are handled by the runtime's worker threads.
--
--   lua5.4 examples/echo.lua [ADDR]      (default 127.0.0.1:0: a free port)
local ek = require "ekiden"

ek.run(function()
  local listener = assert(ek.tcp.listen(arg and arg[1] or "127.0.0.1:0"))
  print("listening on " .. listener:local_addr())
  io.stdout:flush()
  while true do
    local stream = assert(listener:accept())
    ek.spawn(function()
      while true do
        local data, err = stream:read(65536)
        if not data or data == "" then break end
        assert(stream:write(data))
      end
      stream:close()
    end)
  end
end, { workers = 2 })
