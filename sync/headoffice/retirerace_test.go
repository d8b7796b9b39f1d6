package headoffice

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// lockWaiters waits until n backends of application app wait on a lock.
func lockWaiters(t *testing.T, admin *pgx.Conn, app string, n int) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var got int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of head office's connections wait on a lock, want %d", got, n)
		}
	}
}

// TestRetireRefusesAPushInFlight: a push is authenticated (authTill reads
// the till's row without a lock), ERP retires the till, and only then does
// the push's ingest transaction lock the till's row. The ingest sees the
// retirement under the lock (sqlLockTill) and refuses the batch: 401,
// nothing written. A stolen till's last request does not land after ERP
// was told "retired_at".
//
// The race is made deterministic: a transaction of the test holds the
// till's row, Retire queues for it, then the push authenticates and
// queues behind Retire; the test lets go.
func TestRetireRefusesAPushInFlight(t *testing.T) {
	s, hs, secret, dsn, app := namedHO(t)
	ctx := context.Background()
	admin := pgConn(t, dsn)
	card := "2900000000018"
	before, err := s.CardBalanceOf(ctx, card)
	if err != nil {
		t.Fatal(err)
	}

	// Another connection holds the row: pg_stat_activity is read once per
	// transaction, so admin stays out of one.
	hold := holdTillRow(t, dsn)
	retired := make(chan error, 1)
	go func() { _, err := s.Retire(ctx, "S001-T01"); retired <- err }()
	lockWaiters(t, admin, app, 1)
	type answer struct {
		code int
		data []byte
	}
	pushed := make(chan answer, 1)
	var lt lateTill
	body, _ := json.Marshal(accrual7(&lt, card))
	go func() {
		code, data := httpCall(t, hs, "POST", "/v1/till/journal", body, secret)
		pushed <- answer{code, data}
	}()
	lockWaiters(t, admin, app, 2) // the push authenticated and waits for the till's row
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-retired; err != nil {
		t.Fatal(err)
	}
	a := <-pushed
	after, err := s.CardBalanceOf(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	var res wire.BatchResult
	json.Unmarshal(a.data, &res)
	if a.code == http.StatusOK || !after.Balance.Decimal().Equal(before.Balance.Decimal()) {
		t.Errorf("push whose ingest ran after the till's retirement committed: %d %s, card %s → %s; want refused (401), nothing written",
			a.code, statuses(&res), before.Balance, after.Balance)
	}
}

// TestRetireTillIDWithSlash: Enrol admits '/' in a till id; the ERP
// retires such a till with the '/' escaped in the path (the mux unescapes
// a wildcard), and unescaped it is no route (404), never another till.
func TestRetireTillIDWithSlash(t *testing.T) {
	s, hs, _ := servedHO(t, pgtest.DSN(t))
	ctx := context.Background()
	if _, err := s.Enrol(ctx, "S001/T09", "S001"); err != nil {
		t.Fatal(err)
	}
	if code, data := httpCall(t, hs, "POST", "/v1/erp/tills/S001/T09/retire", nil, ""); code != http.StatusNotFound {
		t.Errorf("retire S001/T09 unescaped: %d %s, want 404", code, data)
	}
	code, data := httpCall(t, hs, "POST", "/v1/erp/tills/S001%2FT09/retire", nil, "")
	var r struct {
		TillID    string `json:"till_id"`
		RetiredAt string `json:"retired_at"`
	}
	if code != 200 || json.Unmarshal(data, &r) != nil || r.TillID != "S001/T09" || r.RetiredAt == "" {
		t.Fatalf("retire S001%%2FT09: %d %s, want 200 for till S001/T09", code, data)
	}
	ts, err := s.Tills(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if (x.TillID == "S001/T09") != (x.RetiredAt != nil) {
			t.Errorf("tills report: %s retired at %v, want only S001/T09 retired", x.TillID, x.RetiredAt)
		}
	}
}
