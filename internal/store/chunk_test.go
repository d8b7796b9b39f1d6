package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestExecChunkedNamesTheFailingRow: 150 rows go in chunks; the row that
// breaks a constraint is named by its index even inside a full chunk,
// and with the chunks that succeeded the rows before it are there, none
// of it or after it.
func TestExecChunkedNamesTheFailingRow(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE chunked (k INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0))`); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int{-1, 0, 63, 64, 100, 149} {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = execChunked(ctx, tx, `INSERT INTO chunked (k, v)`, `(?, ?)`, `ON CONFLICT(k) DO UPDATE SET v = excluded.v`, 150,
			func(i int, to []any) []any {
				v := i
				if i == bad {
					v = -1
				}
				return append(to, i, v)
			}, func(i int, err error) error { return fmt.Errorf("row %d: %w", i, err) })
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM chunked`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		switch {
		case bad < 0 && (err != nil || n != 150):
			t.Errorf("all good: %v, %d rows, want 150", err, n)
		case bad >= 0 && (err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("row %d: ", bad)) || !strings.Contains(err.Error(), "CHECK")):
			t.Errorf("row %d bad: %v, want it named with the CHECK failure", bad, err)
		case bad >= 0 && n != bad:
			t.Errorf("row %d bad: %d rows in, want the %d before it", bad, n, bad)
		}
	}
}
