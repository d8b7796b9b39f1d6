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
