-- 0008: the lots whose points may still expire, by expiry. Maintain (the
-- scheduled expiry) finds the cards due through it instead of reading every
-- lot ever accrued, which grows with every sale. A lot leaves the index once
-- used up or expired (remaining 0). Building it reads the lots table once,
-- inside the migration's transaction, holding off writes to lots meanwhile:
-- plan the upgrade of a large head office for it.
CREATE INDEX lots_live_expiry ON lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
