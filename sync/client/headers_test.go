package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
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
	st := tillStore(t)
	if _, err := st.Append(ctx, []store.Entry{accrual5("")}); err != nil {
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

// TestCompressedPushFallsBack: pushes go gzip only after head office's
// answer says it takes them; one rolled back to a build that does not
// answers 400 without saying so, and the push goes again as it is, at
// once.
func TestCompressedPushFallsBack(t *testing.T) {
	ctx := context.Background()
	st := tillStore(t)
	var codings []string
	takes := true // head office's build takes gzip bodies
	ho := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codings = append(codings, r.Header.Get("Content-Encoding"))
		if r.Header.Get("Content-Encoding") == "gzip" && !takes {
			http.Error(w, `{"error": "decode batch: invalid character"}`, http.StatusBadRequest)
			return
		}
		if takes {
			w.Header().Set("Accept-Encoding", "gzip")
		}
		answerApplied(t, w, r)
	}))
	defer ho.Close()
	c, err := New(Options{URL: ho.URL, TillID: "S001-T01", Secret: "s", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		takes bool
		want  string // Content-Encodings of the push's requests
	}{
		{true, ""},       // nothing known yet: as it is
		{true, "gzip"},   // the last answer said gzip
		{false, "gzip,"}, // rolled back: 400, then again as it is
		{false, ""},      // the 400 said nothing: as it is
		{true, ""},       // back: learnt from this answer
		{true, "gzip"},
	} {
		takes, codings = step.takes, nil
		appendSale(t, st, 5)
		if err := c.push(ctx, true); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		if got := strings.Join(codings, ","); got != step.want {
			t.Errorf("push %d: Content-Encodings %q, want %q", i, got, step.want)
		}
	}
	if n, err := st.PendingCount(ctx); err != nil || n != 0 {
		t.Fatalf("%d entries left pending (%v), want none", n, err)
	}
}

// tillStore is till S001-T01's store in a temporary directory.
func tillStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// accrual5 is an accrual of 5 points on card 2900000000018, noted so.
func accrual5(note string) store.Entry {
	return store.Entry{CheckID: "C1", CardCode: "2900000000018", Kind: store.KindAccrual, Note: note,
		Points: decimal.NewFromInt(5), Lots: []store.LotChange{{Create: true, Delta: decimal.NewFromInt(5), ActiveFrom: time.Now()}}}
}

// appendSale appends n accruals of 5 points to st, a push of over a
// kilobyte.
func appendSale(t *testing.T, st *store.Store, n int) {
	t.Helper()
	var es []store.Entry
	for i := 0; i < n; i++ {
		es = append(es, accrual5(strings.Repeat("n", 200)))
	}
	if _, err := st.Append(context.Background(), es); err != nil {
		t.Fatal(err)
	}
}

// answerApplied answers a push, gzip or plain, every entry applied, as
// head office would.
func answerApplied(t *testing.T, w http.ResponseWriter, r *http.Request) {
	t.Helper()
	body, err := readBodyForTest(r)
	if err != nil {
		t.Errorf("batch: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, err := wire.DecodeBatch(body)
	if err != nil {
		t.Errorf("batch: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res := wire.BatchResult{}
	for _, e := range b.Entries {
		res.Results = append(res.Results, wire.Result{ID: e.ID, Status: wire.Applied})
	}
	json.NewEncoder(w).Encode(res)
}
