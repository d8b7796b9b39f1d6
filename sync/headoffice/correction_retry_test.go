package headoffice

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCorrectionRetriedAfterItsCheckChanged: ERP's answer to a correction
// is lost and its job sends the same request again later, once what the
// correction was checked against has changed: the accrual's expiry has
// passed, the card's program has gone to whole points. Head office holds
// the correction, so the retry answers duplicate, the balance counting it
// once. Answered 422 (refused, nothing written), ERP would send it again
// under another id and the customer get the points twice (found by the QA
// pass). Another correction under the same id is still refused, and a new
// one is still checked: an expiry already past, points finer than the
// program's, are 422.
func TestCorrectionRetriedAfterItsCheckChanged(t *testing.T) {
	now := demoNow
	s := lateFixture(t, &now)
	ctx := context.Background()
	call := erpHTTP(t, s)
	post := func(body string) (int, string) { return call(http.MethodPost, "/v1/erp/corrections", body) }
	setScale := func(scale int) {
		t.Helper()
		if _, err := s.db.Exec(ctx, `UPDATE catalog SET body = jsonb_set(body::jsonb, '{point_rounding,scale}', to_jsonb($1::int))::json
			WHERE section = 'programs'`, scale); err != nil {
			t.Fatal(err)
		}
	}
	const card = "2900000000018"
	expiring := `{"id":"goodwill-77","card":"` + card + `","points":"50","reason":"goodwill","expires_at":"` +
		demoNow.Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
	setScale(2)
	fine := `{"id":"goodwill-78","card":"` + card + `","points":"2.5","reason":"goodwill"}`
	for _, body := range []string{expiring, fine} {
		if code, out := post(body); code != http.StatusOK || strings.Contains(out, "duplicate") {
			t.Fatalf("first send: %d %s", code, out)
		}
	}
	if got := balanceOf(t, s, card); got != "552.5" {
		t.Fatalf("balance %s after the corrections, want 552.5 (500 before)", got)
	}
	now = now.Add(2 * time.Hour) // the lot of goodwill-77 expired
	setScale(0)
	applied := balanceOf(t, s, card)
	for _, body := range []string{expiring, fine} {
		if code, out := post(body); code != http.StatusOK || !strings.Contains(out, `"duplicate":true`) {
			t.Fatalf("retry of a correction head office holds, after its check changed: %d %s; want 200 duplicate", code, out)
		}
	}
	if got := balanceOf(t, s, card); got != applied {
		t.Fatalf("balance %s after the retries, want %s as before them", got, applied)
	}
	for _, c := range []struct{ body, want string }{
		{strings.Replace(expiring, `"50"`, `"60"`, 1), "already used for another correction"},
		{strings.Replace(expiring, "goodwill-77", "goodwill-79", 1), "expires_at must be in the future"},
		{strings.Replace(fine, "goodwill-78", "goodwill-80", 1), "program"},
	} {
		if code, out := post(c.body); code != http.StatusUnprocessableEntity || !strings.Contains(out, c.want) {
			t.Fatalf("%s: %d %s, want 422 %q", c.body, code, out, c.want)
		}
	}
}

// TestCorrectionRacingAnImportOfItsLot: an ERP import inserts a lot named
// as a correction's id while the correction runs (an import does not wait
// for the card's lock). The correction is refused (422, the same answer as
// when the import came first, nothing written), not a 500 blaming head
// office, as it was.
func TestCorrectionRacingAnImportOfItsLot(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	const card = "2900000000018"
	before := balanceOf(t, s, card)
	imp, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Rollback(ctx)
	if _, err := imp.Exec(ctx, `INSERT INTO lots (card, lot_id, points, remaining, accrued_at, active_from)
		VALUES ($1, 'ERP-goodwill-90', 10, 10, now(), now())`, card); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		code, body := call(http.MethodPost, "/v1/erp/corrections", `{"id":"goodwill-90","card":"`+card+`","points":"50","reason":"goodwill"}`)
		done <- answer{code, body}
	}()
	// The correction waits on the import's uncommitted lot.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := s.db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case a := <-done:
			t.Fatalf("the correction answered %d %s before the import committed", a.code, a.body)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the correction never waited on the import's lot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := imp.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.code != http.StatusUnprocessableEntity || !strings.Contains(refusal(a.body), "already has a lot ERP-goodwill-90") {
		t.Fatalf("correction racing an import of its lot: %d %s; want 422 naming the lot", a.code, a.body)
	}
	var n int
	s.db.QueryRow(ctx, `SELECT count(*) FROM journal WHERE id = 'ERP-goodwill-90'`).Scan(&n)
	if got, want := balanceOf(t, s, card), dec(before).Add(dec("10")).String(); n != 0 || got != want {
		t.Fatalf("after the refused correction: %d journal rows, balance %s; want none and %s (the import's 10 only)", n, got, want)
	}
}
