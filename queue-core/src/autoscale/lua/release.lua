-- release.lua: let go of the leader lease, only if it is still ours.
--
-- KEYS[1]  the leader key
-- ARGV[1]  the lease token acquire.lua returned
--
-- Returns 1 when released, 0 when the lease had expired or was taken over.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
