package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyncPageSize: sync.page_size defaults to 5000 (head office's own
// page), is set from the file or TILLAGENT_SYNC_PAGE_SIZE, and outside
// 10…20000 is refused naming the key and where the value came from.
func TestSyncPageSize(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Sync.PageSize != 5000 {
		t.Fatalf("default sync.page_size %d, want 5000", c.Sync.PageSize)
	}
	c, err = Load(write(t, "sync:\n  page_size: 500\n"))
	if err != nil || c.Sync.PageSize != 500 {
		t.Fatalf("page_size from the file: %d, %v", c.Sync.PageSize, err)
	}
	t.Setenv("TILLAGENT_SYNC_PAGE_SIZE", "250")
	if c, err = Load(write(t, "sync:\n  page_size: 500\n")); err != nil || c.Sync.PageSize != 250 {
		t.Fatalf("page_size from the environment: %d, %v", c.Sync.PageSize, err)
	}
	for _, v := range []string{"9", "20001"} {
		t.Setenv("TILLAGENT_SYNC_PAGE_SIZE", v)
		_, err := Load("")
		if err == nil || !strings.Contains(err.Error(), "sync.page_size = "+v) || !strings.Contains(err.Error(), "TILLAGENT_SYNC_PAGE_SIZE") {
			t.Errorf("page_size %s: %v, want refused naming the key and the variable", v, err)
		}
	}
}

// TestSyncEmptySecretFile: with sync on, a secret file that is empty (or
// only a line end) is refused at load, naming the key and the file, as a
// missing one is; one with the secret loads.
func TestSyncEmptySecretFile(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{"": "is empty", "\r\n": "is empty", "0123456789abcdef0123\n": ""} {
		f := filepath.Join(dir, "secret")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(write(t, "sync:\n  enabled: true\n  url: http://ho:8440\n  secret_file: "+f+"\n"))
		switch {
		case want == "" && err != nil:
			t.Errorf("secret file %q: %v", body, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), "sync.secret_file = "+f) || !strings.Contains(err.Error(), want)):
			t.Errorf("secret file %q: %v, want refused (%s)", body, err, want)
		}
	}
	_, err := Load(write(t, "sync:\n  enabled: true\n  url: http://ho:8440\n  secret_file: "+filepath.Join(dir, "none")+"\n"))
	if err == nil || !strings.Contains(err.Error(), "sync.secret_file") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing secret file: %v", err)
	}
}
