-- wrk script of the load harness.
--   WRK_TOKEN=<jwt>         send "Authorization: Bearer <jwt>" on every request
--   WRK_TOKENS_FILE=<path>  cycle through the file's tokens (one a line), a distinct one per
--                           request; with several threads each starts at its own offset
--   WRK_TOKENS_START=<n>    skip the file's first n tokens (default 0), so that consecutive
--                           runs can send tokens no earlier run sent
-- done() prints one machine-readable RESULT line (latencies in microseconds).

local tokens_file = os.getenv("WRK_TOKENS_FILE")
local fixed = os.getenv("WRK_TOKEN")
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

if tokens_file and tokens_file ~= "" then
  local tokens, n, i = {}, 0, 0
  function init(args)
    for line in io.lines(tokens_file) do
      if line ~= "" then
        n = n + 1
        tokens[n] = "Bearer " .. line
      end
    end
    if n == 0 then error("no tokens in " .. tokens_file) end
    local threads = tonumber(os.getenv("WRK_THREADS") or "1") or 1
    local start = tonumber(os.getenv("WRK_TOKENS_START") or "0") or 0
    if start >= n then error("WRK_TOKENS_START is past the end of " .. tokens_file) end
    i = start + math.floor((id or 0) * (n - start) / threads)
  end
  function request()
    i = i + 1
    if i > n then i = 1 end
    return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
  end
elseif fixed and fixed ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. fixed
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
