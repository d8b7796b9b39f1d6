package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSyncSection(t *testing.T) {
	c, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Sync != DefaultSync() {
		t.Errorf("config.example.yaml sync = %+v, want the defaults %+v", c.Sync, DefaultSync())
	}
	p := write(t, "sync:\n  enabled: true\n  url: ftp://ho\n  batch_size: 0\n")
	_, err = Load(p)
	for _, key := range []string{"sync.url", "sync.secret", "sync.batch_size"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("bad sync section: %v; want %s named", err, key)
		}
	}
	if err != nil && strings.Contains(err.Error(), "ftp://ho") == false {
		t.Errorf("error does not show the bad url: %v", err)
	}
	p = write(t, "sync:\n  enabled: true\n  url: https://ho.example:8443\n")
	t.Setenv("TILLAGENT_SYNC_SECRET", "0123456789abcdef0123")
	t.Setenv("TILLAGENT_SYNC_INTERVAL", "5s")
	c, err = Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if sec, _ := c.Sync.SecretValue(); sec != "0123456789abcdef0123" || c.Sync.Interval != 5*time.Second {
		t.Errorf("env not applied to sync: %+v", c.Sync)
	}
}

// TestSyncTillCertificate: a till certificate stands for the secret;
// its file and key file go together and must exist.
func TestSyncTillCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "till.pem"), filepath.Join(dir, "till-key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("PEM"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(write(t, "sync:\n  enabled: true\n  url: https://ho.example:8443\n  cert_file: "+cert+"\n  key_file: "+key+"\n"))
	if err != nil {
		t.Fatalf("a till certificate and no secret: %v", err)
	}
	if c.Sync.CertFile != cert || c.Sync.KeyFile != key {
		t.Errorf("sync = %+v", c.Sync)
	}
	for _, bad := range []struct{ yaml, key string }{
		{"  cert_file: " + cert + "\n", "sync.cert_file"},
		{"  cert_file: " + cert + "\n  key_file: " + filepath.Join(dir, "none.pem") + "\n", "sync.key_file"},
		{"", "sync.secret"},
	} {
		_, err := Load(write(t, "sync:\n  enabled: true\n  url: https://ho.example:8443\n"+bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("sync with\n%s: %v; want %s named", bad.yaml, err, bad.key)
		}
	}
	// Over http:// the certificate is never presented: with no secret the
	// till sent no credentials and every sync was a 401 pointing at the
	// enrolment (found by a QA pass); with one, the certificate is not
	// what identifies the till, as configured.
	for _, secret := range []string{"", "  secret: 0123456789abcdef0123\n"} {
		_, err := Load(write(t, "sync:\n  enabled: true\n  url: http://ho.example:8440\n  cert_file: "+cert+"\n  key_file: "+key+"\n"+secret))
		if err == nil || !strings.Contains(err.Error(), "sync.cert_file") || !strings.Contains(err.Error(), "use https://") {
			t.Errorf("a till certificate with sync.url http:// (secret %q): %v; want sync.cert_file refused, naming https://", secret, err)
		}
	}
}
