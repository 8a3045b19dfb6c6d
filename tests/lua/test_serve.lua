-- ek.serve and ek.connect: the C framed server and client with the lines,
-- length-delimited and RESP codecs, Lua values of RESP messages, errors,
-- shutdown with requests in flight, and any order of collection.

local function upper_service()
  return assert(ek.service(function(req) return req:upper() end))
end

-- A raw TCP client for checking the bytes on the wire.
local function raw(addr)
  return assert(ek.tcp.connect(addr))
end

test("lines: a Lua service on ek.serve, pipelined, from a raw socket and from ek.connect", function()
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines", service = upper_service() })
  local addr = assert(server:local_addr())
  matches(addr, "^127%.0%.0%.1:%d+$", "local_addr")
  matches(tostring(server), "ekiden.server %(lines, serving, direct%)")
  -- three requests in one write: three responses in order
  local s = raw(addr)
  assert(s:write("one\ntwo\r\nthree\n"))
  eq(s:read_line(), "ONE", "first")
  eq(s:read_line(), "TWO", "second (CRLF)")
  eq(s:read_line(), "THREE", "third")
  s:close()
  -- the client service: many concurrent calls over one connection
  local client = assert(ek.connect { addr = addr, codec = "lines" })
  eq(client:call("hello"), "HELLO", "client call")
  local g = ek.group()
  local got = {}
  for i = 1, 100 do g:spawn(function() got[i] = client:call("m" .. i) end) end
  eq(g:wait(), true, "concurrent calls")
  for i = 1, 100 do eq(got[i], "M" .. i, "response " .. i) end
  raises(function() client:call({}) end, "string expected")
  fails("EINVAL", client:call("has\nnewline"))
  local m = server:metrics()
  ok(m.REQUESTS >= 104, "REQUESTS metric " .. tostring(m.REQUESTS))
  ok(m.CONNECTIONS_TOTAL >= 2, "CONNECTIONS_TOTAL")
  eq(server:shutdown(1), true, "shutdown")
  fails("ECLOSED", server:local_addr())
  eq(server:shutdown(1), true, "shutdown is idempotent")
end)

test("lines: a line over max_frame closes that connection only", function()
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines", max_frame = 16,
                                   service = upper_service() })
  local addr = server:local_addr()
  local s = raw(addr)
  assert(s:write(string.rep("x", 100) .. "\n"))
  eq(s:read(), "", "closed after the long line")
  local s2 = raw(addr)
  assert(s2:write("short\n"))
  eq(s2:read_line(), "SHORT", "another connection still served")
  server:close()
end)

test("length: 4-byte big-endian frames, binary payloads", function()
  local seen
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "length", service =
    ek.service(function(req) seen = req return req .. "\0!" end) })
  local addr = server:local_addr()
  local s = raw(addr)
  assert(s:write("\0\0\0\3a\0b"))
  eq(s:read_exactly(4), "\0\0\0\5", "response header")
  eq(s:read_exactly(5), "a\0b\0!", "response payload")
  eq(seen, "a\0b", "the service saw the frame without its header")
  local client = assert(ek.connect { addr = addr, codec = "length" })
  local big = string.rep("0123456789", 10000)
  eq(client:call(big), big .. "\0!", "a 100 kB frame")
  eq(client:call(""), "\0!", "an empty frame")
  server:close()
end)

-- A small key-value store: the logic of the RESP benchmark.
local function kv_service()
  local store = {}
  return assert(ek.service(function(cmd)
    local name = cmd[1]:upper()
    if name == "PING" then return { ok = "PONG" } end
    if name == "SET" then store[cmd[2]] = cmd[3] return { ok = "OK" } end
    if name == "GET" then return store[cmd[2]] end -- nil: a null bulk string
    if name == "DEL" then
      local n = 0
      for i = 2, cmd.n do if store[cmd[i]] then n = n + 1 store[cmd[i]] = nil end end
      return n
    end
    return { err = "ERR unknown command '" .. cmd[1] .. "'" }
  end))
end

test("resp: a key-value service; the wire format; ek.connect with codec resp", function()
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "resp", service = kv_service() })
  local addr = server:local_addr()
  local s = raw(addr)
  -- multibulk and inline commands, pipelined
  assert(s:write("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\0lue\r\nGET k\r\nGET nope\r\nDEL k nope\r\nFOO\r\n"))
  eq(s:read_line(), "+OK", "SET")
  eq(s:read_line(), "$5", "GET length")
  eq(s:read_exactly(7), "v\0lue\r\n", "GET value")
  eq(s:read_line(), "$-1", "GET of a missing key: null")
  eq(s:read_line(), ":1", "DEL count")
  eq(s:read_line(), "-ERR unknown command 'FOO'", "error reply")
  s:close()
  local c = assert(ek.connect { addr = addr, codec = "resp" })
  eq(c:call({ "SET", "n", 42 })["ok"], "OK", "a number argument is sent as a bulk string")
  eq(c:call({ "GET", "n" }), "42", "GET")
  eq(c:call({ "GET", "missing" }), ek.null, "null is ek.null")
  eq(c:call("PING").ok, "PONG", "a command without arguments as a string")
  eq(c:call({ "DEL", "n", "x", n = 3 }), 1, "integer reply")
  eq(c:call({ "NOPE" }).err, "ERR unknown command 'NOPE'", "error reply as { err = }")
  server:close()
end)

test("resp: ek.service(fn, {args = true}) hands a command's elements as arguments", function()
  local function describe(...)
    local n, parts = select("#", ...), {}
    for i = 1, math.min(n, 4) do
      local v = select(i, ...)
      parts[i] = v == ek.null and "null" or type(v) == "table" and "table" or tostring(v)
    end
    return table.concat(parts, ",") .. "#" .. n
  end
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "resp",
                                   service = ek.service(describe, { args = true }) })
  local addr = server:local_addr()
  local c = assert(ek.connect { addr = addr, codec = "resp" })
  eq(c:call({ "SET", "a", "" }), "SET,a,#3", "a command as three strings")
  eq(c:call("PING"), "PING#1", "one element")
  local big = { "MSET" }
  for i = 2, 3000 do big[i] = "k" .. i end
  eq(c:call(big), "MSET,k2,k3,k4#3000", "3000 arguments")
  local s = raw(addr)
  assert(s:write("GET k\r\n"))
  eq(s:read_line(), "$7", "inline command")
  eq(s:read_line(), "GET,k#2", "inline command's elements")
  s:close()
  -- called from Lua (no codec): any element
  local direct = ek.service(describe, { args = true })
  eq(direct:call({ "X", { "y" }, ek.null }), "X,table,null#3", "a nested array, a null")
  eq(direct:call("text"), "text#1", "a string request is one argument")
  -- more elements than a call can take as arguments fail the response (the
  -- codec's error reply, and that connection closes, as any failed response)
  local huge = { "MSET" }
  for i = 2, 7001 do huge[i] = "v" end
  local r = c:call(huge)
  ok(r == nil or type(r) == "table" and r.err, "too many arguments fail")
  c:close()
  c = assert(ek.connect { addr = addr, codec = "resp" })
  eq(c:call({ "SET", "b", "1" }), "SET,b,1#3", "the server goes on")
  c:close()
  server:close()
  -- a string request (the lines codec) is one argument
  local lines = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines",
                                  service = ek.service(describe, { args = true }) })
  local lc = assert(ek.connect { addr = lines:local_addr(), codec = "lines" })
  eq(lc:call("a b"), "a b#1", "a line is one string")
  lc:close()
  lines:close()
  raises(function() ek.service(describe, 5) end, "table of options expected")
end)

test("resp: command names through the name cache, any length, colliding, not strings", function()
  -- The handler gets each command's name as a Lua string equal to the bytes
  -- sent, whether the connection's last names included it or not.
  local seen = {}
  local function name_of(name, ...)
    seen[#seen + 1] = name
    if type(name) ~= "string" then return "type " .. type(name) .. "#" .. select("#", ...) end
    local known = name == "GET" and "=GET" or name == "get" and "=get" or name
    return known .. "#" .. select("#", ...)
  end
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "resp",
                                   service = ek.service(name_of, { args = true }) })
  local c = assert(ek.connect { addr = server:local_addr(), codec = "resp" })
  -- GET and get share a cache slot: they replace each other
  for _ = 1, 3 do
    eq(c:call({ "GET", "k" }), "=GET#1", "GET")
    eq(c:call({ "get", "k" }), "=get#1", "get after GET")
  end
  local long = { "ABCDEFGHIJKLMNO", "ABCDEFGHIJKLMNOP", "A\0B", "x\r\ny", "", "Q" }
  for round = 1, 2 do
    for _, n in ipairs(long) do
      eq(c:call({ n, "a", "b" }), n .. "#2", ("name of %d bytes, round %d"):format(#n, round))
    end
    -- more distinct names than the cache holds, twice over
    for i = 1, 20 do
      local n = "CMD" .. i
      eq(c:call({ n }), n .. "#0", n)
    end
  end
  -- pipelined on one raw connection: the replies in order
  local s = raw(server:local_addr())
  local want = {}
  local out = {}
  for i = 1, 40 do
    local n = i % 3 == 0 and "GET" or i % 3 == 1 and "get" or ("N" .. i)
    out[#out + 1] = ("*1\r\n$%d\r\n%s\r\n"):format(#n, n)
    want[i] = (n == "GET" and "=GET" or n == "get" and "=get" or n) .. "#0"
  end
  assert(s:write(table.concat(out)))
  for i = 1, 40 do
    local len = tonumber(s:read_line():sub(2))
    eq(s:read_exactly(len + 2), want[i] .. "\r\n", "pipelined reply " .. i)
  end
  s:close()
  c:close()
  server:close()
  -- from Lua (no codec): a first element that is not a string
  local direct = ek.service(name_of, { args = true })
  eq(direct:call({ 5, "a" }), "type number#1", "an integer name")
  eq(direct:call({ { "y" } }), "type table#0", "an array name")
  eq(direct:call({ "GET" }), "=GET#0", "a string name from Lua")
end)

test("resp: tagged tables with one key, with several, and tables that are arrays", function()
  local values = {
    ok = { ok = "FINE" },
    err = { err = "ERR bad" },
    both = { ok = "A", err = "B" },        -- ok comes first in the tag order
    okn = { ok = "A", n = 1 },             -- n makes it an array
    ok1 = { "first", ok = "A" },           -- so does element 1
    n0 = { n = 0 },
    dbl = { double = 1.5 },
    big = { big_number = "12345678901234567890" },
    verb = { verbatim = "v" },
    verbf = { verbatim = "w", format = "mkd" },
    set = { set = { "s" } },
    map = { map = { k = "v" } },
    badok = { ok = 5 },
    unknown = { nope = 1 },
  }
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "resp", service =
    ek.service(function(_, k) return values[k] end, { args = true }) })
  local addr = server:local_addr()
  local c = assert(ek.connect { addr = addr, codec = "resp" })
  local function get(k) return c:call({ "GET", k }) end
  eq(get("ok").ok, "FINE", "simple string")
  eq(get("err").err, "ERR bad", "error")
  eq(get("both").ok, "A", "ok before err")
  local okn = get("okn")
  eq(okn.n, 1, "{ ok =, n = 1 } is an array of one")
  eq(okn[1], ek.null, "its element is null")
  local ok1 = get("ok1")
  eq(ok1.n, 1, "{ 'first', ok = } is an array")
  eq(ok1[1], "first", "its element")
  eq(get("n0").n, 0, "{ n = 0 }: empty array")
  eq(get("dbl"), "1.5", "double (RESP2: bulk)")
  eq(get("big"), "12345678901234567890", "big number (RESP2: bulk)")
  eq(get("verb"), "v", "verbatim (RESP2: bulk)")
  eq(get("verbf"), "w", "verbatim with format (RESP2: bulk)")
  eq(get("set")[1], "s", "set (RESP2: array)")
  eq(get("map").n, 2, "map (RESP2: flat array)")
  local r = get("badok")
  ok(type(r) == "table" and r.err, "{ ok = 5 } fails the response")
  c:close()
  c = assert(ek.connect { addr = addr, codec = "resp" })
  r = c:call({ "GET", "unknown" })
  ok(type(r) == "table" and r.err, "a table with no tag fails the response")
  c:close()
  server:close()
end)

test("direct: an ek.service function is called by connection tasks on this thread", function()
  local main = ek._thread_id()
  local where = {}
  local svc = assert(ek.service(function(req)
    where[#where + 1] = ek._thread_id()
    if req:sub(1, 4) == "wait" then ek.sleep(0.02) end
    if req == "boom" then error("boom (expected in this output)") end
    return req:upper()
  end))
  local direct = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines", service = svc })
  matches(tostring(direct), "serving, direct%)", "served directly by default")
  local buffered = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines", service = svc,
                                     direct = false })
  ok(not tostring(buffered):find("direct"), "direct = false: through the buffer")
  local wrapped = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines",
                                    service = ek.middleware.timeout(svc, 5) })
  ok(not tostring(wrapped):find("direct"), "a middleware around it: through the buffer")
  for _, server in ipairs { direct, buffered, wrapped } do
    local s = raw(server:local_addr())
    -- a handler that waits, then ones that do not: answered in request order
    assert(s:write("wait1\nb\nwait2\nd\n"))
    eq(s:read_line(), "WAIT1", tostring(server))
    eq(s:read_line(), "B", "the second")
    eq(s:read_line(), "WAIT2", "the third")
    eq(s:read_line(), "D", "the fourth")
    s:close()
  end
  for _, w in ipairs(where) do eq(w, main, "every call on this thread") end
  -- the service handle closed and collected: the direct server still answers
  svc:close()
  svc = nil
  collectgarbage()
  collectgarbage()
  local s = raw(direct:local_addr())
  assert(s:write("after\n"))
  eq(s:read_line(), "AFTER", "served after its handle was collected")
  -- an error in the handler: that connection gets the error and closes, others go on
  local s2 = raw(direct:local_addr())
  assert(s2:write("boom\n"))
  local rest = s2:read(100)
  ok(rest == "" or rest == nil or rest:find("EHOST") or rest:find("rror"), "failed: " .. tostring(rest))
  assert(s:write("still\n"))
  eq(s:read_line(), "STILL", "the other connection")
  s:close()
  -- a closed service handle cannot start a direct server
  local svc2 = assert(ek.service(function(r) return r end))
  svc2:close()
  fails("ECLOSED", ek.serve { addr = "127.0.0.1:0", service = svc2 })
  eq(direct:shutdown(1), true, "shutdown")
  buffered:close()
  wrapped:close()
end)

test("batches: a read's requests in one runner; handlers that wait, yield or fail inside it", function()
  local log = {}
  local ch = ek.channel(1)
  local svc = assert(ek.service(function(req)
    log[#log + 1] = req
    if req == "sleep" then
      ek.sleep(0.02) -- waits in the runner: the calls after it go on without it
      log[#log + 1] = "slept"
    elseif req == "yield" then
      coroutine.yield() -- a plain yield: back to the scheduler, then on
      log[#log + 1] = "yielded"
    elseif req == "recv" then
      return "got " .. assert(ch:recv()) -- a C-side wait (retry) moved out of the batch
    elseif req == "send" then
      assert(ch:send("it"))
      return "SENT"
    elseif req == "fail" then
      error("failed in a batch (expected in this output)")
    elseif req == "nilerr" then
      return nil, "no such thing", "ENOENT"
    end
    return req:upper()
  end))
  for _, direct in ipairs { true, false } do
    log = {}
    local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines", service = svc,
                                     direct = direct })
    local s = raw(server:local_addr())
    -- one write: one read on the server, one batch
    assert(s:write("a\nsleep\nb\nyield\nc\nrecv\nsend\nd\n"))
    local want = { "A", "SLEEP", "B", "YIELD", "C", "got it", "SENT", "D" }
    for i, w in ipairs(want) do eq(s:read_line(), w, "reply " .. i .. " in order (direct " .. tostring(direct) .. ")") end
    -- every request ran once, in order, and the ones after a waiting handler
    -- did not wait for it
    local pos = {}
    for i, v in ipairs(log) do pos[v] = pos[v] or i end
    for _, r in ipairs { "a", "sleep", "b", "yield", "c", "recv", "send", "d", "slept", "yielded" } do
      ok(pos[r], r .. " ran: " .. table.concat(log, " "))
    end
    ok(pos.a < pos.sleep and pos.sleep < pos.b and pos.b < pos.yield and pos.yield < pos.c
       and pos.c < pos.recv and pos.recv < pos.send and pos.send < pos.d, "started in order: " .. table.concat(log, " "))
    ok(pos.d < pos.slept, "d did not wait for sleep: " .. table.concat(log, " "))
    eq(#log, 10, "each ran once: " .. table.concat(log, " "))
    -- a failing call in the middle of a batch: the replies before it, then
    -- the error, then the end of the connection
    assert(s:write("e\nfail\nf\n"))
    eq(s:read_line(), "E", "before the failure")
    local rest = s:read_exactly(1) and s:read(100) or ""
    ok(not rest:find("^F"), "nothing answered after the failure: " .. tostring(rest))
    s:close()
    -- the runner survived the error: a new connection's batch is served
    local s2 = raw(server:local_addr())
    assert(s2:write("g\nh\n"))
    eq(s2:read_line(), "G", "after a failure, a batch again")
    eq(s2:read_line(), "H", "its second")
    s2:close()
    server:close()
  end
  -- through svc:call: nil, msg, name and errors fail their own calls only
  fails("ENOENT", svc:call("nilerr"))
  fails("EHOST", svc:call("fail"))
  eq(svc:call("x"), "X", "a call after them")
  -- many concurrent callers through the buffer: batched, each answered
  local g = ek.group()
  local got = {}
  for i = 1, 200 do g:spawn(function() got[i] = svc:call("v" .. i) end) end
  eq(g:wait(), true, "concurrent calls")
  for i = 1, 200 do eq(got[i], "V" .. i, "call " .. i) end
end)

test("batches: a handler that raises closes its <close> variables, alone and inside a batch", function()
  if not ek.lua_api:find("5.4") then return end
  -- (no pcall around a batch's calls: the resume ends with the error, and the
  -- dead coroutine is reset, which closes what was pending on it)
  local closed = 0
  local guarded = assert(load([[
    local f, on_close = ...
    local _ <close> = setmetatable({}, { __close = on_close })
    f()
  ]]))
  local svc = assert(ek.service(function(req)
    if req == "fail" then
      guarded(function() error("failed with a <close> variable (expected in this output)") end,
              function() closed = closed + 1 end)
    end
    return req:upper()
  end))
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines", service = svc })
  local s = raw(server:local_addr())
  assert(s:write("fail\n")) -- alone in its read
  local rest = s:read(100)
  ok(rest == "" or rest == nil or not rest:find("^FAIL"), "no reply to the failure: " .. tostring(rest))
  eq(closed, 1, "closed when the lone handler raised")
  s:close()
  s = raw(server:local_addr())
  assert(s:write("a\nfail\nb\n")) -- in the middle of a batch
  eq(s:read_line(), "A", "before the failure")
  s:read(100)
  eq(closed, 2, "closed when a handler in a batch raised")
  s:close()
  s = raw(server:local_addr())
  assert(s:write("c\nd\n"))
  eq(s:read_line(), "C", "a batch after the failures")
  eq(s:read_line(), "D", "its second")
  s:close()
  server:close()
end)

test("batches: the runner record kept between calls, alone and batched, after errors and waits", function()
  -- each call sees exactly its own argument (nothing left on a kept
  -- coroutine's stack) and runs on a coroutine of its own at that moment
  local svc = assert(ek.service(function(req, ...)
    if req == "fail" then error("failed between kept runners (expected in this output)") end
    if req == "sleep" then ek.sleep(0.01) end
    if req == "timeout" then
      assert(ek.timeout(1, function() ek.sleep(0.01) return true end)) -- a scoped child of the runner
    end
    return req .. "#" .. select("#", ...) .. (coroutine.isyieldable() and "y" or "n")
  end))
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "lines", service = svc })
  local s = raw(server:local_addr())
  local function one(req)
    assert(s:write(req .. "\n"))
    eq(s:read_line(), req .. "#0y", "alone: " .. req)
  end
  local function many(list)
    assert(s:write(table.concat(list, "\n") .. "\n"))
    for _, req in ipairs(list) do eq(s:read_line(), req .. "#0y", "batched: " .. req) end
  end
  for _ = 1, 3 do
    one("a")
    many { "b", "c", "d" }
    one("e")
    one("sleep")
    many { "sleep", "f" }
    one("timeout")
    many { "g", "timeout", "h" }
  end
  assert(s:write("fail\n"))
  s:read(100)
  s:close()
  s = raw(server:local_addr())
  one("after")
  many { "x", "y" }
  one("z")
  s:close()
  server:close()
end)

test("resp: every Lua value through a server and a client, and back", function()
  local values = {
    str = "bulk\r\nwith CRLF",
    int = 123456789012,
    neg = -7,
    float = 2.5,
    yes = true,
    no = false,
    null = ek.null,
    arr = { "a", 1, { "nested", n = 1 }, ek.null, n = 4 },
    empty = {},
    holes = { n = 3, [2] = "middle" },
    simple = { ok = "FINE" },
    -- a tag and a shared reply made at run time: the same interned strings
    -- the binding compares by identity
    built = { [table.concat { "o", "k" }] = table.concat { "O", "K" } },
    pong = { [("ok"):sub(1)] = ("xPONG"):sub(2) },
    err = { err = "WRONGTYPE oops" },
    map = { map = { a = 1, b = "two" } },
    set = { set = { "x", "y" } },
    big = { big_number = "123456789012345678901234567890" },
    verbatim = { verbatim = "some text", format = "txt" },
    dbl = { double = 3 },
  }
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "resp", service =
    ek.service(function(cmd) return values[cmd[2]] end) })
  local c = assert(ek.connect { addr = server:local_addr(), codec = "resp" })
  local function get(k) return c:call({ "GET", k }) end
  eq(get("str"), values.str, "bulk string")
  eq(get("int"), values.int, "integer")
  eq(get("neg"), -7, "negative integer")
  eq(get("no"), 0, "false (RESP2: integer 0)")
  eq(get("yes"), 1, "true (RESP2: integer 1)")
  eq(get("null"), ek.null, "null")
  eq(get("nothing"), ek.null, "nil: null")
  local arr = get("arr")
  eq(arr.n, 4, "array count")
  eq(arr[1], "a", "array[1]")
  eq(arr[2], 1, "array[2]")
  eq(arr[3][1], "nested", "nested array")
  eq(arr[3].n, 1, "nested count")
  eq(arr[4], ek.null, "null element")
  eq(get("empty").n, 0, "empty array")
  local holes = get("holes")
  eq(holes.n, 3, "holes: n")
  eq(holes[1], ek.null, "a hole is a null")
  eq(holes[2], "middle", "holes[2]")
  eq(holes[3], ek.null, "holes[3]")
  eq(get("simple").ok, "FINE", "simple string")
  eq(get("built").ok, "OK", "a tag key and OK built at run time")
  eq(get("pong").ok, "PONG", "PONG built at run time")
  eq(get("err").err, "WRONGTYPE oops", "error")
  -- RESP2 writes map/set as arrays, double and big number as bulk strings
  eq(get("map").n, 4, "map as a flat array in RESP2")
  eq(get("set").n, 2, "set as an array in RESP2")
  eq(get("big"), "123456789012345678901234567890", "big number as a bulk string in RESP2")
  eq(get("dbl"), "3", "double as a bulk string in RESP2")
  eq(get("float"), "2.5", "float as a bulk string in RESP2")
  eq(get("verbatim"), "some text", "verbatim as a bulk string in RESP2")
  server:close()
end)

test("resp: RESP3 after HELLO 3: maps, sets, doubles, booleans, null, verbatim, big numbers", function()
  local values = {
    map = { map = { a = 1 } },
    set = { set = { "x", n = 1 } },
    push = { push = { "p", n = 1 } },
    dbl = 2.5,
    yes = true,
    null = ek.null,
    big = { big_number = "1234567890123456789012" },
    verbatim = { verbatim = "hi", format = "mkd" },
  }
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "resp", service =
    ek.service(function(cmd)
      if cmd[1] == "HELLO" then return { map = { proto = 3 } } end
      return values[cmd[2]]
    end) })
  local s = raw(server:local_addr())
  local function cmd(text, want, what)
    assert(s:write(text .. "\r\n"))
    for _, line in ipairs(want) do eq(s:read_line(), line, what) end
  end
  cmd("HELLO 3", { "%1", "$5", "proto", ":3" }, "HELLO's map")
  cmd("GET map", { "%1", "$1", "a", ":1" }, "map")
  cmd("GET set", { "~1", "$1", "x" }, "set")
  cmd("GET dbl", { ",2.5" }, "double")
  cmd("GET yes", { "#t" }, "boolean")
  cmd("GET null", { "_" }, "null")
  cmd("GET big", { "(1234567890123456789012" }, "big number")
  cmd("GET verbatim", { "=6", "mkd:hi" }, "verbatim")
  s:close()
  server:close()
end)

test("resp: Lua values from RESP3 replies (a raw server)", function()
  local l = assert(ek.tcp.listen("127.0.0.1:0"))
  ek.spawn(function()
    local s = assert(l:accept())
    -- each request is a one-word command: *1, $len, word
    local function command() for _ = 1, 3 do assert(s:read_line()) end end
    command()
    assert(s:write("%2\r\n+k\r\n,1.5\r\n$1\r\nv\r\n~2\r\n#t\r\n#f\r\n"))
    command()
    -- a push frame is out of band (the client drops it: no push channel here),
    -- then the reply
    assert(s:write(">2\r\n$1\r\na\r\n_\r\n*2\r\n$1\r\na\r\n_\r\n"))
    command()
    assert(s:write("=7\r\ntxt:abc\r\n"))
    command()
    assert(s:write("(99999999999999999999\r\n"))
    command()
    assert(s:write("!5\r\nERR x\r\n"))
    command()
    assert(s:write("*-1\r\n"))
  end)
  local c = assert(ek.connect { addr = l:local_addr(), codec = "resp" })
  local m = c:call("ONE")
  local simple_key, count = nil, 0
  for k, v in pairs(m.map) do
    count = count + 1
    if type(k) == "table" and k.ok == "k" then simple_key = v end
  end
  eq(count, 2, "map: two pairs")
  eq(simple_key, 1.5, "map: a simple string key ({ ok = 'k' }) -> a double")
  local found = m.map.v
  eq(found.set.n, 2, "map: bulk key -> set")
  eq(found.set[1], true, "set of booleans")
  eq(found.set[2], false, "false")
  local p = c:call("TWO")
  eq(p.n, 2, "the array after a push frame")
  eq(p[2], ek.null, "null inside")
  local v = c:call("THREE")
  eq(v.verbatim, "abc", "verbatim text")
  eq(v.format, "txt", "verbatim format")
  eq(c:call("FOUR").big_number, "99999999999999999999", "big number")
  eq(c:call("FIVE").err, "ERR x", "bulk error")
  eq(c:call("SIX"), ek.null, "null array")
  l:close()
end)

test("resp: push frames through client:pushes() (a raw server)", function()
  local l = assert(ek.tcp.listen("127.0.0.1:0"))
  local go = ek.channel(1)
  ek.spawn(function()
    local s = assert(l:accept())
    local function command() for _ = 1, 3 do assert(s:read_line()) end end
    command()
    -- two push frames, out of band, then the reply
    assert(s:write(">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n" ..
                   ">2\r\n$1\r\na\r\n:7\r\n+PONG\r\n"))
    go:recv()
    assert(s:write(">1\r\n$5\r\nlater\r\n"))
    go:recv()
    s:close()
  end)
  local plain = assert(ek.connect { addr = "127.0.0.1:1", codec = "resp" })
  raises(function() plain:pushes() end, "no push frames")
  plain:close()
  local c = assert(ek.connect { addr = l:local_addr(), codec = "resp", pushes = 4 })
  local p = c:pushes()
  matches(tostring(p), "ekiden.pushes %(open%)", "tostring")
  eq(c:pushes(), p, "the same object each time")
  fails("EEMPTY", p:try_recv())
  eq(c:call("PING").ok, "PONG", "the reply after two push frames")
  local f = p:recv()
  eq(f.n, 3, "a push frame's elements")
  eq(f[1], "message", "kind")
  eq(f[2], "news", "channel")
  eq(f[3], "hi", "payload")
  eq(p:len(), 1, "one more queued")
  local g = assert(p:try_recv())
  eq(g[2], 7, "integer element")
  -- a task waits; a second receiver at once is busy; the first gets the frame
  local waiter = ek.spawn(function() return p:recv() end)
  ek.sleep(0.01)
  fails("EBUSY", p:recv())
  go:send(true)
  eq(waiter:join()[1], "later", "the waiting task got the frame")
  -- a cancelled waiter lets another receive; iteration ends when the client goes
  local w2 = ek.spawn(function() return p:recv() end)
  ek.sleep(0.01)
  w2:cancel()
  w2:join()
  local got = 0
  local it = ek.spawn(function()
    for _ in p:iter() do got = got + 1 end
    return "ended"
  end)
  ek.sleep(0.01)
  go:send(true)
  c:close()
  c = nil
  collectgarbage()
  collectgarbage()
  eq(it:join(), "ended", "the iteration ends when the client is gone")
  eq(got, 0, "no more frames")
  fails("ECLOSED", p:recv())
  -- close() while a task waits: it gets ECLOSED
  local c2 = assert(ek.connect { addr = l:local_addr(), codec = "resp", pushes = true })
  local p2 = c2:pushes()
  local w3 = ek.spawn(function() return p2:recv() end)
  ek.sleep(0.01)
  p2:close()
  local a, _, name = w3:join()
  eq(a, nil, "closed while waiting")
  eq(name, "ECLOSED", "ECLOSED")
  p2:close()
  fails("ECLOSED", p2:try_recv())
  raises(function() ek.connect { addr = "127.0.0.1:1", codec = "resp", pushes = -1 } end, "pushes")
  c2:close()
  l:close()
end, { timeout = 20 })

local function mini_redis()
  local dir = os.getenv("EK_BINARY_DIR")
  local bin = dir and dir .. "/mini_redis"
  local f = bin and io.open(bin, "rb")
  if f then f:close() end
  return f and bin
end

test("resp: SUBSCRIBE and PUBLISH against mini_redis: messages through client:pushes()", function()
  -- the shell prints its pid, then becomes mini_redis (stopped by that pid)
  local h = assert(io.popen("echo $$; exec " .. mini_redis() .. " 127.0.0.1:0", "r"))
  local pid = tonumber(h:read("*l"))
  local line = h:read("*l")
  local addr = line and line:match("listening on (%S+)")
  local okc, err = pcall(function()
  ok(addr, "mini_redis started: " .. tostring(line))
  local sub = assert(ek.connect { addr = addr, codec = "resp", pushes = 16 })
  local pub = assert(ek.connect { addr = addr, codec = "resp" })
  fails("ENOTSUP", sub:call({ "SUBSCRIBE", "news" }))
  ok(sub:call({ "HELLO", "3" }).map, "HELLO 3")
  local conf = sub:call({ "SUBSCRIBE", "news", "sport" })
  eq(conf.push[1], "subscribe", "the reply is the first confirmation")
  local frames = sub:pushes()
  local c1, c2 = frames:recv(), frames:recv()
  eq(c1[1] .. " " .. c1[2] .. " " .. c1[3], "subscribe news 1", "first confirmation")
  eq(c2[1] .. " " .. c2[2] .. " " .. c2[3], "subscribe sport 2", "second confirmation")
  eq(pub:call({ "PUBLISH", "news", "hello" }), 1, "one subscriber")
  eq(pub:call({ "PUBLISH", "sport", "goal" }), 1, "one subscriber")
  eq(sub:call("PING").ok, "PONG", "other commands are answered meanwhile")
  local m1, m2 = frames:recv(), frames:recv()
  eq(m1[1] .. " " .. m1[2] .. " " .. m1[3], "message news hello", "first message")
  eq(m2[1] .. " " .. m2[2] .. " " .. m2[3], "message sport goal", "second message")
  sub:close()
  pub:close()
  end)
  if pid then os.execute("kill " .. pid) end
  h:close()
  if not okc then error(err, 0) end
end, { skip = not mini_redis() and "EK_BINARY_DIR/mini_redis not built" or nil })

test("resp: values a RESP message cannot hold fail the response", function()
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "resp", service =
    ek.service(function(cmd)
      if cmd[2] == "fn" then return print end
      if cmd[2] == "hash" then return { foo = 1 } end
      return "fine"
    end) })
  local addr = server:local_addr()
  local c = assert(ek.connect { addr = addr, codec = "resp" })
  local r = c:call({ "GET", "fn" })
  -- the server answers a failed response with an error reply, then closes
  ok(type(r) == "table" and r.err and r.err:find("kind"), "error reply for a function: " .. tostring(r and r.err))
  local c2 = assert(ek.connect { addr = addr, codec = "resp" })
  r = c2:call({ "GET", "hash" })
  ok(type(r) == "table" and r.err, "error reply for a plain hash table")
  local c3 = assert(ek.connect { addr = addr, codec = "resp" })
  eq(c3:call({ "GET", "ok" }), "fine", "other connections unaffected")
  raises(function() c3:call(print) end, "no message for this value")
  server:close()
end)

test("errors: nil, msg, name for refused, bad and busy addresses; bad options raise", function()
  local svc = upper_service()
  -- a port nobody listens on
  local l = assert(ek.tcp.listen("127.0.0.1:0"))
  local dead = l:local_addr()
  l:close()
  local c = assert(ek.connect { addr = dead, codec = "lines" })
  fails("ECONNREFUSED", c:call("x"))
  fails("EINVAL", ek.serve { addr = "not an address", service = svc })
  fails("EINVAL", ek.connect { addr = "nope" })
  local server = assert(ek.serve { addr = "127.0.0.1:0", service = svc })
  fails("EADDRINUSE", ek.serve { addr = server:local_addr(), service = svc })
  raises(function() ek.serve { addr = "127.0.0.1:0", codec = "morse", service = svc } end, "codec")
  raises(function() ek.serve { addr = "127.0.0.1:0" } end, "service")
  raises(function() ek.serve { service = svc } end, "addr")
  raises(function() ek.serve { addr = "127.0.0.1:0", service = svc, max_in_flight = 0 } end, "max_in_flight")
  raises(function() ek.serve("127.0.0.1:0") end, "table expected")
  raises(function() ek.connect { addr = dead, reconnect = -1 } end, "seconds")
  -- a handler that raises: the lines codec has no error reply, the connection closes
  local bad = assert(ek.serve { addr = "127.0.0.1:0", service =
    ek.service(function() error("handler failed (expected in this output)") end) })
  local bc = assert(ek.connect { addr = bad:local_addr() })
  local a, msg, name = bc:call("x")
  eq(a, nil, "failed call")
  ok(name == "ECONNRESET" or name == "ECLOSED" or name == "EOF", "connection closed: " .. tostring(msg))
  bad:close()
  server:close()
end)

test("unix sockets: ek.serve{path =} and ek.connect{path =}", function()
  local path = os.tmpname()
  os.remove(path)
  local server = assert(ek.serve { path = path, codec = "lines", service = upper_service() })
  local c = assert(ek.connect { path = path, codec = "lines" })
  eq(c:call("unix"), "UNIX", "over a Unix socket")
  server:close()
  os.remove(path)
end)

test("shutdown lets requests in flight finish; a short grace closes them by force", function()
  local started = ek.channel(16)
  local server = assert(ek.serve { addr = "127.0.0.1:0", service = ek.service(function(req)
    started:send(req)
    ek.sleep(tonumber(req))
    return "slept " .. req
  end) })
  local addr = server:local_addr()
  local c = assert(ek.connect { addr = addr })
  local t = ek.spawn(function() return c:call("0.2") end)
  eq(started:recv(), "0.2", "the handler started")
  local t0 = ek.now()
  eq(server:shutdown(30), true, "every connection closed in time")
  eq(t:join(), "slept 0.2", "the request in flight was answered")
  ok(ek.now() - t0 >= 0.15, "shutdown waited for it")
  fails("ECONNREFUSED", ek.tcp.connect(addr))

  local server2 = assert(ek.serve { addr = "127.0.0.1:0", service = ek.service(function(req)
    started:send(req)
    ek.sleep(tonumber(req))
    return "late"
  end) })
  local c2 = assert(ek.connect { addr = server2:local_addr() })
  local t2 = ek.spawn(function() return c2:call("30") end)
  eq(started:recv(), "30", "the slow handler started")
  local okc, msg, name = server2:shutdown(0.05)
  eq(okc, false, "forced")
  eq(name, "ETIMEDOUT", "forced: " .. tostring(msg))
  local a, _, n2 = t2:join()
  eq(a, nil, "the forced request failed")
  ok(n2 == "ECONNRESET" or n2 == "EOF" or n2 == "ECLOSED", "its error: " .. tostring(n2))
end)

test("a task cancelled while it waits for shutdown; the server handle collected meanwhile", function()
  local server = assert(ek.serve { addr = "127.0.0.1:0", service = ek.service(function(req)
    ek.sleep(0.1)
    return req
  end) })
  local c = assert(ek.connect { addr = server:local_addr() })
  local t1 = ek.spawn(function() return c:call("x") end)
  ek.sleep(0.01)
  local t = ek.spawn(function() return server:shutdown(10) end)
  ek.sleep(0.01)
  t:cancel()
  server = nil
  collectgarbage()
  collectgarbage()
  -- the shutdown thread still drains: the request is answered or reset, no crash
  local r = t1:join()
  ok(r == "x" or r == nil, "request finished")
end)

test("servers and clients collected in any order, with connections open", function()
  for order = 1, 4 do
    local svc = upper_service()
    local server = assert(ek.serve { addr = "127.0.0.1:0", service = svc })
    local c = assert(ek.connect { addr = server:local_addr() })
    eq(c:call("a"), "A", "order " .. order)
    local s = raw(server:local_addr())
    if order == 1 then server, c, svc = nil, nil, nil
    elseif order == 2 then c = nil collectgarbage() server = nil svc = nil
    elseif order == 3 then svc = nil collectgarbage() c = nil collectgarbage() server = nil
    else server:close() c:close() svc:close() end
    collectgarbage()
    collectgarbage()
    s:close()
  end
  -- the runtime still works
  local server = assert(ek.serve { addr = "127.0.0.1:0", service = upper_service() })
  local c = assert(ek.connect { addr = server:local_addr() })
  eq(c:call("still"), "STILL", "after collections")
end)

test("handles kept after ek.run ended answer ECLOSED and collect safely", function()
  local kept = {}
  ek.run(function()
    kept.svc = upper_service()
    kept.server = assert(ek.serve { addr = "127.0.0.1:0", service = kept.svc })
    kept.client = assert(ek.connect { addr = kept.server:local_addr() })
    eq(kept.client:call("in"), "IN", "inside the run")
    -- a request still in flight when the run ends
    kept.task = ek.spawn(function() return kept.client:call("pending") end)
  end, { workers = 2 })
  fails("ECLOSED", kept.server:local_addr())
  kept.server:close()
  kept.server:close()
  kept = nil
  collectgarbage()
  collectgarbage()
end, { outside = true })

test("http: request and response tables through ek.serve and ek.connect", function()
  local seen
  local server = assert(ek.serve { addr = "127.0.0.1:0", codec = "http", service = ek.service(function(req)
    seen = req
    if req.target == "/string" then return "just a body" end
    if req.target == "/fail" then return print end
    return { status = 201, reason = "Made", headers = { ["x-one"] = "1", ["x-many"] = { "a", "b" },
             { "X-Pair", "p" } }, body = req.method .. " " .. req.body }
  end) })
  local addr = server:local_addr()
  local c = assert(ek.connect { addr = addr, codec = "http" })
  local r = assert(c:call { method = "POST", target = "/things?x=1", body = "payload",
                            headers = { host = "example", ["x-dup"] = { "1", "2" } } })
  eq(r.status, 201, "status")
  eq(r.reason, "Made", "reason")
  eq(r.version, 11, "version")
  eq(r.body, "POST payload", "body")
  eq(r.headers["x-one"], "1", "a header (names are lower-case)")
  eq(type(r.headers["x-many"]), "table", "a repeated header is a table of its values")
  eq(r.headers["x-many"][1] .. r.headers["x-many"][2], "ab", "its values in order")
  eq(r.headers["x-pair"], "p", "a header given as a { name, value } pair")
  eq(r.headers["content-length"], "12", "the codec's Content-Length")
  eq(r.keep_alive, true, "keep-alive")
  eq(seen.method, "POST", "request method")
  eq(seen.target, "/things?x=1", "request target")
  eq(seen.version, 11, "request version")
  eq(seen.headers.host, "example", "request header")
  eq(seen.headers["x-dup"][2], "2", "a repeated request header")
  eq(seen.body, "payload", "request body")
  local s = assert(c:call { target = "/string", headers = { host = "h" } })
  eq(s.status, 200, "a string response is 200")
  eq(s.body, "just a body", "with that body")
  eq(seen.method, "GET", "the method defaults to GET")
  -- a raw HTTP/1.0 request: the response in 1.0, closed after it
  local raw_s = assert(ek.tcp.connect(addr))
  assert(raw_s:write("GET /string HTTP/1.0\r\n\r\n"))
  eq(raw_s:read_line(), "HTTP/1.0 200 OK", "status line")
  local all = {}
  while true do
    local d = raw_s:read()
    if not d or d == "" then break end
    all[#all + 1] = d
  end
  matches(table.concat(all), "\r\n\r\njust a body$", "body, then the server closes")
  -- a handler's value that is no response: the connection is answered with an error and closed
  local c2 = assert(ek.connect { addr = addr, codec = "http" })
  local f = c2:call { target = "/fail", headers = { host = "h" } }
  ok(f == nil or (f.status and f.status >= 400), "a failed response: " .. tostring(f and f.status))
  raises(function() c:call("not a table") end, "no message")
  raises(function() ek.serve { addr = "127.0.0.1:0", codec = "http", service = ek.service(print), max_header = -1 } end, "max_header")
  server:close()
end)
