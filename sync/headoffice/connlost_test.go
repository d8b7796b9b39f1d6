package headoffice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tillagent/internal/store"
	"tillagent/sync/pgtest"
	"tillagent/sync/wire"
)

// TestDatabaseConnectionsCut: PostgreSQL drops every connection of head
// office's pool (a failover, an administrator, a proxy in between
// restarting) while they sit idle. A till's next push and feed work as if
// nothing happened, and the push counts once; an ERP report is answered
// 503 "retry" at most once, and the next one works; Ingest called in
// process reconnects too.
func TestDatabaseConnectionsCut(t *testing.T) {
	b := make([]byte, 6)
	rand.Read(b)
	app := "ho-test-" + hex.EncodeToString(b)
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t) + "&application_name=" + app, ERPToken: "erp-secret",
		Clock: func() time.Time { return demoNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	admin, err := pgx.Connect(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	cut := func() {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("no connection of head office's pool to cut")
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("head office's connections still there after pg_terminate_backend")
			}
		}
	}
	do := func(method, path string, body []byte, till bool) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		if till {
			req.SetBasicAuth("S001-T01", secret)
		} else {
			req.Header.Set("Authorization", "Bearer erp-secret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	card := "2900000000018"
	balance := func() string {
		t.Helper()
		code, data := do("GET", "/v1/erp/reports/balances?card="+card, nil, false)
		if code == http.StatusServiceUnavailable {
			code, data = do("GET", "/v1/erp/reports/balances?card="+card, nil, false)
		}
		var cb CardBalance
		if code != 200 || json.Unmarshal(data, &cb) != nil {
			t.Fatalf("balance report: %d %s", code, data)
		}
		return cb.Balance.String()
	}
	before := balance()
	var lt lateTill
	for round := 1; round <= 3; round++ {
		cut()
		body, _ := json.Marshal(lt.batch(store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("7"), PurchaseKop: 700, CreatedAt: demoNow,
			Lots: []store.LotChange{{Create: true, Delta: dec("7"), ActiveFrom: demoNow}}}))
		code, data := do("POST", "/v1/till/journal", body, true)
		var res wire.BatchResult
		if code != 200 || json.Unmarshal(data, &res) != nil {
			t.Fatalf("push %d after the connections were cut: %d %s", round, code, data)
		}
		wantStatuses(t, "push", &res, wire.Applied)
		cut()
		if code, data := do("GET", "/v1/till/feed", nil, true); code != 200 {
			t.Fatalf("feed %d after the connections were cut: %d %s", round, code, data)
		}
		cut()
		want := dec(before).Add(dec("7").Mul(dec(string(rune('0' + round))))).String()
		if got := balance(); got != want {
			t.Fatalf("balance after %d pushes: %s, want %s", round, got, want)
		}
	}
	if n := s.LostConnections(); n < 9 {
		t.Errorf("%d lost connections counted, want one for each of the 9 requests after a cut", n)
	}
	// Ingest itself reconnects too: a connection lost between the till's
	// authentication and its batch.
	cut()
	res, err := s.Ingest(ctx, lt.batch(store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("7"), PurchaseKop: 700, CreatedAt: demoNow,
		Lots: []store.LotChange{{Create: true, Delta: dec("7"), ActiveFrom: demoNow}}}))
	if err != nil {
		t.Fatalf("ingest after the connections were cut: %v", err)
	}
	wantStatuses(t, "ingest", res, wire.Applied)
	if got, want := balance(), dec(before).Add(dec("28")).String(); got != want {
		t.Fatalf("balance after 4 pushes: %s, want %s", got, want)
	}
}
