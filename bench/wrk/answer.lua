-- wrk script: answers second-factor checks with precomputed TOTP codes.
--
--   wrk -t2 -c64 -d30s --latency -s bench/wrk/answer.lua URL -- FILE THREADS KIND
--
-- FILE has one line per challenge (or token): `id firstStep code1 code2 ... codeK`,
-- code i being the TOTP code of 30-second step firstStep+i-1. wrk's LuaJIT has no
-- HMAC, so the codes are computed beforehand; each request takes the code of the
-- current step, math.floor(os.time() / 30).
-- THREADS must equal wrk's -t: thread n takes lines n, n+THREADS, n+2*THREADS, ... so
-- no two threads ever send the same line.
-- KIND says what a line is and how the answer is sent:
--   ucloud       id is a twofa login challenge; POST JSON {"challengeId","verificationCode"}
--                to /auth/2fa/challenge. A challenge answers once: each line is sent
--                once; success is status 200.
--   privacyidea  id is a token serial; POST form serial=&pass= to /validate/check. A
--                token takes one code per step: a line is sent again only for a later
--                step (the lines are cycled; once all were sent in this step, the next
--                step's code is used, at most AHEAD steps ahead, privacyIDEA's window
--                accepting them). Success is status 200 with "authentication": "ACCEPT".
-- An optional fourth argument AHEAD (privacyidea only, default 1).
-- done() prints the counts and one `RESULT key=value ...` line for scripts.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("thread_no", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- Per thread (each has its own Lua state).
local ids, firsts, codes, used = {}, {}, {}, {}
local n, pos = 0, 1
local kind, ahead
-- Counted answers; read by done() through thread:get.
ok, non200, rejected, exhausted, stale = 0, 0, 0, 0, 0
nthreads = nil -- THREADS, global so done() can compare it with the threads that ran

function init(args)
   local file = args[1]
   nthreads = tonumber(args[2])
   kind = args[3]
   ahead = tonumber(args[4] or "1")
   if not file or not nthreads or (kind ~= "ucloud" and kind ~= "privacyidea") then
      error("usage: wrk ... -s answer.lua URL -- FILE THREADS ucloud|privacyidea [AHEAD]")
   end
   local f = assert(io.open(file, "r"))
   local line_no = 0
   for line in f:lines() do
      if line ~= "" then
         if line_no % nthreads == thread_no - 1 then
            local id, first, rest = line:match("^(%S+) (%d+) (.*)$")
            assert(id, "bad line: " .. line)
            n = n + 1
            ids[n], firsts[n], codes[n], used[n] = id, tonumber(first), rest, -1
         end
         line_no = line_no + 1
      end
   end
   f:close()
   if n == 0 then
      error("no lines for thread " .. thread_no .. " in " .. file)
   end
   if kind == "ucloud" then
      wrk.method = "POST"
      wrk.headers["Content-Type"] = "application/json"
      wrk.headers["Accept"] = "application/json"
   else
      wrk.method = "POST"
      wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   end
end

-- The code of line i for step s: codes are 6 digits, separated by one space.
local function code_for(i, s)
   local k = s - firsts[i]
   local last = math.floor((#codes[i] + 1) / 7) - 1
   if k < 0 or k > last then
      stale = stale + 1
      k = math.max(0, math.min(k, last))
   end
   return codes[i]:sub(k * 7 + 1, k * 7 + 6)
end

-- Which line and step the next request uses.
local function next_line()
   local now = math.floor(os.time() / 30)
   if kind == "ucloud" then
      if pos > n then
         -- Every challenge was answered: send the last again, counted (a run that
         -- needs more lines needs more users).
         exhausted = exhausted + 1
         return n, now
      end
      local i = pos
      pos = pos + 1
      return i, now
   end
   local i = pos
   pos = pos % n + 1
   local s = math.max(now, used[i] + 1)
   if s > now + ahead then
      exhausted = exhausted + 1
      s = now + ahead
   end
   used[i] = s
   return i, s
end

function request()
   local i, s = next_line()
   local code = code_for(i, s)
   local body
   if kind == "ucloud" then
      body = '{"challengeId":"' .. ids[i] .. '","verificationCode":"' .. code .. '"}'
   else
      body = "serial=" .. ids[i] .. "&pass=" .. code
   end
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
   elseif kind == "privacyidea" and not body:find('"authentication": "ACCEPT"', 1, true) then
      rejected = rejected + 1
   else
      ok = ok + 1
   end
end

function done(summary, latency, requests)
   local sums = { ok = 0, non200 = 0, rejected = 0, exhausted = 0, stale = 0 }
   for _, t in ipairs(threads) do
      for k, _ in pairs(sums) do
         sums[k] = sums[k] + (t:get(k) or 0)
      end
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "answers: %d accepted, %d non-200, %d rejected with 200; socket errors: connect %d, read %d, write %d, timeout %d\n",
      sums.ok, sums.non200, sums.rejected, e.connect, e.read, e.write, e.timeout))
   if #threads ~= threads[1]:get("nthreads") then
      io.write(string.format("WARNING: THREADS argument is not wrk's -t (%d threads ran)\n", #threads))
   end
   if sums.exhausted > 0 then
      io.write(string.format("WARNING: %d requests found no unused line (more lines needed)\n", sums.exhausted))
   end
   if sums.stale > 0 then
      io.write(string.format("WARNING: %d requests fell outside the steps of the file\n", sums.stale))
   end
   io.write(string.format(
      "RESULT requests=%d seconds=%.2f rps=%.1f accepted=%d accepted_rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non200=%d rejected=%d exhausted=%d stale=%d socket_errors=%d\n",
      summary.requests, seconds, summary.requests / seconds, sums.ok, sums.ok / seconds,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000,
      sums.non200, sums.rejected, sums.exhausted, sums.stale,
      e.connect + e.read + e.write + e.timeout))
end
