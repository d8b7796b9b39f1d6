package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tillagent/internal/config"
)

// syncBuffer lets the test read the log while the agent writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runAgent starts the real wiring on cfg and stops it once it is ready.
func runAgent(t *testing.T, cfg config.Config) string {
	t.Helper()
	var logs syncBuffer
	m := &Main{Config: &cfg, LogOutput: &logs, Ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready:
	case err := <-done:
		cancel()
		t.Fatalf("agent stopped before ready: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("agent not ready\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	return logs.String()
}

func TestAgentImportsDemoOnceAndStops(t *testing.T) {
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(t.TempDir(), "var", "till.db")
	cfg.Store.DemoReplica = "../../testdata/demo/replica.yaml"
	cfg.API.Socket = filepath.Join(filepath.Dir(cfg.Store.Path), "api.sock")

	logs := runAgent(t, cfg)
	if !strings.Contains(logs, "demo replica imported") || !strings.Contains(logs, "msg=ready") {
		t.Fatalf("first start should import the demo:\n%s", logs)
	}
	if _, err := os.Stat(cfg.Store.Path); err != nil {
		t.Fatal(err)
	}
	logs = runAgent(t, cfg)
	if strings.Contains(logs, "demo replica imported") {
		t.Errorf("second start imported the demo again:\n%s", logs)
	}
}

func TestAgentRefusesBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("printer:\n  baud: 12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Main{ConfigPath: p, LogOutput: &bytes.Buffer{}}
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "printer.baud") || !strings.Contains(err.Error(), p) {
		t.Fatalf("want an error naming printer.baud and %s, got %v", p, err)
	}
}

// A second agent on the same store refuses to start, before it touches
// the printer or settles anything of the first one's.
func TestSecondAgentRefused(t *testing.T) {
	h := newHarness(t, nil)
	cfg := h.cfg
	cfg.API.Socket = filepath.Join(t.TempDir(), "second.sock")
	m := &Main{Config: &cfg, LogOutput: &bytes.Buffer{}}
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "in use by another tillagent") {
		t.Fatalf("second agent: %v", err)
	}
}
