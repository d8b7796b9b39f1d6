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

// TestConfigCheckWarnsDemoWithSync: store.demo_replica with sync on is a
// warning (the agent ignores the file), not an error, and says so; with
// sync off there is none.
func TestConfigCheckWarnsDemoWithSync(t *testing.T) {
	dir := t.TempDir()
	demo, err := filepath.Abs("../../testdata/demo/replica.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, sync bool) string {
		p := filepath.Join(dir, name)
		body := "store:\n  demo_replica: " + demo + "\n"
		if sync {
			body += "sync:\n  enabled: true\n  url: http://127.0.0.1:1\n  secret: till-secret-for-tests-0123456789\n"
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out bytes.Buffer
	if err := configCheck(context.Background(), []string{"-config", write("sync.yaml", true)}, &out); err != nil {
		t.Fatalf("demo_replica with sync on: %v", err)
	}
	for _, want := range []string{": ok (", "warning: store.demo_replica (" + demo + ") is ignored", "sync.enabled is on", "head office"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check output %q lacks %q", out.String(), want)
		}
	}
	out.Reset()
	if err := configCheck(context.Background(), []string{"-config", write("demo.yaml", false)}, &out); err != nil || strings.Contains(out.String(), "warning") {
		t.Errorf("demo_replica with sync off: %v, %q", err, out.String())
	}
}
