-- http.lua - an HTTP/1.1 server in Lua on ek.serve{codec = "http"}: the C server
-- (llhttp) parses requests and writes responses on the worker threads; this
-- function sees each request as a table and returns the response as one.
--
--   lua5.4 examples/http.lua [ADDR]      (default 127.0.0.1:0: a free port)
--   curl http://127.0.0.1:PORT/hello     curl -d 'some data' http://127.0.0.1:PORT/echo
local ek = require "ekiden"

local function handle(req)
  -- req = { method = "GET", target = "/hello", version = 11, body = "",
  --         headers = { host = "...", ["user-agent"] = "..." }, keep_alive = true }
  if req.method == "GET" and req.target == "/hello" then
    return { status = 200, headers = { ["content-type"] = "text/plain" }, body = "Hello, World!\n" }
  elseif req.method == "POST" and req.target == "/echo" then
    return { status = 200, headers = { ["content-type"] = req.headers["content-type"] or "application/octet-stream" },
             body = req.body }
  elseif req.target == "/slow" then
    ek.sleep(0.05) -- a handler may wait: other requests go on meanwhile
    return "slept\n" -- a string is a 200 response with that body
  end
  return { status = 404, body = "no " .. req.target .. "\n" }
end

ek.run(function()
  local server = assert(ek.serve { addr = arg and arg[1] or "127.0.0.1:0", codec = "http",
                                   service = ek.service(handle) })
  print("listening on " .. server:local_addr())
  io.stdout:flush()
  ek.sleep(math.huge)
end)
