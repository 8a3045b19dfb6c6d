-- Network: TCP (listen/accept/connect, read/read_exactly/read_line/write,
-- shutdown, addresses, options), Unix sockets, UDP, resolve; error paths.

local unpack = table.unpack or unpack
local function pack(...) return { n = select("#", ...), ... } end

local function listener()
  local l = assert(ek.tcp.listen("127.0.0.1:0"))
  return l, l:local_addr()
end

test("tcp: echo through accept and connect", function()
  local l, addr = listener()
  matches(addr, "^127%.0%.0%.1:%d+$", "local_addr")
  ok(tostring(l):find("ekiden.listener"), "tostring")
  local server = ek.spawn(function()
    local s = assert(l:accept())
    while true do
      local data = assert(s:read(65536))
      if data == "" then break end
      assert(s:write(data))
    end
    s:close()
    return "server done"
  end)
  local c = assert(ek.tcp.connect(addr))
  ok(tostring(c):find("ekiden.stream %(tcp, open%)"), "tostring: " .. tostring(c))
  eq(c:peer_addr(), addr, "peer_addr")
  matches(c:local_addr(), "^127%.0%.0%.1:%d+$", "local_addr")
  eq(c:set_nodelay(true), true, "set_nodelay")
  eq(c:set_keepalive(30), true, "set_keepalive")
  eq(c:write("hello"), 5, "write returns the byte count")
  eq(c:read_exactly(5), "hello", "echoed")
  assert(c:shutdown())
  eq(c:read(), "", "end of stream after the server closed")
  eq(server:join(), "server done", "server task")
  c:close()
  l:close()
end)

test("tcp: a large write goes through partial writes, in order", function()
  local l, addr = listener()
  local size = math.floor(8 * 1024 * 1024 * math.max(SCALE, 0.25))
  local server = ek.spawn(function()
    local s = assert(l:accept())
    local total, sum = 0, 0
    while true do
      local d = assert(s:read(65536))
      if d == "" then break end
      total = total + #d
      sum = (sum + d:byte(1) + d:byte(#d)) % 1000000007
    end
    s:close()
    return total
  end)
  local c = assert(ek.tcp.connect(addr))
  local chunk = string.rep("0123456789abcdef", 65536) -- 1 MiB
  local big = string.rep(chunk, math.max(1, math.floor(size / #chunk)))
  eq(c:write(big), #big, "all written")
  c:shutdown()
  eq(server:join(), #big, "all received")
  c:close()
end)

test("tcp: read_line and read_exactly over split writes", function()
  local l, addr = listener()
  ek.spawn(function()
    local s = assert(l:accept())
    for _, piece in ipairs({ "GET / HT", "TP/1.1\r\nHost: x\n", "abc", "defgh", "\npartial" }) do
      s:write(piece)
      ek.sleep(0.002)
    end
    s:close()
  end)
  local c = assert(ek.tcp.connect(addr))
  eq(c:read_line(), "GET / HTTP/1.1", "line with \\r\\n")
  eq(c:read_line(), "Host: x", "line with \\n")
  eq(c:read_exactly(4), "abcd", "exactly")
  eq(c:read(2), "ef", "read serves the read-ahead first")
  eq(c:read_line(), "gh", "rest of the line")
  local a, msg, name, partial = c:read_line()
  eq(a, nil, "nil at EOF")
  eq(name, "EOF", "name")
  matches(msg, "^EOF:", "message")
  eq(partial, "partial", "partial line")
  eq(c:read_exactly(0), "", "zero bytes")
  c:close()
end)

test("tcp: read_line max and read_exactly at EOF", function()
  local l, addr = listener()
  ek.spawn(function()
    local s = assert(l:accept())
    s:write(string.rep("x", 100) .. "\nabc")
    s:close()
  end)
  local c = assert(ek.tcp.connect(addr))
  fails("EMSGSIZE", c:read_line(10))
  eq(#c:read_line(), 100, "the long line with a larger max")
  local a, _, name, partial = c:read_exactly(10)
  eq(a, nil, "nil")
  eq(name, "EOF", "EOF")
  eq(partial, "abc", "partial")
  raises(function() c:read_line(0) end, "max must be")
  raises(function() c:read_exactly(-1) end, "must be >= 0")
  raises(function() c:read(0) end, "max must be")
  c:close()
end)

test("stream: read's size argument (integer, numeric string, float, nil, bad)", function()
  -- (read and read_exactly take an integer in one API call and anything else
  -- the auxiliary library's way: the same values work and fail as before.)
  local a, b = assert(ek.unix.pair())
  assert(a:write("abcdefghij"))
  eq(b:read_exactly(2), "ab", "integer")
  eq(b:read_exactly("2"), "cd", "numeric string")
  eq(b:read_exactly(2.0), "ef", "integral float")
  eq(b:read("1"), "g", "read, numeric string")
  eq(b:read(nil), "hij", "read, nil: the default max")
  raises(function() b:read({}) end, "number expected")
  raises(function() b:read("x") end, "number expected")
  raises(function() b:read_exactly() end, "number expected")
  if ek.lua_api == "5.4" then
    raises(function() b:read(1.5) end, "number has no integer representation")
  end
  a:close()
  b:close()
end)

test("tcp: connect refused, bad addresses, timeout", function()
  local l, addr = listener()
  l:close()
  fails("ECONNREFUSED", ek.tcp.connect(addr))
  fails("EINVAL", ek.tcp.listen("not an address"))
  fails("EINVAL", ek.tcp.connect("no-port-here"))
  fails("EADDRINUSE", (function()
    local l2, a2 = listener()
    local r = { ek.tcp.listen(a2) }
    l2:close()
    return (table.unpack or unpack)(r, 1, 3)
  end)())
  raises(function() ek.tcp.connect(42, "x") end)
  raises(function() ek.tcp.listen("127.0.0.1:0", 5) end, "table of options")
  raises(function() ek.tcp.connect("127.0.0.1", 70000) end, "port must be")
  -- A listener with a full accept queue drops further SYNs: the connect cannot
  -- complete, and the timeout ends it.
  local full = assert(ek.tcp.listen("127.0.0.1:0", { backlog = 1 }))
  local keep, timed_out = {}, nil
  for i = 1, 8 do
    local t0 = ek.now()
    local c, _, name = ek.tcp.connect(full:local_addr(), { timeout = 0.05 })
    if not c then
      timed_out = name
      ok(ek.now() - t0 < 5, "bounded by the timeout")
      break
    end
    keep[i] = c
  end
  eq(timed_out, "ETIMEDOUT", "a connect into a full backlog times out")
  for _, c in pairs(keep) do c:close() end
  full:close()
end)

test("tcp: connect by host name resolves it", function()
  local l, addr = listener()
  local port = tonumber(addr:match(":(%d+)$"))
  ek.spawn(function() local s = l:accept() if s then s:write("hi") s:close() end end)
  local c, msg = ek.tcp.connect("localhost", port)
  if not c then c = assert(ek.tcp.connect("localhost:" .. port)) end
  eq(c:read_exactly(2), "hi", "data")
  c:close()
  l:close()
end)

test("tcp: closed handles give ECLOSED, never a crash", function()
  local l, addr = listener()
  local srv = ek.spawn(function() return l:accept() end)
  local c = assert(ek.tcp.connect(addr))
  local s = srv:join()
  c:close()
  c:close() -- idempotent
  ok(tostring(c):find("closed"), "tostring says closed")
  fails("ECLOSED", c:read())
  fails("ECLOSED", c:write("x"))
  fails("ECLOSED", c:read_line())
  fails("ECLOSED", c:read_exactly(1))
  fails("ECLOSED", c:shutdown())
  fails("ECLOSED", c:peer_addr())
  fails("ECLOSED", c:set_nodelay(true))
  eq(s:read(), "", "peer sees end of stream")
  -- writing to a connection the peer closed eventually fails (EPIPE/ECONNRESET)
  local failed_with
  for _ = 1, 100 do
    local n, _, name = s:write(string.rep("x", 65536))
    if not n then failed_with = name break end
    ek.sleep(0.001)
  end
  ok(failed_with == "EPIPE" or failed_with == "ECONNRESET", "write error " .. tostring(failed_with))
  s:close()
  l:close()
  fails("ECLOSED", l:accept())
  fails("ECLOSED", l:local_addr())
  -- the wrong type raises
  raises(function() l.read(l) end)
  raises(function() getmetatable(c).__index.read(l) end, "ekiden.stream expected")
end)

test("tcp: close wakes a task waiting in read on the same stream", function()
  local l, addr = listener()
  local srv = ek.spawn(function() return l:accept() end)
  local c = assert(ek.tcp.connect(addr))
  local s = srv:join()
  local reader = ek.spawn(function() return c:read() end)
  ek.sleep(0.01)
  c:close()
  fails("ECLOSED", reader:join())
  s:close()
  l:close()
end)

test("tcp: cancelling a task waiting in accept and read", function()
  local l, addr = listener()
  local t = ek.spawn(function() return l:accept() end)
  ek.sleep(0.005)
  t:cancel()
  fails("ECANCELED", t:join())
  -- the listener still works
  local srv = ek.spawn(function() return l:accept() end)
  local c = assert(ek.tcp.connect(addr))
  local s = assert(srv:join())
  local r = ek.spawn(function() return s:read() end)
  ek.sleep(0.005)
  r:cancel()
  fails("ECANCELED", r:join())
  c:write("after")
  eq(s:read(), "after", "read after a cancelled read")
  s:close()
  c:close()
  l:close()
end)

test("tcp: <close> variables close handles", function()
  if not ek.lua_api:find("5.4") then return end
  local leaked = load([[
    local ek = ...
    local l <close> = assert(ek.tcp.listen("127.0.0.1:0"))
    return l
  ]])(ek)
  ok(tostring(leaked):find("closed"), "closed at the end of the scope")
end)

test("tcp: 200 concurrent connections echo", function()
  local l, addr = listener()
  local n = math.max(20, math.floor(200 * SCALE))
  ek.spawn(function()
    while true do
      local s = l:accept()
      if not s then return end
      ek.spawn(function()
        while true do
          local d = s:read()
          if not d or d == "" then break end
          s:write(d)
        end
        s:close()
      end)
    end
  end)
  local g = ek.group()
  for i = 1, n do
    g:spawn(function()
      local c = assert(ek.tcp.connect(addr))
      for j = 1, 5 do
        local msg = ("%d-%d\n"):format(i, j)
        assert(c:write(msg))
        assert(c:read_line() == msg:sub(1, -2), "echo mismatch")
      end
      c:close()
    end)
  end
  eq(g:wait(), true, "all clients")
  l:close()
end)

test("unix: listen, connect, pair, errors", function()
  local path = os.tmpname()
  os.remove(path)
  local l = assert(ek.unix.listen(path))
  eq(l:local_addr(), path, "local_addr is the path")
  fails("EADDRINUSE", ek.unix.listen(path))
  ek.spawn(function()
    local s = assert(l:accept())
    s:write(assert(s:read_line()) .. "!\n")
    s:close()
  end)
  local c = assert(ek.unix.connect(path))
  ok(tostring(c):find("unix"), "tostring")
  c:write("ping\n")
  eq(c:read_line(), "ping!", "reply")
  fails("ENOTSUP", c:set_nodelay(true))
  c:close()
  l:close()
  os.remove(path)
  fails("ENOENT", ek.unix.connect(path))
  local a, b = ek.unix.pair()
  a:write("over the pair")
  eq(b:read(), "over the pair", "pair")
  a:close()
  eq(b:read(), "", "eof")
  b:close()
  local abs = assert(ek.unix.listen("@ekiden-lua-test-" .. tostring(os.time()) .. "-" .. math.random(1e9)))
  abs:close()
end)

test("unix: reads and writes that wait, through the socket directly", function()
  -- (Streams read and write their socket without ek_stream's vtable: the
  -- Unix half of that path, with reads and writes that must wait.)
  local a, b = assert(ek.unix.pair())
  local big = string.rep("0123456789abcdef", 4 * 65536) -- 4 MiB: the write waits
  local writer = ek.spawn(function()
    eq(a:write(big), #big, "a write that waits for the reader")
    ek.sleep(0.01)
    eq(a:write("tail\n"), 5, "a write after the reader waited")
    a:close()
    return true
  end)
  local buf = ek.buffer(65536)
  local got = 0
  while got < #big do
    local n = assert(b:read_into(buf, math.min(65536, #big - got)))
    ok(n > 0, "read_into gives bytes")
    eq(buf:tostring(1, 1), big:sub(got + 1, got + 1), "in order")
    got = got + n
    buf:reset()
  end
  eq(b:read_line(), "tail", "a read that waited")
  eq(b:read(), "", "end of stream")
  eq(writer:join(), true, "writer")
  fails("ECLOSED", a:write("x"))
  eq(b:read_into(buf), 0, "read_into at the end of the stream")
  fails("ECLOSED", a:read_into(buf))
  buf:close()
  b:close()
end)

test("stream: an operation that waits returns its most results to a deep caller", function()
  -- The results of an operation that waited go on the stack of the C call
  -- that yielded, without a lua_checkstack per step (task.c): read_exactly's
  -- EOF is four values, returned through pcall from deep recursion with many
  -- live locals and after a yield in every frame's callee.
  local a, b = assert(ek.unix.pair())
  ek.spawn(function()
    ek.sleep(0.01)
    a:write("abc")
    ek.sleep(0.01)
    a:close()
  end)
  local function deep(n, x1, x2, x3, x4, x5, x6, x7, x8)
    if n == 0 then return b:read_exactly(10) end
    local y1, y2, y3, y4, y5, y6, y7, y8 = x1, x2, x3, x4, x5, x6, x7, x8
    local r = pack(deep(n - 1, y1, y2, y3, y4, y5, y6, y7, y8))
    eq(y8, 151, "locals intact")
    return unpack(r, 1, r.n)
  end
  local r = pack(pcall(deep, 150, 1, 2, 3, 4, 5, 6, 7, 151))
  eq(r.n, 5, "pcall's true and four results")
  eq(r[1], true, "no error")
  eq(r[2], nil, "nil")
  eq(r[4], "EOF", "EOF")
  eq(r[5], "abc", "partial")
  b:close()
end)

test("stream: methods held in locals (the hot-loop idiom) behave as method calls", function()
  local l, addr = listener()
  local server = ek.spawn(function()
    local s = assert(l:accept())
    local buf = ek.buffer(4096)
    local read_into, write, reset = s.read_into, s.write, buf.reset
    local rounds = 0
    while true do
      local n = read_into(s, buf)
      if not n or n == 0 then break end
      if not write(s, buf) then break end
      reset(buf)
      rounds = rounds + 1
    end
    buf:close()
    s:close()
    return rounds > 0
  end)
  local c = assert(ek.tcp.connect(addr))
  for i = 1, 20 do
    local msg = "ping " .. i
    assert(c:write(msg))
    eq(c:read_exactly(#msg), msg, "echo " .. i)
  end
  c:close()
  eq(server:join(), true, "server loop")
  local read_into = c.read_into
  raises(function() read_into(l, ek.buffer(8)) end, "ekiden.stream expected")
  fails("ECLOSED", read_into(c, ek.buffer(8)))
  l:close()
end)

test("udp: send_to, recv_from, connect, errors", function()
  local a = assert(ek.udp.bind("127.0.0.1:0"))
  local b = assert(ek.udp.bind("127.0.0.1:0"))
  local aa, ba = a:local_addr(), b:local_addr()
  eq(a:send_to("datagram", ba), 8, "sent")
  local d, from = b:recv_from()
  eq(d, "datagram", "received")
  eq(from, aa, "from")
  eq(b:send_to("long datagram", aa), 13, "sent 2")
  eq(a:recv_from(4), "long", "truncated to max")
  assert(a:connect(ba))
  eq(a:peer_addr(), ba, "peer")
  eq(a:send("c"), 1, "send connected")
  eq(b:recv(), "c", "recv")
  eq(a:set_broadcast(true), true, "broadcast")
  eq(a:set_ttl(10), true, "ttl")
  raises(function() a:set_ttl(0) end, "ttl must be")
  fails("EINVAL", a:send_to("x", "bad address"))
  fails("EADDRINUSE", ek.udp.bind(aa))
  -- a recv waits, and cancelling it is fine
  local t = ek.spawn(function() return b:recv_from() end)
  ek.sleep(0.005)
  t:cancel()
  fails("ECANCELED", t:join())
  a:close()
  fails("ECLOSED", a:send("x"))
  fails("ECLOSED", a:recv())
  fails("ECLOSED", a:local_addr())
  b:close()
end)

test("unix datagrams", function()
  local p1, p2 = os.tmpname(), os.tmpname()
  os.remove(p1)
  os.remove(p2)
  local a = assert(ek.unix.dgram(p1))
  local b = assert(ek.unix.dgram(p2))
  eq(a:send_to("hello", p2), 5, "sent")
  local d, from = b:recv_from()
  eq(d, "hello", "data")
  eq(from, p1, "from")
  fails("ENOTSUP", a:peer_addr())
  a:close()
  b:close()
  os.remove(p1)
  os.remove(p2)
end)

test("resolve", function()
  local addrs = assert(ek.resolve("localhost", 80))
  ok(#addrs >= 1, "at least one address")
  for _, a in ipairs(addrs) do
    ok(a == "127.0.0.1:80" or a == "[::1]:80", "loopback: " .. a)
  end
  local v4 = assert(ek.resolve("127.0.0.1", 53, { family = "inet" }))
  eq(v4[1], "127.0.0.1:53", "numeric")
  local any = assert(ek.resolve(nil, 8080, { passive = true, family = "inet" }))
  eq(any[1], "0.0.0.0:8080", "passive wildcard")
  local a, msg, name = ek.resolve("no-such-host.invalid", 80)
  eq(a, nil, "unknown host fails")
  ok(name == "EAI_NONAME" or name == "EAI_AGAIN" or name == "EAI_FAIL", "name " .. tostring(name))
  raises(function() ek.resolve(nil, 80) end, "host expected")
  raises(function() ek.resolve("x", 80, { family = "ipx" }) end, "family")
end)

test("handles outlive their run and close cleanly after it", function()
  local kept
  ek.run(function()
    local l = assert(ek.tcp.listen("127.0.0.1:0"))
    kept = { l = l, u = assert(ek.udp.bind("127.0.0.1:0")) }
    local srv = ek.spawn(function() return l:accept() end)
    kept.c = assert(ek.tcp.connect(l:local_addr()))
    kept.s = srv:join()
  end)
  -- The run is over: its runtime is shut down, the handles answer ECLOSED.
  fails("ECLOSED", kept.c:peer_addr())
  fails("ECLOSED", kept.l:local_addr())
  kept.c:close()
  kept = nil
  collectgarbage()
  collectgarbage()
end, { outside = true })

test("tcp: reads and writes that wait inside pcall, xpcall and an iterator", function()
  local l = assert(ek.tcp.listen("127.0.0.1:0"))
  local peer
  ek.spawn(function()
    peer = assert(l:accept())
    ek.sleep(0.01)
    assert(peer:write("one\ntwo\nthree\n"))
  end)
  local s = assert(ek.tcp.connect(l:local_addr()))
  local okc, line = pcall(function() return s:read_line() end)
  eq(okc, true, "pcall")
  eq(line, "one", "read_line waited inside pcall")
  local got = {}
  local function lines() return function() return s:read_line() end end
  for ln in lines() do
    got[#got + 1] = ln
    if #got == 2 then break end
  end
  eq(table.concat(got, ","), "two,three", "read_line waited inside a for iterator")
  -- a write bigger than the socket buffers waits (from C) while the peer reads
  local big = string.rep("x", 4 * 1024 * 1024)
  local reader = ek.spawn(function()
    ek.sleep(0.01)
    return #assert(peer:read_exactly(#big))
  end)
  local okw, n = xpcall(function() return s:write(big) end, debug.traceback)
  eq(okw, true, "xpcall")
  eq(n, #big, "the whole write")
  eq(reader:join(), #big, "the peer read all of it")
  -- in a coroutine of the user's own, an operation that waits raises
  local co = coroutine.wrap(function() return s:read() end)
  raises(co, "own coroutine")
  l:close()
end)

test("tcp: a task cancelled while its write waits; the stream stays usable", function()
  local l = assert(ek.tcp.listen("127.0.0.1:0"))
  local c = assert(ek.tcp.connect(l:local_addr()))
  local peer = assert(l:accept())
  local big = string.rep("y", 64 * 1024 * 1024) -- more than both sockets buffer
  local w = ek.spawn(function() return c:write(big) end)
  ek.sleep(0.02)
  eq(w:done(), false, "the write waits for the peer")
  w:cancel()
  fails("ECANCELED", w:join())
  collectgarbage()
  -- what was written before the cancel is there; then the stream goes on
  local first = assert(peer:read(65536))
  ok(#first > 0, "part of the big write arrived")
  c:close()
  peer:close()
end, { timeout = 300 }) -- 64 MiB under a sanitizer on a loaded machine: 4 s quiet, 37 s at load 13

-- A stream has one reading and one writing waker: a second task waiting in a
-- read (or a write) would take the first one's wake-up, and the first would
-- wait forever. The second gets EBUSY at once instead; the first is not
-- disturbed. (Before the guard, the second read waited: ETIMEDOUT here.)
test("tcp: a second task reading or writing a stream another task waits on gets EBUSY", function()
  local l = assert(ek.tcp.listen("127.0.0.1:0"))
  local c = assert(ek.tcp.connect(l:local_addr()))
  local s = assert(l:accept())
  local r1 = ek.spawn(function() return s:read() end)
  ek.sleep(0.005)
  eq(r1:done(), false, "the first reader waits")
  local function soon(fn, ...) return ek.timeout(2, fn, ...) end
  fails("EBUSY", soon(function() return s:read() end))
  fails("EBUSY", soon(function() return s:read_line() end))
  fails("EBUSY", soon(function() return s:read_exactly(3) end))
  eq(c:write("one"), 3, "write")
  eq(r1:join(), "one", "the first reader got the data")
  -- once it is done, any task reads
  c:write("two")
  eq(s:read(), "two", "a read after the first reader ended")
  -- a cancelled reader leaves the stream to the others
  local r3 = ek.spawn(function() return s:read_exactly(4) end)
  ek.sleep(0.005)
  r3:cancel()
  fails("ECANCELED", r3:join())
  c:write("four")
  eq(s:read_exactly(4), "four", "a read after a cancelled reader")
  -- writers: one waits (the peer reads nothing), a second gets EBUSY
  local big = string.rep("z", 64 * 1024 * 1024)
  local w1 = ek.spawn(function() return c:write(big) end)
  ek.sleep(0.02)
  eq(w1:done(), false, "the first writer waits")
  fails("EBUSY", soon(function() return c:write("x") end))
  w1:cancel()
  fails("ECANCELED", w1:join())
  local drain = ek.spawn(function()
    local n = 0
    while true do
      local d = assert(s:read(65536))
      if d == "" then return n end
      n = n + #d
    end
  end)
  eq(c:write("x"), 1, "a write after the cancelled writer")
  c:close()
  ok(drain:join() >= 1, "the peer read what was written")
  s:close()
  l:close()
end, { timeout = 300 }) -- 64 MiB under a sanitizer on a loaded machine: 4 s quiet, 37 s at load 13
