package headoffice

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"tillagent/sync/pgtest"
)

// TestReadmitFromKeyedSecret: with an enrolment key, a head office that
// lost a till's row (restored from a backup taken before the enrolment)
// admits the till again from its secret alone, over HTTP, and resets its
// feed; a head office holding an older enrolment of the till admits the
// newer secret; every other secret stays refused: one enrolling again
// replaced, a forged HMAC, another till's, another store's, one under
// another key, one whose store head office does not know.
func TestReadmitFromKeyedSecret(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	key := []byte(strings.Repeat("k", 32))
	s, err := Open(ctx, Options{DSN: dsn, ERPToken: "erp-secret", EnrolKey: key, Clock: func() time.Time { return demoNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	feed := func(till, secret string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/till/feed", nil)
		req.SetBasicAuth(till, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	type row struct {
		store  string
		sum    []byte
		at     time.Time
		epoch  int
		exists bool
	}
	read := func(till string) row {
		t.Helper()
		var r row
		err := s.db.QueryRow(ctx, `SELECT store_id, secret_sha256, enrolled_at, feed_epoch FROM tills WHERE till_id = $1`, till).
			Scan(&r.store, &r.sum, &r.at, &r.epoch)
		r.exists = err == nil
		return r
	}
	drop := func(till string) {
		t.Helper()
		if _, err := s.db.Exec(ctx, `DELETE FROM tills WHERE till_id = $1`, till); err != nil {
			t.Fatal(err)
		}
	}

	secret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^e1\.[0-9]+\.[0-9a-f]{32}\.[0-9a-f]{64}\.S001$`).MatchString(secret) {
		t.Fatalf("keyed secret %q", secret)
	}
	if c := feed("S001-T01", secret); c != 200 {
		t.Fatalf("enrolled till: %d", c)
	}

	// The row lost: admitted again, with a reset feed.
	drop("S001-T01")
	if c := feed("S001-T01", secret); c != 200 {
		t.Fatalf("till whose row head office lost: %d, want admitted again", c)
	}
	old := read("S001-T01")
	if !old.exists || old.store != "S001" || old.epoch == 0 {
		t.Fatalf("row after readmission: %+v, want store S001 and a new feed epoch", old)
	}
	if c := feed("S001-T01", secret); c != 200 {
		t.Fatalf("readmitted till's next request: %d", c)
	}

	// Enrolled again: the old secret is refused, even with the row lost
	// meanwhile and taken back by the new one.
	time.Sleep(2 * time.Millisecond) // enrolment times are in ms
	fresh, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if c := feed("S001-T01", secret); c != 401 {
		t.Fatalf("secret replaced by enrolling again: %d, want 401", c)
	}
	drop("S001-T01")
	if c := feed("S001-T01", fresh); c != 200 {
		t.Fatalf("newer secret, row lost: %d", c)
	}
	if c := feed("S001-T01", secret); c != 401 {
		t.Fatalf("older secret after the newer one was admitted: %d, want 401", c)
	}

	// Restored to the older enrolment: the newer secret is admitted, the
	// older one then refused.
	if _, err := s.db.Exec(ctx, `UPDATE tills SET secret_sha256 = $2, enrolled_at = $3, feed_epoch = 0 WHERE till_id = $1`,
		"S001-T01", old.sum, old.at); err != nil {
		t.Fatal(err)
	}
	if c := feed("S001-T01", fresh); c != 200 {
		t.Fatalf("newer secret over an older enrolment: %d", c)
	}
	if r := read("S001-T01"); r.epoch == 0 || !r.at.After(old.at) {
		t.Fatalf("row after admitting the newer secret: %+v, want its enrolment time and a new feed epoch", r)
	}
	if c := feed("S001-T01", secret); c != 401 {
		t.Fatalf("older secret after the restored row was replaced: %d, want 401", c)
	}

	// Forgeries and strangers.
	drop("S001-T01")
	forged := []byte(fresh)
	i := strings.LastIndex(fresh, ".") - 1
	forged[i] ^= 1
	other, err := s.Enrol(ctx, "S001-T02", "S001")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := Open(ctx, Options{DSN: dsn, EnrolKey: []byte(strings.Repeat("x", 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer otherKey.Close()
	foreign, err := otherKey.Enrol(ctx, "S001-T03", "S001")
	if err != nil {
		t.Fatal(err)
	}
	drop("S001-T03")
	for name, c := range map[string]struct{ till, secret string }{
		"forged HMAC":    {"S001-T01", string(forged)},
		"another till's": {"S001-T01", other},
		"another store":  {"S001-T01", strings.TrimSuffix(fresh, "S001") + "S002"},
		"another key":    {"S001-T03", foreign},
		"no key format":  {"S001-T01", strings.Repeat("ab", 32)},
	} {
		if code := feed(c.till, c.secret); code != 401 {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	if r := read("S001-T01"); r.exists {
		t.Fatalf("a refused secret wrote a row: %+v", r)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM catalog WHERE section = 'stores' AND id = 'S001'`); err != nil {
		t.Fatal(err)
	}
	if c := feed("S001-T01", fresh); c != 401 {
		t.Errorf("store head office does not know: %d, want 401", c)
	}
}

// TestUnkeyedSecretsNotReadmitted: without an enrolment key secrets are
// 32 random bytes, as before, and a till whose row is lost is refused.
func TestUnkeyedSecretsNotReadmitted(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s, err := Open(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(secret) {
		t.Fatalf("unkeyed secret %q", secret)
	}
	if _, err := s.authTill(ctx, "S001-T01", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM tills`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.authTill(ctx, "S001-T01", secret); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "not enrolled here") {
		t.Fatalf("lost row without a key: %v, want ErrUnauthorized saying the till is not enrolled", err)
	}
	if _, err := s.Enrol(ctx, "S001-T01", "S001"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.authTill(ctx, "S001-T01", secret); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "enrolled again since") {
		t.Fatalf("old secret after enrolling again: %v, want ErrUnauthorized saying so", err)
	}
	// A secret signed with a key this head office was started without.
	keyed, err := Open(ctx, Options{DSN: dsn, EnrolKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer keyed.Close()
	signed, err := keyed.Enrol(ctx, "S001-T02", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM tills WHERE till_id = 'S001-T02'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.authTill(ctx, "S001-T02", signed); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "head office has none") {
		t.Fatalf("keyed secret, no key: %v, want ErrUnauthorized naming the missing key", err)
	}
}
