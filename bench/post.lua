-- wrk: POST a different pre-signed token per request. TOKENS names the token file. Each wrk
-- thread takes every Nth token (N = threads x shards), so no token repeats until the file is
-- exhausted; with several wrk processes at once (one per receiver sharing a store), give each
-- its own TOKEN_SHARD (0..TOKEN_SHARDS-1) so their tokens never meet either.
local threads = {}
local count = 0

function setup(thread)
  thread:set("tid", count)
  count = count + 1
  table.insert(threads, thread)
end

local function env_number(name, default)
  return tonumber(os.getenv(name) or default)
end

function init(args)
  tokens = {}
  local nthreads = env_number("WRK_THREADS", "2")
  local stride = nthreads * env_number("TOKEN_SHARDS", "1")
  local mine = env_number("TOKEN_SHARD", "0") * nthreads + tid
  local i = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if i % stride == mine then
      tokens[#tokens + 1] = line
    end
    i = i + 1
  end
  next_token = 0
  wrapped = 0
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
  local wraps = 0
  for _, t in ipairs(threads) do
    wraps = wraps + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  -- non2xx: wrk's count of responses with a status >= 400 (wrk counts nothing else as an error).
  io.write(string.format(
    "RESULT rps=%.0f p50_us=%d p99_us=%d max_us=%d requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d token_wraps=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    latency.max, summary.requests, e.status, e.connect, e.read, e.write, e.timeout, wraps))
end
