package store

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// demoPath is testdata/demo/replica.yaml at the repository root.
func demoPath(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "demo", "replica.yaml")
}

func mustOpen(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T01", BusyTimeout: 2 * time.Second,
		Clock: func() time.Time { return demoNow }})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustDemo(t testing.TB) *Store {
	t.Helper()
	s := mustOpen(t)
	if _, err := s.ImportFile(context.Background(), demoPath(t)); err != nil {
		t.Fatalf("import demo: %v", err)
	}
	return s
}

// demoNow is the moment the demo data and its worked examples use.
var demoNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("MSK", 3*3600))

func TestOpenChecksPragmas(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	if err := s.CheckPragmas(ctx); err != nil {
		t.Fatalf("CheckPragmas: %v", err)
	}
	for _, db := range []struct {
		name string
		q    func(string) (string, error)
	}{
		{"writer", func(p string) (v string, err error) { err = s.w.QueryRowContext(ctx, "PRAGMA "+p).Scan(&v); return }},
		{"reader", func(p string) (v string, err error) { err = s.r.QueryRowContext(ctx, "PRAGMA "+p).Scan(&v); return }},
	} {
		for p, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "busy_timeout": "2000", "foreign_keys": "1"} {
			got, err := db.q(p)
			if err != nil || got != want {
				t.Errorf("%s: pragma %s = %q (%v), want %q", db.name, p, got, err, want)
			}
		}
	}
}

func TestOpenRefusesWrongPragma(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	// A connection configured with synchronous=NORMAL must be refused by
	// the hook that expects FULL.
	bad := dsn(path, time.Second, "immediate", false)
	bad += "&_pragma=synchronous(NORMAL)"
	c := newConnector(path, bad, wantPragmas(time.Second))
	_, err := c.Connect(context.Background())
	var pe *PragmaError
	if !errors.As(err, &pe) {
		t.Fatalf("connect with synchronous=NORMAL: err = %v, want *PragmaError", err)
	}
	if pe.Pragma != "synchronous" || pe.Want != "2" || pe.Got != "1" {
		t.Fatalf("PragmaError = %+v, want synchronous want 2 got 1", pe)
	}
	// And a busy timeout other than configured.
	c = newConnector(path, dsn(path, time.Second, "immediate", false), wantPragmas(3*time.Second))
	_, err = c.Connect(context.Background())
	if !errors.As(err, &pe) || pe.Pragma != "busy_timeout" || pe.Got != "1000" || pe.Want != "3000" {
		t.Fatalf("busy_timeout mismatch: err = %v", err)
	}
}

// TestWriteTransactionsAreImmediate: the writer's transactions take the
// write lock at BEGIN (BEGIN IMMEDIATE), before any statement runs. A
// deferred BEGIN would take it only at the first write, so a second process
// (tillctl replica import beside the agent) could fail a sale half-way with
// SQLITE_BUSY on the lock upgrade instead of waiting at the start.
func TestWriteTransactionsAreImmediate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "till.db")
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: path, TillID: "T", BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := Open(ctx, Options{Path: path, TillID: "T2", BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	tx, err := s.w.BeginTx(ctx, nil) // no statement yet
	if err != nil {
		t.Fatal(err)
	}
	// The other store's writer cannot even begin while tx is open.
	tx2, err := other.w.BeginTx(ctx, nil)
	if err == nil {
		tx2.Rollback()
		tx.Rollback()
		t.Fatal("a second writer began while the first held an empty transaction: BEGIN is not IMMEDIATE")
	}
	if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
		t.Fatalf("second BEGIN: err = %v, want SQLITE_BUSY (database is locked)", err)
	}
	// Readers are not blocked (WAL).
	var n int
	if err := other.r.QueryRowContext(ctx, `SELECT count(*) FROM journal`).Scan(&n); err != nil {
		t.Fatalf("read while a write transaction is open: %v", err)
	}
	tx.Rollback()
	// Once it ends, the other writer gets through; Append waits for the lock
	// at BEGIN and commits.
	if _, err := other.Append(ctx, []Entry{{CheckID: "C1", CardCode: "2900000000018", Kind: KindCorrection, Points: dec("1")}}); err != nil {
		t.Fatalf("append after the lock is released: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "till.db")
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: path, TillID: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE schema_version SET version = ?`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, Options{Path: path, TillID: "T"})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "till.db")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		s, err := Open(ctx, Options{Path: path, TillID: "T"})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		var v int
		if err := s.r.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil || v != SchemaVersion() {
			t.Fatalf("open #%d: schema version %d (%v), want %d", i+1, v, err, SchemaVersion())
		}
		s.Close()
	}
}

// TestOpenRefusesWithoutWAL: an in-memory database cannot run in WAL mode,
// so Open itself must refuse it with a PragmaError naming journal_mode.
func TestOpenRefusesWithoutWAL(t *testing.T) {
	_, err := Open(context.Background(), Options{Path: ":memory:", TillID: "T"})
	var pe *PragmaError
	if !errors.As(err, &pe) || pe.Pragma != "journal_mode" || pe.Want != "wal" || pe.Got != "memory" {
		t.Fatalf("open :memory: err = %v, want PragmaError journal_mode wal/memory", err)
	}
	if !strings.Contains(err.Error(), "refusing to run") {
		t.Fatalf("error %q does not say it refuses", err)
	}
}
