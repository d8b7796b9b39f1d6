package headoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestDeltaReadsOnlyTheChangesSinceTheCursor: with 20,000 older changes
// in the log and three since the cursor, finding the delta's start and
// reading its changes touch only the new rows, in the plan the planner
// picks for the cursor (custom) and in the one it may cache for any cursor
// (generic). Tills poll all day and the log only grows: a poll that walks
// it from the first change ever (as min(seq) over the table was planned)
// costs head office more with every sale. Rows, not time, are counted:
// EXPLAIN ANALYZE says how many each scan of changes read.
func TestDeltaReadsOnlyTheChangesSinceTheCursor(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `INSERT INTO changes (section, key) SELECT 'cards', 'old' || g FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	var cursor string
	var first int64
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT txid_current()::text`).Scan(&cursor); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `WITH n AS (INSERT INTO changes (section, key) SELECT 'cards', 'new' || g FROM generate_series(1, 3) g RETURNING seq)
			SELECT min(seq) FROM n`).Scan(&first)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE changes`); err != nil {
		t.Fatal(err)
	}

	var from int64
	if err := conn.QueryRow(ctx, sqlDeltaStart, cursor).Scan(&from); err != nil || from != first-1 {
		t.Fatalf("delta start: %d, %v; want %d, just before the first change since the cursor", from, err, first-1)
	}
	rows, err := conn.Query(ctx, sqlDeltaChanges, from, cursor, true, "S001", nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var seq int64
		var section, key string
		err := r.Scan(&seq, &section, &key)
		return key, err
	})
	if err != nil || len(keys) != 3 || keys[0] != "new1" || keys[2] != "new3" {
		t.Fatalf("delta changes: %v, %v; want new1…new3", keys, err)
	}

	readsAtMost(t, conn, "delta_start", sqlDeltaStart, fmt.Sprintf("'%s'", cursor), "changes", 10)
	readsAtMost(t, conn, "delta_changes", sqlDeltaChanges, fmt.Sprintf("%d, '%s', true, 'S001', NULL", from, cursor), "changes", 10)
}

// readsAtMost runs sql (prepared as name) with args (literals, as EXECUTE
// takes them) under EXPLAIN ANALYZE, in the plan the planner picks for
// those arguments and in the generic one it may cache for any, and fails
// the test if either reads more than max rows of table.
func readsAtMost(t *testing.T, conn *pgxpool.Conn, name, sql, args, table string, max float64) {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `PREPARE `+name+` AS `+sql); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
			t.Fatal(err)
		}
		var plan []byte
		if err := conn.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE `+name+`(`+args+`)`).Scan(&plan); err != nil {
			t.Fatalf("%s (%s): %v", name, mode, err)
		}
		if n := rowsRead(t, plan, table); n > max {
			t.Errorf("%s (%s plan) read %.0f rows of %s, want at most %.0f:\n%s", name, mode, n, table, max, plan)
		}
	}
}

// rowsRead sums, over the EXPLAIN (ANALYZE, FORMAT JSON) plan's scans of
// table, the rows they returned and those their filters removed.
func rowsRead(t *testing.T, plan []byte, table string) float64 {
	t.Helper()
	type node struct {
		Relation string  `json:"Relation Name"`
		Rows     float64 `json:"Actual Rows"`
		Loops    float64 `json:"Actual Loops"`
		Removed  float64 `json:"Rows Removed by Filter"`
		Plans    []node  `json:"Plans"`
	}
	var doc []struct{ Plan node }
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("explain: %v %s", err, plan)
	}
	var sum func(n node) float64
	sum = func(n node) float64 {
		total := 0.0
		if n.Relation == table {
			total += n.Rows*n.Loops + n.Removed
		}
		for _, c := range n.Plans {
			total += sum(c)
		}
		return total
	}
	return sum(doc[0].Plan)
}
