package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestUserAgent: every request says which build the till runs (head
// office's tills report shows it), "tillagent" when Options.Agent is not
// set.
func TestUserAgent(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T01"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Append(ctx, []store.Entry{{CheckID: "C1", CardCode: "2900000000018", Kind: store.KindAccrual,
		Points: decimal.NewFromInt(5), Lots: []store.LotChange{{Create: true, Delta: decimal.NewFromInt(5), ActiveFrom: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	ho := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.UserAgent())
		b, err := wire.DecodeBatch(mustReadAll(t, r.Body))
		if err != nil {
			t.Errorf("batch: %v", err)
			return
		}
		res := wire.BatchResult{}
		for _, e := range b.Entries {
			res.Results = append(res.Results, wire.Result{ID: e.ID, Status: wire.Conflict, Error: "kept unacknowledged"})
		}
		json.NewEncoder(w).Encode(res)
	}))
	defer ho.Close()
	for _, agent := range []string{"", "tillagent/1.4.0"} {
		c, err := New(Options{URL: ho.URL, TillID: "S001-T01", Secret: "s", Store: st, Agent: agent})
		if err != nil {
			t.Fatal(err)
		}
		c.push(ctx, true)
	}
	if len(got) != 2 || got[0] != "tillagent" || got[1] != "tillagent/1.4.0" {
		t.Fatalf("User-Agents sent: %q, want tillagent then tillagent/1.4.0", got)
	}
}
