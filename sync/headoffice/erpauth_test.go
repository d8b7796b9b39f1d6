package headoffice

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"tillagent/sync/pgtest"
)

// TestERPAuthRefusalsSayWhy: an ERP request refused 401 says which of its
// causes it was — no header, another scheme, a wrong token, or a head
// office started without a token — and head office logs each with the
// route and the caller; the token itself is never logged. Before, every
// cause had the same answer and none was logged.
func TestERPAuthRefusalsSayWhy(t *testing.T) {
	var log syncBuffer
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), ERPToken: "erp-secret", Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	call := erpCall(t, s)
	for _, c := range []struct{ name, auth, answer, logged string }{
		{"no header", "", "ERP token required (Authorization: Bearer TOKEN)", "no Authorization header"},
		{"basic", "Basic ZXJwOmVycC1zZWNyZXQ=", "not another scheme", `Authorization scheme \"Basic\", not Bearer`},
		{"wrong token", "Bearer old-secret", "wrong ERP token", "wrong ERP token"},
	} {
		code, body, _ := call(http.MethodGet, "/v1/erp/reports/overdrafts", "", c.auth, "")
		if code != http.StatusUnauthorized || !strings.Contains(refusal(body), c.answer) {
			t.Errorf("%s: %d %s, want 401 saying %q", c.name, code, body, c.answer)
		}
		if !strings.Contains(log.String(), `why="`+c.logged) {
			t.Errorf("%s: head office's log does not say %q:\n%s", c.name, c.logged, log.String())
		}
	}
	if code, body, _ := call(http.MethodGet, "/v1/erp/reports/overdrafts", "", "bearer erp-secret", ""); code != http.StatusOK {
		t.Errorf("the right token, scheme in lower case: %d %s", code, body)
	}
	if l := log.String(); !strings.Contains(l, "path=/v1/erp/reports/overdrafts") || !strings.Contains(l, "remote=127.0.0.1:") ||
		strings.Contains(l, "old-secret") || strings.Contains(l, "ZXJw") {
		t.Errorf("the log names the route and the caller, never the token:\n%s", l)
	}

	var quiet syncBuffer
	off, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), Logger: slog.New(slog.NewTextHandler(&quiet, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	code, body, _ := erpCall(t, off)(http.MethodGet, "/v1/erp/reports/overdrafts", "", "Bearer erp-secret", "")
	if code != http.StatusUnauthorized || !strings.Contains(refusal(body), "-erp-token-file") {
		t.Errorf("head office without a token: %d %s, want 401 saying the ERP API is off", code, body)
	}
	if !strings.Contains(quiet.String(), "no ERP token is set at head office") {
		t.Errorf("head office without a token does not log why:\n%s", quiet.String())
	}
}
