-- Sync: channels (bounded, unbounded, iteration, close, many senders and
-- receivers, cancellation), semaphores, notify.

test("channel: values of any type, in order", function()
  local ch = ek.channel(4)
  ok(tostring(ch):find("ekiden.channel"), "tostring")
  local t = { "table" }
  assert(ch:send(1))
  assert(ch:send("two"))
  assert(ch:send(t))
  assert(ch:send(false))
  eq(ch:len(), 4, "len")
  eq(#ch, 4, "__len")
  eq(ch:recv(), 1, "number")
  eq(ch:recv(), "two", "string")
  eq(ch:recv(), t, "the same table")
  eq(ch:recv(), false, "false")
  raises(function() ch:send(nil) end, "nil cannot be sent")
  raises(function() ek.channel(0) end, "capacity must be")
end)

test("channel: a bounded channel makes senders wait (back-pressure)", function()
  local ch = ek.channel(2)
  local sent = 0
  local producer = ek.spawn(function()
    for i = 1, 10 do assert(ch:send(i)) sent = i end
    ch:close()
  end)
  ek.sleep(0.01)
  eq(sent, 2, "the producer waits once the channel is full")
  local got = {}
  for v in ch:iter() do got[#got + 1] = v end
  eq(table.concat(got, ","), "1,2,3,4,5,6,7,8,9,10", "all values in order")
  producer:join()
  fails("ECLOSED", ch:send(11))
  fails("ECLOSED", ch:recv())
  eq(ch:is_closed(), true, "closed")
end)

test("channel: try_send, try_recv, unbounded", function()
  local ch = ek.channel(1)
  assert(ch:try_send("a"))
  fails("EFULL", ch:try_send("b"))
  eq(ch:try_recv(), "a", "try_recv")
  fails("EEMPTY", ch:try_recv())
  local u = ek.channel()
  for i = 1, 1000 do assert(u:try_send(i)) end
  eq(u:len(), 1000, "unbounded")
  local s = 0
  u:close()
  for v in u do s = s + v end -- __call iteration
  eq(s, 500500, "sum")
end)

test("channel: many senders and many receivers", function()
  local ch = ek.channel(3)
  local n_send, per = 8, 50
  local g = ek.group()
  for s = 1, n_send do
    g:spawn(function()
      for i = 1, per do assert(ch:send(s * 1000 + i)) end
    end)
  end
  local results = ek.channel()
  local receivers = {}
  for r = 1, 5 do
    receivers[r] = ek.spawn(function()
      local count = 0
      for v in ch:iter() do
        count = count + 1
        results:send(v)
        if count % 7 == 0 then ek.yield() end
      end
      return count
    end)
  end
  g:wait()
  ch:close()
  local total = 0
  for r = 1, 5 do total = total + receivers[r]:join() end
  eq(total, n_send * per, "every value received once")
  results:close()
  local seen = {}
  for v in results:iter() do
    ok(not seen[v], "no duplicate " .. v)
    seen[v] = true
  end
end)

test("channel: a cancelled receiver does not lose values or stall others", function()
  local ch = ek.channel(1)
  local r1 = ek.spawn(function() return ch:recv() end)
  ek.sleep(0.005)
  local r2 = ek.spawn(function() return ch:recv() end)
  ek.sleep(0.005)
  r1:cancel()
  fails("ECANCELED", r1:join())
  assert(ch:send("for r2"))
  eq(r2:join(), "for r2", "the other receiver got it")
end)

test("channel: a cancelled sender gives back its place and keeps its value", function()
  local ch = ek.channel(1)
  assert(ch:send("first"))
  local s1 = ek.spawn(function() return ch:send("never") end)
  local s2 = ek.spawn(function() return ch:send("second") end)
  ek.sleep(0.005)
  s1:cancel()
  fails("ECANCELED", s1:join())
  eq(ch:recv(), "first", "first")
  eq(ch:recv(), "second", "second, not the cancelled one")
  eq(s2:join(), true, "s2 done")
  fails("EEMPTY", ch:try_recv())
end)

test("channel: values left in a collected channel are released", function()
  local weak = setmetatable({}, { __mode = "k" })
  do
    local ch = ek.channel()
    local v = {}
    weak[v] = true
    ch:send(v)
  end
  collectgarbage()
  collectgarbage()
  eq(next(weak), nil, "the queued value was collected with the channel")
end)

test("semaphore: limits concurrency, FIFO, release on close and cancel", function()
  local sem = ek.semaphore(2)
  ok(tostring(sem):find("2 available"), "tostring")
  local inside, max_inside = 0, 0
  local g = ek.group()
  for i = 1, 10 do
    g:spawn(function()
      local p = assert(sem:acquire())
      inside = inside + 1
      if inside > max_inside then max_inside = inside end
      ek.sleep(0.002)
      inside = inside - 1
      p:release()
    end)
  end
  eq(g:wait(), true, "all done")
  eq(max_inside, 2, "at most two at once")
  eq(sem:available(), 2, "all given back")
  local p = assert(sem:acquire(2))
  eq(p:count(), 2, "holds two")
  fails("EFULL", sem:try_acquire())
  local waiter = ek.spawn(function() return sem:acquire() end)
  ek.sleep(0.005)
  waiter:cancel() -- its place in the queue is given back
  fails("ECANCELED", waiter:join())
  p:release()
  p:release() -- idempotent
  eq(sem:available(), 2, "back to two")
  local q = assert(sem:try_acquire(1))
  eq(sem:available(), 1, "try_acquire took one")
  q:release()
  eq(sem:available(), 2, "raw permit released")
  local f = assert(sem:acquire())
  f:forget()
  eq(sem:available(), 1, "forgotten permit is gone")
  assert(sem:release(3))
  eq(sem:available(), 4, "grown")
  sem:close()
  fails("ECLOSED", sem:acquire())
  raises(function() ek.semaphore(-1) end, "permits must be")
end)

test("semaphore permits as <close> variables", function()
  if not ek.lua_api:find("5.4") then return end
  local sem = ek.semaphore(1)
  load([[
    local sem = ...
    local p <close> = assert(sem:acquire())
    assert(sem:available() == 0)
  ]])(sem)
  eq(sem:available(), 1, "released at the end of the scope")
end)

test("notify: one, all, and a notification before the wait is kept", function()
  local n = ek.notify()
  ok(tostring(n):find("ekiden.notify"), "tostring")
  n:notify_one()
  eq(n:wait(), true, "stored permit")
  local woken = 0
  local ts = {}
  for i = 1, 3 do ts[i] = ek.spawn(function() n:wait() woken = woken + 1 end) end
  ek.sleep(0.005)
  n:notify_one()
  ek.sleep(0.005)
  eq(woken, 1, "notify_one wakes one")
  n:notify_all()
  for i = 1, 3 do ts[i]:join() end
  eq(woken, 3, "notify_all wakes the rest")
  -- a cancelled waiter passes its notification on
  local a = ek.spawn(function() return n:wait() end)
  local b = ek.spawn(function() return n:wait() end)
  ek.sleep(0.005)
  n:notify_one()
  a:cancel()
  fails("ECANCELED", a:join())
  eq(b:join(), true, "b got the notification")
end)
