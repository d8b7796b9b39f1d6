package headoffice

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// erpHTTP serves s over a loopback listener for the test and returns a
// caller sending ERP requests (the test servers' token) to it.
func erpHTTP(t *testing.T, s *Server) func(method, path, body string) (int, string) {
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return func(method, path, body string) (int, string) {
		t.Helper()
		code, data := httpCall(t, hs, method, path, []byte(body), "")
		return code, string(data)
	}
}

// injectFault makes writes to table fail ("injected fault") through a
// trigger of the given timing ("BEFORE INSERT") and level (ROW, STATEMENT).
func injectFault(t *testing.T, s *Server, table, timing, level string) {
	t.Helper()
	if _, err := s.db.Exec(context.Background(), `CREATE FUNCTION fail_`+table+`() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
		CREATE TRIGGER fail_`+table+` `+timing+` ON `+table+` FOR EACH `+level+` EXECUTE FUNCTION fail_`+table+`()`); err != nil {
		t.Fatal(err)
	}
}
