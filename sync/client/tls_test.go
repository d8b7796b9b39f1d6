package client

import (
	"strings"
	"testing"

	"tillagent/internal/testpki"
)

// TestTillCertificateChecked: a till certificate needs its key file, and
// must be for the till it is configured on (head office takes the till id
// from its common name).
func TestTillCertificateChecked(t *testing.T) {
	ca := testpki.NewCA(t, "tills CA")
	pair := ca.Till(t, "S001-T01")
	if _, err := HTTPClient(TLSFiles{CA: ca.File, Cert: pair.CertFile, Key: pair.KeyFile, TillID: "S001-T01"}); err != nil {
		t.Fatalf("the till's own certificate: %v", err)
	}
	for _, c := range []struct {
		f    TLSFiles
		want string
	}{
		{TLSFiles{Cert: pair.CertFile}, "both its file and its key file"},
		{TLSFiles{Cert: pair.CertFile, Key: pair.KeyFile, TillID: "S001-T02"}, `is for till "S001-T01" (its common name), this till is S001-T02`},
		{TLSFiles{Cert: pair.CertFile, Key: ca.File}, "key"},
	} {
		if _, err := HTTPClient(c.f); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.f, err, c.want)
		}
	}
}
