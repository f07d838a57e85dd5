-- publish.lua: write one control tick of the autoscaler and renew the
-- leader lease, only while the caller holds it (fenced: a deposed leader
-- writes nothing).
--
-- Guarantees: all or nothing; readers see either the previous tick or
-- this one. The desired and status hashes are replaced whole, so queues
-- no longer scaled disappear from them.
--
-- KEYS[1]     the leader key
-- KEYS[2]     desired hash (field queue -> desired state JSON)
-- KEYS[3]     status hash (field queue -> queue status JSON)
-- KEYS[4]     decisions list (newest first)
-- KEYS[5..]   history lists, one per history sample in ARGV (newest first)
-- ARGV[1]     the lease token acquire.lua returned
-- ARGV[2]     lease time to live, ms
-- ARGV[3]     decisions kept (list length)
-- ARGV[4]     samples kept per history list
-- ARGV[5]     history list time to live, ms (lists of queues no longer
--             scaled expire)
-- ARGV[6]     D, desired entries;  ARGV[7] S, status entries;
-- ARGV[8]     N, new decisions
-- ARGV[9..]   D field/value pairs, S field/value pairs, N decision JSONs,
--             then one sample JSON per history key
--
-- Returns 1 when written, 0 when the lease is not the caller's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local d = tonumber(ARGV[6])
local s = tonumber(ARGV[7])
local n = tonumber(ARGV[8])
local i = 9
redis.call('DEL', KEYS[2])
for _ = 1, d do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('DEL', KEYS[3])
for _ = 1, s do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, n do
  redis.call('LPUSH', KEYS[4], ARGV[i])
  i = i + 1
end
if n > 0 then
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
end
for k = 5, #KEYS do
  redis.call('LPUSH', KEYS[k], ARGV[i])
  redis.call('LTRIM', KEYS[k], 0, tonumber(ARGV[4]) - 1)
  redis.call('PEXPIRE', KEYS[k], ARGV[5])
  i = i + 1
end
return 1
