package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tillagent/internal/config"
)

// TestConfigCheckCommand: the example configuration passes and says what it
// loaded; a bad value fails with the key and the file named; stray
// arguments are a usage error.
func TestConfigCheckCommand(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := configCheck(ctx, []string{"-config", "../../config.example.yaml"}, &out); err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if want := "../../config.example.yaml: ok (till S001-T01 of store S001, store var/till.db, printer emulator, "; !strings.HasPrefix(out.String(), want) {
		t.Fatalf("output %q, want prefix %q", out.String(), want)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("till:\n  till_id: \"S001 T01\"\nstore:\n  busy_timeout: 1ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := configCheck(ctx, []string{"-config", bad}, &out)
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("bad config: err = %v, want a *config.FieldError", err)
	}
	for _, want := range []string{bad, "till.till_id", "store.busy_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if out.Len() != 0 {
		t.Errorf("bad config printed %q", out.String())
	}
	if err := configCheck(ctx, []string{"-config", "../../config.example.yaml", "extra"}, &out); !errors.Is(err, errUsage) {
		t.Errorf("stray argument: err = %v, want usage", err)
	}
}
