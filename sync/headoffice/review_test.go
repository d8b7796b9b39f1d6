package headoffice

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// inZone is the entries with every time in zone, as a till whose process
// time zone changed reads them back from its journal.
func inZone(entries []wire.Entry, zone *time.Location) []wire.Entry {
	out := make([]wire.Entry, len(entries))
	for i, e := range entries {
		e.CreatedAt = e.CreatedAt.In(zone)
		lots := append(e.Lots[:0:0], e.Lots...)
		for j := range lots {
			lots[j].ActiveFrom = lots[j].ActiveFrom.In(zone)
		}
		e.Lots, out[i] = lots, e
	}
	return out
}

// TestResentEntryInAnotherZoneIsADuplicate: the same entries re-sent with
// created_at in another UTC offset (the till's zone changed) are
// duplicates, not conflicts; so are entries stored, before digests were
// canonical, with another offset and re-sent in UTC. Other content is
// still a conflict.
func TestResentEntryInAnotherZoneIsADuplicate(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	msk := time.FixedZone("MSK", 3*3600)
	if res, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[:4]}); err != nil || statuses(res) != "applied,applied,applied,applied" {
		t.Fatalf("first push: %v %v", res, err)
	}
	res, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: inZone(entries[:4], msk)})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "duplicate,duplicate,duplicate,duplicate" {
		t.Fatalf("re-sent in +03:00: %s, want all duplicate", got)
	}
	// An entry stored the old way: its body and digest as sent, in +03:00
	// (stored unfolded: the chain before it is not there yet, so the
	// fallback reads it from the unfolded entries).
	for _, i := range []int{4, 6} {
		e := inZone(entries[i:i+1], msk)[0]
		body, _ := json.Marshal(e)
		sum := sha256.Sum256(body)
		if _, err := s.db.Exec(ctx, `INSERT INTO journal (id, till_id, prev_id, card_code, kind, points, body, digest, folded)
			VALUES ($1, 'S001-T09', $2, $3, $4, $5::numeric, $6::json, $7, false)`,
			e.ID, e.Prev, e.CardCode, string(e.Kind), e.Points.String(), string(body), sum[:]); err != nil {
			t.Fatal(err)
		}
	}
	res, err = s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[4:]})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "duplicate,applied,duplicate" || res.FoldedThrough != entries[6].ID {
		t.Fatalf("old +03:00 entries re-sent in UTC: %s through %s, want duplicate,applied,duplicate through %s", got, res.FoldedThrough, entries[6].ID)
	}
	// Folded now: the same again in UTC and in +03:00 are duplicates.
	for _, es := range [][]wire.Entry{entries[4:], inZone(entries[4:], msk)} {
		res, err = s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: es})
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(res); got != "duplicate,duplicate,duplicate" {
			t.Fatalf("folded old entries re-sent: %s, want all duplicate", got)
		}
	}
	if st := readIngestState(t, s); st.journal != 7 || st.folded != 7 || st.remaining != "57" {
		t.Fatalf("state: %+v, want 7 folded entries, 57 points left", st)
	}
	changed := inZone(entries[6:7], msk)[0]
	changed.CheckID = "another check"
	res, err = s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: []wire.Entry{changed}})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "conflict" {
		t.Fatalf("other content: %s, want conflict", got)
	}
}

// TestImportAndIngestNeverDeadlock: an ERP import writing lots of card 2,
// then card 1 (file order), while a till's batch folds into cards 1 and 2
// (code order). The import's transaction is held open after its first
// lot until the batch has either finished or is waiting on a lock; then
// it goes on. Neither may be aborted by a deadlock: the import succeeds
// and Retries() stays 0.
func TestImportAndIngestNeverDeadlock(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	lot := func(card, id string) *store.Replica {
		return &store.Replica{Version: 1, Lots: []store.ReplicaLot{{ID: id, Card: card, Points: checkout.PointsOf(dec("5")),
			AccruedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}}}
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := importTx(ctx, tx, lot("3300000000002", "erp-2")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[:2]})
		done <- err
	}()
	var ingestErr error
	finished := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !finished; {
		select {
		case ingestErr = <-done:
			finished = true
			continue
		case <-time.After(20 * time.Millisecond):
		}
		var waiting bool
		if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
	}
	_, importErr := importTx(ctx, tx, lot("3300000000001", "erp-1"))
	if importErr == nil {
		importErr = tx.Commit(ctx)
	}
	if !finished {
		ingestErr = <-done
	}
	if importErr != nil || ingestErr != nil || s.Retries() != 0 {
		t.Fatalf("import: %v; ingest: %v; retries %d: want both through, no deadlock", importErr, ingestErr, s.Retries())
	}
	st := readIngestState(t, s)
	if st.lots != 4 || st.remaining != "30" || st.watermark != entries[1].ID {
		t.Fatalf("after both: %+v, want 2 imported and 2 folded lots (30 points), watermark %s", st, entries[1].ID)
	}
}

// TestImportDatabaseErrorIs5xx: an import the database fails (a trigger
// raises on the change log) is a 500 saying nothing was written, and
// nothing is; a refused document stays a 422.
func TestImportDatabaseErrorIs5xx(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	call := erpHTTP(t, s)
	post := func(body string) (int, string) { return call(http.MethodPost, "/v1/erp/import", body) }
	injectFault(t, s, "changes", "AFTER INSERT", "STATEMENT")
	demo, err := json.Marshal(demoReplica(t))
	if err != nil {
		t.Fatal(err)
	}
	good := string(demo)
	code, body := post(good)
	if code != http.StatusInternalServerError || !strings.Contains(body, "nothing written") || !strings.Contains(body, "injected fault") {
		t.Fatalf("import failing in the database: %d %s, want 500 naming the fault", code, body)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM catalog`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("catalog after the failed import: %d rows, %v; want none", n, err)
	}
	if code, body := post(`{"version":1,"cards":[{"code":"1","kind":"nosuch","state":"active"}]}`); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, `unknown card kind`) {
		t.Fatalf("refused document: %d %s, want 422 naming the record", code, body)
	}
	if _, err := s.db.Exec(ctx, `DROP TRIGGER fail_changes ON changes`); err != nil {
		t.Fatal(err)
	}
	if code, body := post(good); code != http.StatusOK {
		t.Fatalf("import after the fault: %d %s", code, body)
	}
}

// TestEntryBeforeTheWatermarkIsRejected: a fresh entry whose id is at or
// before the till's watermark (a replaced till store whose clock is
// behind) can never be folded: it is rejected, naming the way out, and
// not stored; the rest of the batch goes on.
func TestEntryBeforeTheWatermarkIsRejected(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	if res, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[:4]}); err != nil || res.FoldedThrough != entries[3].ID {
		t.Fatalf("first push: %v %v", res, err)
	}
	early := entries[0]
	early.ID = fmt.Sprintf("S001-T09-%026d", 0)
	early.CheckID, early.Prev = early.ID, ""
	early.Lots = []store.LotChange{{LotID: early.ID, Delta: early.Points, Create: true, ActiveFrom: early.CreatedAt}}
	res, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: []wire.Entry{early, entries[4]}})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "rejected,applied" || res.FoldedThrough != entries[4].ID {
		t.Fatalf("entry before the watermark: %s through %s, want rejected,applied through %s", got, res.FoldedThrough, entries[4].ID)
	}
	if e := res.Results[0].Error; !strings.Contains(e, "watermark "+entries[3].ID) || !strings.Contains(e, "enrol the replaced till under a new id") {
		t.Fatalf("rejection %q does not say why", e)
	}
	if st := readIngestState(t, s); st.journal != 5 || st.folded != 5 {
		t.Fatalf("state: %+v, want the 5 entries of the chain stored and folded, not the early one", st)
	}
}

// TestEntryValuesChecked: over HTTP, a till's entries with points of the
// wrong sign for their kind, beyond the bound or the 9 decimal places,
// or with lot changes a till never writes, are rejected one by one, naming the entry and why, and
// kept as rejected (on the chain, not applied; a duplicate when sent
// again), and the good one in the same batch is applied; ERP corrections
// out of bound or finer than the program's scale are 422, and nothing is
// written.
func TestEntryValuesChecked(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	secret, err := s.Enrol(ctx, "S001-T09", "S001")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	call := func(path, body string, auth func(*http.Request)) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+path, strings.NewReader(body))
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	till := func(r *http.Request) { r.SetBasicAuth("S001-T09", secret) }
	erp := func(r *http.Request) { r.Header.Set("Authorization", "Bearer erp-secret") }

	bad := func(i int, f func(e *wire.Entry)) wire.Entry {
		e := entries[0]
		e.ID = fmt.Sprintf("S001-T09-%026d", 100+i)
		// On the chain after the good entry: the refused are kept on it,
		// so the watermark passes them.
		e.CheckID, e.Prev, e.Lots = e.ID, fmt.Sprintf("S001-T09-%026d", 100+i-1), nil
		if i == 1 {
			e.Prev = entries[0].ID
		}
		f(&e)
		return e
	}
	batch := []wire.Entry{
		entries[0],
		bad(1, func(e *wire.Entry) { e.Kind, e.Points = store.KindRedemption, dec("1000") }),
		bad(2, func(e *wire.Entry) { e.Points = dec("-5") }),
		bad(3, func(e *wire.Entry) { e.Points = dec("1e9999") }),
		bad(4, func(e *wire.Entry) { e.Points = dec("0.0000000001") }),
		bad(5, func(e *wire.Entry) {
			e.Kind, e.Points = store.KindReversal, dec("5")
			e.Lots = []store.LotChange{{LotID: "x", Delta: dec("1e50")}, {LotID: "y", Delta: dec("5").Sub(dec("1e50"))}}
		}),
		// An accrual adding to a lot it does not create.
		bad(6, func(e *wire.Entry) {
			e.Points = dec("10")
			e.Lots = []store.LotChange{{LotID: "L-old", Delta: dec("10")}}
		}),
	}
	body, _ := json.Marshal(wire.Batch{TillID: "S001-T09", Entries: batch})
	code, data := call("/v1/till/journal", string(body), till)
	if code != 200 {
		t.Fatalf("push: %d %s", code, data)
	}
	res, err := wire.DecodeBatchResult([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]wire.Result{}
	for _, r := range res.Results {
		got[r.ID] = r
	}
	if r := got[entries[0].ID]; r.Status != wire.Applied {
		t.Fatalf("good entry: %+v", r)
	}
	for i, want := range []string{"", "redemption of +1000 points", "accrual of -5 points", "more than 1000000000 in magnitude",
		"points 0.0000000001: more than 9 decimal places", "lot x delta", "lot L-old: an accrual only creates lots"} {
		if i == 0 {
			continue
		}
		r := got[batch[i].ID]
		if r.Status != wire.Rejected || !strings.Contains(r.Error, want) || !strings.Contains(r.Error, batch[i].ID) && i != 4 {
			t.Errorf("entry %d: %+v, want rejected naming %q", i, r, want)
		}
	}
	// The refused are kept as rejected, none applied: only the good
	// entry's 10 points are on the card.
	var kept int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE rejected <> ''`).Scan(&kept); err != nil || kept != 6 {
		t.Fatalf("%d entries kept as rejected, %v; want 6", kept, err)
	}
	if st := readIngestState(t, s); st.journal != 7 || st.folded != 7 || st.remaining != "10" || st.watermark != batch[6].ID {
		t.Fatalf("state: %+v, want the good entry applied and the 6 others kept", st)
	}
	// Sent again, each is a duplicate: the till acknowledges them.
	if code, data = call("/v1/till/journal", string(body), till); code != 200 || strings.Count(data, `"duplicate"`) != 7 {
		t.Fatalf("the batch again: %d %s, want 7 duplicates", code, data)
	}

	for _, c := range []struct{ points, want string }{
		{"1e50", "more than 1000000000 in magnitude"},
		{"0.001", "program BONUS: points 0.001: finer than the program's 0 decimal places"},
	} {
		code, data := call("/v1/erp/corrections", `{"id":"c-`+c.points+`","card":"3300000000002","points":"`+c.points+`","reason":"test"}`, erp)
		if code != http.StatusUnprocessableEntity || !strings.Contains(data, c.want) || !strings.Contains(data, "3300000000002") {
			t.Errorf("correction of %s: %d %s, want 422 naming %q", c.points, code, data, c.want)
		}
	}
	if code, data := call("/v1/erp/corrections", `{"id":"c-ok","card":"3300000000002","points":"-2","reason":"test"}`, erp); code != 200 {
		t.Fatalf("good correction: %d %s", code, data)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE till_id = 'ERP'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("ERP journal: %d entries, %v; want the good correction only", n, err)
	}
}

// TestReportsAndEnrolRefuseBadInput: bad report parameters are 400 (not
// 500), the accruals report counts only folded entries, and enrolment
// refuses the reserved till id ERP and a store head office does not know.
func TestReportsAndEnrolRefuseBadInput(t *testing.T) {
	s, entries := ingestFixture(t)
	ctx := context.Background()
	call := erpHTTP(t, s)
	for _, c := range []struct{ method, path, body, want string }{
		{"GET", "/v1/erp/reports/expiring?days=0", "", "days 0 outside 1..3650"},
		{"GET", "/v1/erp/journal?cursor=zz", "", `bad cursor`},
		{"POST", "/v1/erp/tills", `{"till_id":"ERP","store_id":"S001"}`, "reserved"},
		{"POST", "/v1/erp/tills", `{"till_id":"erp-1","store_id":"S001"}`, "reserved"},
		{"POST", "/v1/erp/tills", `{"till_id":"S:3","store_id":"S001"}`, "cannot hold ':'"},
		{"POST", "/v1/erp/tills", `{"till_id":"S009-T01","store_id":"S009"}`, "is not in head office's catalog"},
	} {
		if code, data := call(c.method, c.path, c.body); code != http.StatusBadRequest || !strings.Contains(data, c.want) {
			t.Errorf("%s %s %s: %d %s, want 400 naming %q", c.method, c.path, c.body, code, data, c.want)
		}
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM tills WHERE till_id <> 'S001-T09'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("tills enrolled by refused requests: %d, %v", n, err)
	}
	if code, data := call("POST", "/v1/erp/tills", `{"till_id":"S001-T10","store_id":"S001"}`); code != 200 {
		t.Fatalf("good enrolment: %d %s", code, data)
	}

	// The second half of the chain first: stored, not folded, not counted.
	accruals := func() AccrualTotals {
		t.Helper()
		a, err := s.Accruals(ctx, entries[0].CreatedAt.Add(-time.Hour), entries[0].CreatedAt.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[4:]}); err != nil {
		t.Fatal(err)
	}
	if a := accruals(); !a.CustomerAccrued.IsZero() || !a.Redeemed.IsZero() {
		t.Fatalf("accruals with only unfolded entries: %+v, want nothing", a)
	}
	if _, err := s.Ingest(ctx, &wire.Batch{TillID: "S001-T09", Entries: entries[:4]}); err != nil {
		t.Fatal(err)
	}
	if a := accruals(); a.CustomerAccrued.String() != "60" || a.Redeemed.String() != "3" {
		t.Fatalf("accruals once folded: %+v, want 60 accrued and 3 redeemed", a)
	}
}
