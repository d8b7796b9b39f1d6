-- A till's certificate issued (not before) at or before certs_after is
-- refused: the till's last retirement. A stolen till's certificate stays
-- refused after its replacement is enrolled under the same id.
ALTER TABLE tills ADD COLUMN certs_after timestamptz;
