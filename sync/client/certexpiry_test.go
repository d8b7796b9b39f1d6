package client

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"tillagent/internal/testpki"
)

// TestCertificateExpiryKeyFirstInOneFile: the till's certificate and key
// in one PEM file, key first (sync.cert_file and sync.key_file naming the
// same file, as many provisioning tools write it). HTTPClient takes it
// (tls.LoadX509KeyPair skips the blocks that are not CERTIFICATE), and so
// does CertificateExpiry, which feeds the expiry gauge and the start-up
// warning.
func TestCertificateExpiryKeyFirstInOneFile(t *testing.T) {
	ca := testpki.NewCA(t, "tills CA")
	pair := ca.Till(t, "S001-T01")
	cert, err := os.ReadFile(pair.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(t.TempDir(), "till.pem")
	if err := os.WriteFile(both, append(key, cert...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := HTTPClient(TLSFiles{CA: ca.File, Cert: both, Key: both, TillID: "S001-T01"}); err != nil {
		t.Fatalf("HTTPClient with key and certificate in one file: %v", err)
	}
	at, err := CertificateExpiry(both)
	if err != nil {
		t.Fatalf("CertificateExpiry of the file HTTPClient uses: %v", err)
	}
	if d := time.Until(at); d <= 0 || d > 2*time.Hour {
		t.Errorf("expiry %s, want within the hour testpki gives", at)
	}
}
