-- 0003: identifiers compare bytewise. Under the database's default
-- collation (C.UTF-8, en_US.UTF-8, ru_RU.UTF-8) every index comparison of a
-- card code, lot id or journal id goes through strcoll, a tenth of the
-- database's time while ingesting; "C" is memcmp. Byte order is also the
-- order Go's sort.Strings and the till use for ids and lock order, so
-- ORDER BY on these columns now agrees with them whatever the database's
-- locale. Indexes on the columns are rebuilt; the rows are not rewritten.
ALTER TABLE lots DROP CONSTRAINT lots_card_fkey;
ALTER TABLE card_stores DROP CONSTRAINT card_stores_card_fkey;

ALTER TABLE catalog ALTER COLUMN section TYPE text COLLATE "C", ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE cards ALTER COLUMN code TYPE text COLLATE "C", ALTER COLUMN kind TYPE text COLLATE "C",
	ALTER COLUMN program TYPE text COLLATE "C";
ALTER TABLE lots ALTER COLUMN card TYPE text COLLATE "C", ALTER COLUMN lot_id TYPE text COLLATE "C";
ALTER TABLE tills ALTER COLUMN till_id TYPE text COLLATE "C", ALTER COLUMN store_id TYPE text COLLATE "C",
	ALTER COLUMN folded_through TYPE text COLLATE "C";
ALTER TABLE journal ALTER COLUMN id TYPE text COLLATE "C", ALTER COLUMN till_id TYPE text COLLATE "C",
	ALTER COLUMN prev_id TYPE text COLLATE "C", ALTER COLUMN card_code TYPE text COLLATE "C";
ALTER TABLE changes ALTER COLUMN section TYPE text COLLATE "C", ALTER COLUMN key TYPE text COLLATE "C";
ALTER TABLE overdrafts ALTER COLUMN card TYPE text COLLATE "C", ALTER COLUMN till_id TYPE text COLLATE "C",
	ALTER COLUMN entry_id TYPE text COLLATE "C";
ALTER TABLE store_card_scope ALTER COLUMN store_id TYPE text COLLATE "C";
ALTER TABLE card_stores ALTER COLUMN store_id TYPE text COLLATE "C", ALTER COLUMN card TYPE text COLLATE "C";
ALTER TABLE debt_writeoffs ALTER COLUMN card TYPE text COLLATE "C";

ALTER TABLE lots ADD CONSTRAINT lots_card_fkey FOREIGN KEY (card) REFERENCES cards(code);
ALTER TABLE card_stores ADD CONSTRAINT card_stores_card_fkey FOREIGN KEY (card) REFERENCES cards(code);
