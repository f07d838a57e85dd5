-- acquire.lua: take the autoscaler's leader lease if nobody holds it.
--
-- Guarantees: at most one holder at a time; every acquisition gets a new
-- epoch (fencing token) from a counter that only grows, so a deposed
-- leader's writes can be told from the current one's.
--
-- KEYS[1]  the leader key (string, with a PX expiry)
-- KEYS[2]  the fence counter (integer)
-- ARGV[1]  holder id (host, pid and a random part; no '|')
-- ARGV[2]  lease time to live, ms
-- ARGV[3]  now, ms since the epoch (the holder's clock)
--
-- Returns the lease token "<epoch>|<since ms>|<holder>" (the leader key's
-- exact value) when taken, false when someone holds it.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local epoch = redis.call('INCR', KEYS[2])
local token = epoch .. '|' .. ARGV[3] .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
