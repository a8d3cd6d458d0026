-- wrk: POST a different pre-signed token per request. TOKENS names the token file; each wrk
-- thread takes every Nth token (N = threads), so no token repeats until the file is exhausted.
local threads = {}
local count = 0

function setup(thread)
  thread:set("tid", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  local i = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if i % count_threads() == tid then
      tokens[#tokens + 1] = line
    end
    i = i + 1
  end
  next_token = 0
  wrapped = 0
end

function count_threads()
  return tonumber(os.getenv("WRK_THREADS") or "2")
end

function request()
  next_token = next_token + 1
  if next_token > #tokens then
    next_token = 1
    wrapped = wrapped + 1
  end
  return wrk.format("POST", "/kinde/webhook", { ["Content-Type"] = "application/jwt" }, tokens[next_token])
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  local wraps = 0
  for _, t in ipairs(threads) do
    wraps = wraps + (t:get("wrapped") or 0)
  end
  io.write(string.format("RESULT rps=%.0f p50_us=%d p99_us=%d requests=%d non200=%d socket_errors=%d token_wraps=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, wraps))
end
