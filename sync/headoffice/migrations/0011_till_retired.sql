-- A till taken out of service (stolen, broken, replaced): neither its
-- secret nor its certificate is admitted from retired_at on, until it is
-- enrolled again. Its journal stays.
ALTER TABLE tills ADD COLUMN retired_at timestamptz;
