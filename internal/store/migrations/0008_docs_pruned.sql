-- A finished document older than the till keeps (sale.keep_days) loses its
-- result, receipt and answer: the bulk of the till's database. The row
-- stays (its id, key, fiscal number and sign), so a return or a retry of
-- it is told the sale is no longer kept rather than that it never was.
ALTER TABLE sale_docs ADD COLUMN pruned_ms INTEGER;
-- The sales still kept, by age: what a prune run scans.
CREATE INDEX sale_docs_kept ON sale_docs(created_ms) WHERE kind = 'sale' AND pruned_ms IS NULL;
