//! The Lua scripts: one per operation and slot, each atomic, sent with `EVALSHA` (redis-rs
//! loads a script once per server, on its first `NOSCRIPT`).
//!
//! An event's key holds one string:
//!
//! | value | state | expires |
//! |---|---|---|
//! | `d` | handled | done TTL |
//! | `p:<token>` | claimed, no failure counted | processing TTL |
//! | `p:<token>:<deadline>:<n>:<first>:<r>` | claimed until `deadline` (ms, Redis clock), after `n` failures, the first at `first` (ms) | the longer TTL |
//! | `f:<n>:<first>:<r>` | new, after `n` failures | done TTL |
//! | `k:<n>:<first>` | parked | never |
//!
//! `<r>` is `1` when a parked record of the event exists (a replay's claim, or a re-park that
//! found the parked set full): completing the event then drops the record. `d` and `p:<token>`
//! are what earlier versions wrote, and still mean the same.
//!
//! An entity's hash has `a` (the applied event's timestamp, µs), `x` (`1` when that was a
//! deletion) and, while an event of it is claimed, `ie`/`is`/`it`/`id` (that event's id,
//! timestamp, token and deadline). Timestamps are compared as decimal strings, exactly.
//!
//! A parked record is `<attempts>:<first>:<size>:<json>` in the `{parked} records` hash; the
//! `{parked} bytes` key sums the sizes.

use std::sync::LazyLock;

use ::redis::Script;

/// Shared by the event scripts.
const PRELUDE: &str = r"
local function fmt(n) return string.format('%d', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Compares canonical decimal integers (as Rust writes an i64): -1, 0 or 1.
local function cmp(a, b)
  if a == b then return 0 end
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return na and -1 or 1 end
  local r
  if #a ~= #b then
    r = (#a < #b) and -1 or 1
  else
    r = 1
    for i = 1, #a do
      local x, y = string.byte(a, i), string.byte(b, i)
      if x ~= y then r = (x < y) and -1 or 1 break end
    end
  end
  if na then r = -r end
  return r
end
local function parse(v)
  if not v then return nil end
  if v == 'd' then return {kind = 'd'} end
  local tok, dl, n, first, flag = string.match(v, '^p:([^:]+):(%d+):(%d+):(%-?%d+):([01])$')
  if tok then
    return {kind = 'p', token = tok, deadline = tonumber(dl), n = tonumber(n), first = first, flag = flag}
  end
  tok = string.match(v, '^p:([^:]+)$')
  if tok then return {kind = 'p', token = tok, n = 0, first = '0', flag = '0'} end
  n, first, flag = string.match(v, '^f:(%d+):(%-?%d+):([01])$')
  if n then return {kind = 'f', n = tonumber(n), first = first, flag = flag} end
  n, first = string.match(v, '^k:(%d+):(%-?%d+)$')
  if n then return {kind = 'k', n = tonumber(n), first = first, flag = '1'} end
  return {kind = '?'}
end
local function ours(s, token)
  return s ~= nil and s.kind == 'p' and s.token == token
end
local function counted(n, first, flag)
  return fmt(n) .. ':' .. first .. ':' .. flag
end
local function clear_entity(key, token)
  if key and redis.call('HGET', key, 'it') == token then
    redis.call('HDEL', key, 'ie', 'is', 'it', 'id')
  end
end
local function keep_entity(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, fmt(ttl)) end
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// `claim`. KEYS: event [, entity]. ARGV: token, processing ms, done ms, replay (`1`/`0`)
/// [, timestamp, event id]. Returns `{code, applied, deleted}`: 0 claimed (with the entity's
/// applied record before), 1 handled, 2 in progress, 3 superseded, 4 parked, -1 a value this
/// store did not write.
pub(super) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
-- Redis's clock, read only when a deadline is compared or set.
local now = nil
local function clock()
  if not now then now = now_ms() end
  return now
end
local proc, done = tonumber(ARGV[2]), tonumber(ARGV[3])
local s = parse(redis.call('GET', KEYS[1]))
local n, first, flag = 0, '0', '0'
if s then
  if s.kind == 'd' then return {1, false, false} end
  if s.kind == '?' then return {-1, false, false} end
  if s.kind == 'k' and ARGV[4] ~= '1' then return {4, false, false} end
  if s.kind == 'p' and (s.deadline == nil or s.deadline > clock()) then return {2, false, false} end
  n, first, flag = s.n, s.first, s.flag
end
if ARGV[4] == '1' then flag = '1' end
local applied, deleted = false, false
if KEYS[2] then
  local ts = ARGV[5]
  local e = redis.call('HMGET', KEYS[2], 'a', 'x', 'is', 'id')
  local running = e[4] and tonumber(e[4]) > clock()
  if (e[1] and cmp(e[1], ts) > 0) or (running and cmp(e[3], ts) > 0) then
    redis.call('SET', KEYS[1], 'd', 'PX', ARGV[3])
    return {3, false, false}
  end
  if running then return {2, false, false} end
  redis.call('HSET', KEYS[2], 'ie', ARGV[6], 'is', ts, 'it', ARGV[1], 'id', fmt(clock() + proc))
  keep_entity(KEYS[2], proc)
  applied, deleted = e[1], e[2]
end
if n == 0 and flag == '0' then
  redis.call('SET', KEYS[1], 'p:' .. ARGV[1], 'PX', ARGV[2])
else
  local value = 'p:' .. ARGV[1] .. ':' .. fmt(clock() + proc) .. ':' .. counted(n, first, flag)
  redis.call('SET', KEYS[1], value, 'PX', fmt(math.max(proc, done)))
end
return {0, applied, deleted}
",
    )
});

/// `complete`. KEYS: event [, entity]. ARGV: token, done ms [, timestamp, deletes (`1`/`0`)].
/// Returns 0 (not our claim: nothing changed), 1 (done) or 2 (done, and a parked record of the
/// event is to be dropped).
pub(super) static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local s = parse(redis.call('GET', KEYS[1]))
if not ours(s, ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2])
if KEYS[2] then
  local e = redis.call('HMGET', KEYS[2], 'a', 'it')
  if not e[1] or cmp(e[1], ARGV[3]) <= 0 then
    redis.call('HSET', KEYS[2], 'a', ARGV[3], 'x', ARGV[4])
  end
  if e[2] == ARGV[1] then redis.call('HDEL', KEYS[2], 'ie', 'is', 'it', 'id') end
  keep_entity(KEYS[2], tonumber(ARGV[2]))
end
if s.flag == '1' then return 2 end
return 1
",
    )
});

/// `release`. KEYS: event [, entity]. ARGV: token. Returns 1 (released) or 0 (not our claim).
/// Failure counts stay (until they expire).
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local s = parse(redis.call('GET', KEYS[1]))
if not ours(s, ARGV[1]) then return 0 end
clear_entity(KEYS[2], ARGV[1])
if s.n == 0 and s.flag == '0' then
  redis.call('DEL', KEYS[1])
else
  local ttl = math.max(redis.call('PTTL', KEYS[1]), 1)
  redis.call('SET', KEYS[1], 'f:' .. counted(s.n, s.first, s.flag), 'PX', fmt(ttl))
end
return 1
",
    )
});

/// `fail`, first step. KEYS: event [, entity]. ARGV: token, park after, done ms, now (ms, the
/// caller's clock). Returns `{code, attempts, first, record}`: -1 not our claim (nothing
/// changed); 0 counted and released; 1 this failure parks the event (nothing changed yet: the
/// parked set is asked first, then [`SETTLE`] finishes).
pub(super) static FAIL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local s = parse(redis.call('GET', KEYS[1]))
if not ours(s, ARGV[1]) then return {-1, 0, false, false} end
local n = s.n + 1
local first = s.first
if s.n == 0 then first = ARGV[4] end
if n < tonumber(ARGV[2]) then
  clear_entity(KEYS[2], ARGV[1])
  redis.call('SET', KEYS[1], 'f:' .. counted(n, first, s.flag), 'PX', ARGV[3])
  return {0, n, first, s.flag}
end
return {1, n, first, s.flag}
",
    )
});

/// `fail`, last step, after the parked set answered. KEYS: event [, entity]. ARGV: token,
/// parked (`1`/`0`), attempts, first, record (`1`/`0`), done ms. Parks the event, or (the set
/// was full) releases it with its failures counted. Returns 1, or 0 when the claim is no longer
/// ours (nothing changed).
pub(super) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local s = parse(redis.call('GET', KEYS[1]))
if not ours(s, ARGV[1]) then return 0 end
clear_entity(KEYS[2], ARGV[1])
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], 'k:' .. ARGV[3] .. ':' .. ARGV[4])
else
  redis.call('SET', KEYS[1], 'f:' .. ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[5], 'PX', ARGV[6])
end
return 1
",
    )
});

/// `unpark`, the event's side. KEYS: event. Forgets its parked state (a later delivery is new)
/// and that a record exists. Returns 1 when it was parked.
pub(super) static UNPARK: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local s = parse(redis.call('GET', KEYS[1]))
if s and s.kind == 'k' then
  redis.call('DEL', KEYS[1])
  return 1
end
if s and s.kind == 'f' and s.flag == '1' then
  redis.call('SET', KEYS[1], 'f:' .. counted(s.n, s.first, '0'), 'KEEPTTL')
end
return 0
",
    )
});

/// Parks a record, within the bounds. KEYS: records, bytes. ARGV: event id, attempts, first,
/// size, most events, most bytes, the record's JSON. A record already there (a replay failing
/// again) is replaced: its attempts + 1 at least, its first attempt kept. Returns
/// `{parked (1/0), attempts, a record was there (1/0)}`.
pub(super) static PARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local attempts, first, old_size = tonumber(ARGV[2]), ARGV[3], 0
if old then
  local a, f, size = string.match(old, '^(%d+):(%-?%d+):(%d+):')
  if a then
    attempts = math.max(attempts, tonumber(a) + 1)
    first, old_size = f, tonumber(size)
  end
end
local count = redis.call('HLEN', KEYS[1])
if not old then count = count + 1 end
local bytes = tonumber(redis.call('GET', KEYS[2]) or '0') - old_size + tonumber(ARGV[4])
local had = 0
if old then had = 1 end
if count > tonumber(ARGV[5]) or bytes > tonumber(ARGV[6]) then return {0, attempts, had} end
local record = string.format('%d', attempts) .. ':' .. first .. ':' .. ARGV[4] .. ':' .. ARGV[7]
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('INCRBY', KEYS[2], string.format('%d', tonumber(ARGV[4]) - old_size))
return {1, attempts, had}
",
    )
});

/// Drops a parked record. KEYS: records, bytes. ARGV: event id. Returns 1 when there was one.
pub(super) static DROP_RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local size = tonumber(string.match(old, '^%d+:%-?%d+:(%d+):') or '0')
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DECRBY', KEYS[2], string.format('%d', size))
return 1
",
    )
});
