-- The entries folded on a card head office did not hold (no_card, 0007)
-- are listed by card for ERP (GET /v1/erp/reports/unknown-cards) and
-- counted at every scrape: through this index only those rows are read.
-- Building it reads the journal once, inside the migration's transaction,
-- with the journal's writes waiting: plan the upgrade of a large head
-- office for it.
CREATE INDEX journal_no_card ON journal (card_code) WHERE no_card;
