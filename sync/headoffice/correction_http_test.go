package headoffice

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestCorrectionDatabaseErrorIs5xx: a correction the database fails (a
// trigger raises on the journal, as a lost connection or a full disk
// would fail it) is a 500 saying nothing was written, and nothing is;
// corrections refused for their values (an unknown card, zero points, no
// reason, an id used for another correction) stay 422 naming the
// correction; once the fault is gone the same correction goes through.
func TestCorrectionDatabaseErrorIs5xx(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	call := erpHTTP(t, s)
	post := func(body string) (int, string) { return call(http.MethodPost, "/v1/erp/corrections", body) }
	injectFault(t, s, "journal", "BEFORE INSERT", "ROW")
	good := `{"id":"fix-1","card":"2900000000018","points":"5","reason":"support"}`
	code, body := post(good)
	if code != http.StatusInternalServerError || !strings.Contains(body, "nothing written") ||
		!strings.Contains(body, "injected fault") || !strings.Contains(body, "fix-1") {
		t.Fatalf("correction failing in the database: %d %s, want 500 naming the correction and the fault", code, body)
	}
	before := balanceOf(t, s, "2900000000018")
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM journal`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("journal after the failed correction: %d rows, %v; want none", n, err)
	}
	for _, c := range []struct{ body, want string }{
		{`{"id":"u","card":"9999","points":"5","reason":"x"}`, "unknown card 9999"},
		{`{"id":"z","card":"2900000000018","points":"0","reason":"x"}`, "zero points"},
		{`{"id":"r","card":"2900000000018","points":"5","reason":" "}`, "a reason is required"},
	} {
		if code, body := post(c.body); code != http.StatusUnprocessableEntity || !strings.Contains(body, c.want) {
			t.Errorf("refused correction %s: %d %s, want 422 naming %q", c.body, code, body, c.want)
		}
	}
	if _, err := s.db.Exec(ctx, `DROP TRIGGER fail_journal ON journal`); err != nil {
		t.Fatal(err)
	}
	if code, body := post(good); code != http.StatusOK || !strings.Contains(body, `"entry_id":"ERP-fix-1"`) {
		t.Fatalf("correction after the fault: %d %s", code, body)
	}
	if code, body := post(`{"id":"fix-1","card":"2900000000018","points":"6","reason":"support"}`); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, "already used for another correction") {
		t.Errorf("id reused for another correction: %d %s, want 422", code, body)
	}
	if after := balanceOf(t, s, "2900000000018"); after == before {
		t.Errorf("card balance %s unchanged by the correction", after)
	}
}
