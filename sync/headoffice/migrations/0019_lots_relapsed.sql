-- 0019: of what expiry took from a lot (expired), the points given back
-- to it by returns dated at or after its expiry, which lapsed at once. A
-- late debit dated before the lot lapsed takes from what expiry took
-- (0018), but not from these: they came back only after its time.
ALTER TABLE lots ADD COLUMN relapsed numeric NOT NULL DEFAULT 0;
