-- 0004: the ERP journal export's epoch. Export cursors are (xid, seq); a
-- database restored into another PostgreSQL cluster carries the old
-- cluster's xids, which the new one has not reached. Head office renumbers
-- them when it starts (restore.go) and gives the export a new random epoch,
-- so an ERP cursor from before the restore starts the export again instead
-- of waiting, possibly for days, for the new cluster's xids to pass it.
CREATE TABLE export_epoch (
	one   boolean PRIMARY KEY DEFAULT true CHECK (one),
	epoch int NOT NULL DEFAULT 0
);
INSERT INTO export_epoch DEFAULT VALUES;
