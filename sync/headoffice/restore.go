package headoffice

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// renumberForeignXids repairs a database restored into another PostgreSQL
// cluster (a pg_dump of the lost server loaded into a new one). Change and
// journal rows carry the xid of the transaction that wrote them, and the
// feed and the export bound what they deliver by the oldest running
// transaction: rows with the old cluster's xids, which the new cluster has
// not reached, would be delivered again on every delta (every till
// reloading its whole replica each cycle) and never exported. A live
// cluster can never hold an xid at or above its own current one, so such a
// row marks the restore. They get this transaction's xid (their order is
// kept: the feed and the export order by xid, then seq); every till's feed
// is reset (a new epoch: its cursor counts in the old xids) and the
// export's epoch changes (an ERP cursor from before starts again; ERP keeps
// entries by id). It runs at start, in migrate's transaction.
func (s *Server) renumberForeignXids(ctx context.Context, tx pgx.Tx) error {
	var xid string
	var journal, changes bool
	err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text,
			EXISTS (SELECT 1 FROM journal WHERE xid >= pg_current_xact_id()),
			EXISTS (SELECT 1 FROM changes WHERE xid >= pg_current_xact_id())
			OR EXISTS (SELECT 1 FROM change_marks WHERE oldest > pg_current_xact_id())
			OR EXISTS (SELECT 1 FROM feed_horizon WHERE oldest > pg_current_xact_id())`).Scan(&xid, &journal, &changes)
	if err != nil {
		return fmt.Errorf("look for xids of another cluster: %w", err)
	}
	if !journal && !changes {
		return nil
	}
	j, err := tx.Exec(ctx, `UPDATE journal SET xid = pg_current_xact_id() WHERE xid >= pg_current_xact_id()`)
	if err != nil {
		return fmt.Errorf("renumber the journal's xids: %w", err)
	}
	c, err := tx.Exec(ctx, `UPDATE changes SET xid = pg_current_xact_id() WHERE xid >= pg_current_xact_id()`)
	if err != nil {
		return fmt.Errorf("renumber the changes' xids: %w", err)
	}
	// The change log's marks count in the old xids too; every till is
	// reset below, so no cursor needs the horizon.
	if _, err := tx.Exec(ctx, `DELETE FROM change_marks; DELETE FROM feed_horizon`); err != nil {
		return fmt.Errorf("drop the change log's marks: %w", err)
	}
	t, err := tx.Exec(ctx, `UPDATE tills SET feed_epoch = `+sqlNewEpoch)
	if err != nil {
		return fmt.Errorf("reset the tills' feeds: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE export_epoch SET epoch = `+sqlNewEpoch); err != nil {
		return fmt.Errorf("new export epoch: %w", err)
	}
	s.log.Warn("database restored from another PostgreSQL cluster: xids renumbered, every till's feed reset, ERP export cursors start again",
		"journal_entries", j.RowsAffected(), "changes", c.RowsAffected(), "tills", t.RowsAffected(), "xid", xid)
	return nil
}
