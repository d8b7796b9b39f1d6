package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"tillagent/checkout"
	"tillagent/internal/config"
	"tillagent/internal/store"
)

// BenchmarkSaleAPI is one sale through the whole agent: POST /v1/sales on
// the Unix socket, re-quote, receipt printed by the emulator at full speed
// over a pty, journal committed with the fiscal number. db-bytes/sale is
// what a sale adds to the till's database (document, journal, replay
// key): the disk the history takes that a till keeps. kept-bytes/sale is
// what stays of it once the sales are past sale.keep_days and pruned (the
// agent restarted with its clock moved on): the journal, the replay keys,
// the documents' slim rows. held-bytes/sale is what stays once head office
// holds the journal as well (store.PruneJournal): the replay keys and the
// slim rows.
//
//	go test -run '^$' -bench SaleAPI -benchtime 500x ./cmd/tillagent/
func BenchmarkSaleAPI(b *testing.B) {
	var ahead atomic.Int64 // the printer's clock, moved on with the till's for the prune
	h := newHarnessWith(b, func(c *config.Config) { c.Log.Level = "error" }, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	before := dbBytes(b, h.cfg.Store.Path)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		h.must(201, "POST", "/v1/sales", saleBody(fmt.Sprintf("bench-%d", i), []string{card}, "", "1000.00",
			line(1, "1001", "2", "89.90"), line(2, "1101", "1", "61.10"), line(3, "2001", "3", "45.00")), nil)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sales/s")
	b.ReportMetric(float64(dbBytes(b, h.cfg.Store.Path)-before)/float64(b.N), "db-bytes/sale")
	reportLatency(b, lat)

	h.stop()
	clock := h.clock
	later := time.Duration(h.cfg.Sale.KeepDays+1) * 24 * time.Hour
	h.clock = func() time.Time { return clock().Add(later) }
	ahead.Store(int64(later))
	h.start()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if docs, _ := h.docCounts(); docs["sale_pruned"] == b.N {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("sales not pruned: %v", docs)
		}
	}
	b.ReportMetric(float64(dbBytes(b, h.cfg.Store.Path)-before)/float64(b.N), "kept-bytes/sale")

	// Head office has folded every entry, and its backups all hold them
	// (what a sync would bring: acknowledgements, the watermark, the
	// journal held): the agent drops the journal too, all but the last.
	h.stop()
	entries := holdEverything(b, h.cfg)
	h.start()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var st struct {
			Journal struct {
				Kept struct {
					Pruned int `json:"pruned_entries"`
				}
			}
		}
		h.must(200, "GET", "/v1/status", nil, &st)
		if st.Journal.Kept.Pruned == entries-1 {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("%d journal entries pruned, want %d", st.Journal.Kept.Pruned, entries-1)
		}
	}
	b.ReportMetric(float64(dbBytes(b, h.cfg.Store.Path)-before)/float64(b.N), "held-bytes/sale")
}

// holdEverything does to the stopped agent's store what syncs with head
// office would: every entry acknowledged, the lots they made and the
// replica's watermark imported, the journal held at the last one. It
// returns the entries.
func holdEverything(b *testing.B, cfg config.Config) int {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: cfg.Store.Path, TillID: cfg.Till.TillID})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	es, err := st.Pending(ctx, 1<<30)
	if err != nil || len(es) == 0 {
		b.Fatalf("pending entries %d, %v", len(es), err)
	}
	ids := make([]string, len(es))
	var lots []store.ReplicaLot // the lots the sales made, as head office's feed brings them
	for i, e := range es {
		ids[i] = e.ID
		for _, l := range e.Lots {
			if l.Create {
				from := l.ActiveFrom
				lots = append(lots, store.ReplicaLot{ID: l.LotID, Card: e.CardCode, Points: checkout.PointsOf(l.Delta), AccruedAt: e.CreatedAt, ActiveFrom: &from})
			}
		}
	}
	last := ids[len(ids)-1]
	if err := st.MarkAcked(ctx, ids); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Import(ctx, &store.Replica{Version: store.ReplicaFormatVersion, Lots: lots, FoldedThrough: map[string]string{cfg.Till.TillID: last}}); err != nil {
		b.Fatal(err)
	}
	if err := st.SetJournalHeld(ctx, last); err != nil {
		b.Fatal(err)
	}
	return len(es)
}

// dbBytes is the pages in use in the SQLite database at path, committed
// WAL included: the files' sizes say less (the WAL is reused, free pages
// kept).
func dbBytes(b *testing.B, path string) int64 {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(`SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size`).Scan(&n); err != nil {
		b.Fatalf("pages in use in %s: %v", path, err)
	}
	return n
}

func reportLatency(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkColdStart1M starts the agent binary on the store benchmarks'
// replica of 1,000,000 cards and 5,000,000 lots: time until the API
// answers, and the resident memory after 200 card lookups and quotes.
// Build the replica first (once, ~20 s):
//
//	go test -run '^$' -bench QuoteInput -benchtime 1x ./internal/store/
//	go test -run '^$' -bench ColdStart1M -benchtime 5x ./cmd/tillagent/
func BenchmarkColdStart1M(b *testing.B) {
	db := os.Getenv("TILLAGENT_BENCH_DB")
	if db == "" {
		db = filepath.Join(os.TempDir(), "tillagent-bench-v1.db")
	}
	if _, err := os.Stat(db); err != nil {
		b.Skipf("no benchmark replica at %s: build it with the store benchmarks (see the comment)", db)
	}
	dir := b.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/tillagent")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "api.sock")
	cfgPath := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("till: {till_id: BENCH-T01, store_id: S001}\nstore: {path: %s}\napi: {socket: %s}\nlog: {level: error}\n", db, sock)), 0o600)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	var starts, rss, hwm []float64
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		cmd := exec.Command(filepath.Join(dir, "tillagent"), "-config", cfgPath)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if !waitFor(30*time.Second, func() bool {
			resp, err := client.Get("http://localhost/v1/status")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == 200
		}) {
			cmd.Process.Kill()
			b.Fatal("agent not ready")
		}
		starts = append(starts, float64(time.Since(t0).Microseconds())/1e3)
		for j := 0; j < 200; j++ {
			code := fmt.Sprintf("29%011d", (j*7919+i*104729)%1_000_000)
			resp, err := client.Get("http://localhost/v1/cards/" + code)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("card %s: %v %v", code, resp, err)
			}
			resp.Body.Close()
			body := fmt.Sprintf(`{"check":{"lines":[{"no":1,"product_id":"p%05d","qty":"1","price":"100.00"}]},"cards":["%s"]}`, j, code)
			resp, err = client.Post("http://localhost/v1/quote", "application/json", strings.NewReader(body))
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("quote: %v %v", resp, err)
			}
			resp.Body.Close()
		}
		r, h := procMem(cmd.Process.Pid)
		rss, hwm = append(rss, r), append(hwm, h)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	slices.Sort(starts)
	b.ReportMetric(starts[len(starts)/2], "start-ms")
	b.ReportMetric(slices.Max(rss), "rss-MB")
	b.ReportMetric(slices.Max(hwm), "peak-rss-MB")
}

// procMem reads VmRSS and VmHWM (MB) of a process.
func procMem(pid int) (rss, hwm float64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return
}
