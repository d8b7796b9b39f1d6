package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tillagent/driver/fiscal/emulator"
	"tillagent/internal/config"
	"tillagent/internal/store"
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

// The demo's built-in emulator keeps its fiscal memory across restarts: a
// sale interrupted after the FN closed the receipt (simulated by putting
// its document back to pending) is settled as fiscalised on restart, never
// printed again; FDs continue and the shift stays open.
func TestDemoEmulatorKeepsItsFN(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "till.db")
	cfg.Store.DemoReplica = "../../testdata/demo/replica.yaml"
	cfg.API.Socket = filepath.Join(dir, "api.sock")
	cfg.Demo.EmulatorJournal = filepath.Join(dir, "fiscal.json")
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}, clock: testClock(), http: unixClient(cfg.API.Socket)}
	h.start()
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("keep-1", []string{card}, "", "100.00", line(1, "1001", "1", "89.90")), &a)
	h.stop()

	db, err := sql.Open("sqlite", cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE sale_docs SET state = 'pending', fd = NULL, fp = NULL, answer = NULL, done_ms = NULL WHERE idem_key = 'keep-1'`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	h.start()
	defer h.stop()
	var again saleAnswer
	h.must(200, "POST", "/v1/sales", saleBody("keep-1", []string{card}, "", "100.00", line(1, "1001", "1", "89.90")), &again)
	if again.Fiscal.FD != a.Fiscal.FD {
		t.Fatalf("settled with FD %d, the receipt was FD %d", again.Fiscal.FD, a.Fiscal.FD)
	}
	var b saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("keep-2", nil, "", "100.00", line(1, "1001", "1", "89.90")), &b)
	docs, err := emulator.ReadJournal(cfg.Demo.EmulatorJournal)
	if err != nil {
		t.Fatal(err)
	}
	receipts := 0
	for _, d := range docs {
		if d.Kind == "receipt" {
			receipts++
		}
	}
	if b.Fiscal.FD != a.Fiscal.FD+1 || receipts != 2 {
		t.Fatalf("FDs %d then %d, %d receipts in the kept journal", a.Fiscal.FD, b.Fiscal.FD, receipts)
	}
}

// A printer that lost its fiscal memory (replaced or wiped) says a
// receipt the journal holds was never printed; the retry fiscalises it
// again. The agent reports it for a correction receipt and keeps selling.
func TestPrinterWithoutMemoryNeverWedges(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "till.db")
	cfg.Store.DemoReplica = "../../testdata/demo/replica.yaml"
	cfg.API.Socket = filepath.Join(dir, "api.sock")
	h := &harness{t: t, cfg: cfg, logs: &syncBuffer{}, clock: testClock(), http: unixClient(cfg.API.Socket)}
	h.start() // printer.type emulator, no journal: a fresh FN on every start
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	body := saleBody("amn-1", []string{card}, "", "100.00", line(1, "1001", "1", "89.90"))
	h.must(201, "POST", "/v1/sales", body, nil)
	h.stop()
	db, err := sql.Open("sqlite", cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE sale_docs SET state = 'pending', fd = NULL, fp = NULL, answer = NULL, done_ms = NULL WHERE idem_key = 'amn-1'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	h.start()
	defer h.stop()
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.refusal(409, "sale.fiscalised_twice", "POST", "/v1/sales", body)
	h.must(201, "POST", "/v1/sales", saleBody("amn-2", nil, "", "100.00", line(1, "1001", "1", "89.90")), nil)
	if !strings.Contains(h.logs.String(), "fiscalised twice") {
		t.Errorf("no log for the technician:\n%s", h.logs.String())
	}
}

// TestAgentSkipsDemoWhenSyncing: with sync on, store.demo_replica is not
// imported on first start (the replica belongs to head office: a local
// record no feed removes would stay spendable); the agent says so and
// starts with no replica, waiting for its first load.
func TestAgentSkipsDemoWhenSyncing(t *testing.T) {
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(t.TempDir(), "var", "till.db")
	cfg.Store.DemoReplica = "../../testdata/demo/replica.yaml"
	cfg.API.Socket = filepath.Join(filepath.Dir(cfg.Store.Path), "api.sock")
	cfg.Sync.Enabled, cfg.Sync.URL, cfg.Sync.Secret = true, deadHeadOffice(t), "till-secret-for-tests-0123456789"
	cfg.Sync.Interval, cfg.Sync.BackoffMin, cfg.Sync.BackoffMax, cfg.Sync.RequestTimeout = time.Hour, time.Minute, time.Hour, time.Second

	logs := runAgent(t, cfg)
	if strings.Contains(logs, "demo replica imported") || !strings.Contains(logs, "store.demo_replica ignored") ||
		!strings.Contains(logs, "level=WARN") {
		t.Fatalf("a syncing till's first start with demo_replica set:\n%s", logs)
	}
	st, err := store.Open(context.Background(), store.Options{Path: cfg.Store.Path, TillID: cfg.Till.TillID})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if has, err := st.HasReplica(context.Background()); err != nil || has {
		t.Fatalf("store holds a replica = %v (%v) after a syncing first start with demo_replica set", has, err)
	}
}
