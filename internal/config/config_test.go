package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The example at the repository root must always load and equal the defaults,
// so that it cannot rot as keys are added.
func TestExampleLoads(t *testing.T) {
	c, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Till != d.Till || c.Store != d.Store || c.Log != d.Log || c.Printer != d.Printer {
		t.Errorf("config.example.yaml differs from Default():\n got %+v\nwant %+v", c, d)
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvOverride(t *testing.T) {
	p := write(t, "store:\n  path: /tmp/a.db\n")
	t.Setenv("TILLAGENT_STORE_PATH", "/tmp/b.db")
	t.Setenv("TILLAGENT_STORE_BUSY_TIMEOUT", "2s")
	t.Setenv("TILLAGENT_TILL_TILL_ID", "S9-T9")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.Path != "/tmp/b.db" || c.Store.BusyTimeout != 2*time.Second || c.Till.TillID != "S9-T9" {
		t.Errorf("env not applied: %+v %+v", c.Store, c.Till)
	}
}

func TestErrorsNameKeyAndFile(t *testing.T) {
	cases := []struct {
		name, body, wantKey string
	}{
		{"bad level", "log:\n  level: loud\n", "log.level"},
		{"bad zone", "till:\n  timezone: Mars/Olympus\n", "till.timezone"},
		{"bad baud", "printer:\n  baud: 1234\n", "printer.baud"},
		{"shtrih needs port", "printer:\n  type: shtrih\n", "printer.port"},
		{"scanner type", "scanners:\n  - name: a\n    type: usb\n", "scanners[0].type"},
		{"serial framing", "scanners:\n  - name: a\n    type: serial\n    port: /dev/x\n    framing: pipe\n", "scanners[0].framing"},
		{"busy timeout", "store:\n  busy_timeout: 1ms\n", "store.busy_timeout"},
		{"till id with a space", "till:\n  till_id: S001 T01\n", "till.till_id"},
		{"store id with a comma", "till:\n  store_id: S001,S002\n", "till.store_id"},
		{"empty till id", "till:\n  till_id: \"\"\n", "till.till_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, tc.body)
			_, err := Load(p)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want FieldError, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantKey) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q should name key %s and file %s", err, tc.wantKey, p)
			}
		})
	}
}

func TestUnknownKeyAndCorruptFile(t *testing.T) {
	if _, err := Load(write(t, "stroe:\n  path: x\n")); err == nil || !strings.Contains(err.Error(), "stroe") {
		t.Errorf("unknown key: got %v", err)
	}
	if _, err := Load(write(t, "till: [unclosed\n")); err == nil || !strings.Contains(err.Error(), "parse yaml") {
		t.Errorf("corrupt yaml: got %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestEnvErrorNamesTheVariable(t *testing.T) {
	p := write(t, "log:\n  level: info\n")
	t.Setenv("TILLAGENT_LOG_LEVEL", "loud")
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "environment TILLAGENT_LOG_LEVEL") || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("error should name the variable: %v", err)
	}
}
