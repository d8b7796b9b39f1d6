-- 0010: each card's lots not used up, by card. A card keeps every lot it
-- was ever accrued, one a purchase; ingestion, corrections, Maintain and
-- the feed read a card's live lots through this index, and those used up
-- only when an entry names them (a return giving points back), not every
-- lot of the card's history on every sale. Built like 0008, inside the
-- migration's transaction, writes to lots waiting meanwhile.
CREATE INDEX lots_live ON lots (card) WHERE remaining > 0;
