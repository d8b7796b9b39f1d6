package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/driver/fiscal/emulator"
	"tillagent/internal/store"
)

// TestCrashKill9 kills the agent process with SIGKILL at random points of
// sales, restarts it, and checks after all kills that every acknowledged
// sale is journaled once with its fiscal number, no receipt was fiscalised
// twice or without a journal, and balances equal the journal. The printer
// is the emulator in its own process (`tillctl emulate printer`), so it
// keeps its fiscal memory across the agent's deaths, as a real one does.
//
// Kills: 100 by default; TILLAGENT_CRASH_KILLS=1000 for a long run.
func TestCrashKill9(t *testing.T) {
	kills := 100
	if v := os.Getenv("TILLAGENT_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TILLAGENT_CRASH_KILLS=%q", v)
		}
		kills = n
	}
	if testing.Short() {
		kills = 10
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/tillagent", "./cmd/tillctl")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	journalPath := filepath.Join(dir, "fiscal.json")
	link := filepath.Join(dir, "ttyFISCAL")
	emu := exec.Command(filepath.Join(dir, "tillctl"), "emulate", "printer", "-throttle=false", "-journal", journalPath, "-link", link)
	emuLog := &syncBuffer{}
	emu.Stdout, emu.Stderr = emuLog, emuLog
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Process.Signal(syscall.SIGTERM); emu.Wait() })
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(link); return err == nil }) {
		t.Fatalf("emulator did not start:\n%s", emuLog.String())
	}

	cfgPath := filepath.Join(dir, "agent.yaml")
	sock := filepath.Join(dir, "api.sock")
	dbPath := filepath.Join(dir, "till.db")
	replica, _ := filepath.Abs("testdata/crash.yaml")
	cfg := fmt.Sprintf(`store: {path: %s, demo_replica: %s}
api: {socket: %s}
printer: {type: shtrih, port: %s, answer_timeout: 2s}
log: {level: info, format: json}
`, dbPath, replica, sock, link)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
	agentLog := &syncBuffer{}
	start := func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(dir, "tillagent"), "-config", cfgPath)
		cmd.Stdout, cmd.Stderr = agentLog, agentLog
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := waitFor(30*time.Second, func() bool {
			resp, err := client.Get("http://localhost/v1/status")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		if !ready {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("agent not ready:\n%s", tail(agentLog.String(), 4000))
		}
		return cmd
	}

	rng := rand.New(rand.NewPCG(7, uint64(kills)))      // the seller's
	killRng := rand.New(rand.NewPCG(11, uint64(kills))) // the killer's
	cards := []string{"2900000000018", "2900000000025"}
	bodies := map[string][]byte{}   // key → request body
	acked := map[string]ackedSale{} // key → answer
	var inflight []string           // keys sent but not answered
	n := 0
	// sell sends sales until the agent dies or stop closes; unanswered keys
	// stay in inflight. With more false it only finishes those.
	sell := func(stop <-chan struct{}, more bool) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var key string
			if len(inflight) > 0 {
				key = inflight[0] // a real UI retries the same key after a timeout
			} else if !more {
				return
			} else {
				n++
				key = fmt.Sprintf("crash-%d", n)
				body, _ := json.Marshal(map[string]any{
					"idempotency_key": key,
					"cards":           []string{cards[rng.IntN(2)]},
					"redeem":          strconv.Itoa(rng.IntN(40)),
					"payments":        map[string]any{"cash": "1000.00"},
					"check": map[string]any{"lines": []any{
						map[string]any{"no": 1, "product_id": "1001", "qty": "1", "price": "89.00"},
						map[string]any{"no": 2, "product_id": "1101", "qty": strconv.Itoa(1 + rng.IntN(3)), "price": "61.00"},
					}},
				})
				bodies[key] = body
				inflight = append(inflight, key)
			}
			resp, err := client.Post("http://localhost/v1/sales", "application/json", bytes.NewReader(bodies[key]))
			if err != nil {
				return // the agent died under us
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return
			}
			switch {
			case resp.StatusCode == 200 || resp.StatusCode == 201:
				var a ackedSale
				if err := json.Unmarshal(b, &a); err != nil {
					t.Errorf("sale %s: answer %s: %v", key, b, err)
					return
				}
				if prev, ok := acked[key]; ok && (prev.SaleID != a.SaleID || prev.Fiscal.FD != a.Fiscal.FD) {
					t.Errorf("sale %s answered twice differently: %+v then %+v", key, prev, a)
				}
				acked[key] = a
				inflight = inflight[1:]
			case resp.StatusCode == 503:
				time.Sleep(20 * time.Millisecond) // unsettled or printer busy: retry the same key
			default:
				t.Errorf("sale %s: status %d: %s", key, resp.StatusCode, b)
				return
			}
		}
	}

	for i := 0; i < kills && !t.Failed(); i++ {
		cmd := start()
		if i == 0 {
			resp, err := client.Post("http://localhost/v1/shift/open", "application/json", strings.NewReader(`{"cashier":"Тест"}`))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("open shift: %v %v", resp, err)
			}
			resp.Body.Close()
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { sell(stop, true); close(done) }()
		time.Sleep(time.Duration(killRng.IntN(80)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		close(stop)
		<-done
	}
	// A last start settles what the last kill left; finish the open keys.
	cmd := start()
	stop := make(chan struct{})
	timer := time.AfterFunc(20*time.Second, func() { close(stop) })
	sell(stop, false)
	timer.Stop()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if len(inflight) > 0 {
		t.Errorf("keys still unanswered after the last start: %v", inflight)
	}
	if t.Failed() {
		t.Logf("agent log:\n%s", tail(agentLog.String(), 4000))
		return
	}
	if len(acked) == 0 {
		t.Fatal("no sale was acknowledged: the harness tested nothing")
	}
	checkCrashInvariants(t, dbPath, journalPath, acked, cards)
	logs := agentLog.String()
	t.Logf("%d kills, %d sales acknowledged; settled on restart: %d fiscalised, %d dropped, %d never printed",
		kills, len(acked), strings.Count(logs, "settled: fiscalised"), strings.Count(logs, "settled: not fiscalised"), strings.Count(logs, "settled: never printed"))
}

type ackedSale struct {
	SaleID string `json:"sale_id"`
	Fiscal struct {
		FD    uint32 `json:"fd"`
		Total string `json:"total"`
	} `json:"fiscal"`
	Journal []string `json:"journal"`
}

func checkCrashInvariants(t *testing.T, dbPath, journalPath string, acked map[string]ackedSale, cards []string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: dbPath, TillID: "S001-T01"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	docs, err := emulator.ReadJournal(journalPath)
	if err != nil {
		t.Fatal(err)
	}
	// Each fiscalised receipt names its till document; none twice.
	fiscalised := map[string]emulator.Doc{}
	for _, d := range docs {
		if d.Kind != "receipt" {
			continue
		}
		id := ""
		for _, l := range d.Text {
			if v, ok := strings.CutPrefix(l, "Чек кассы "); ok {
				id = v
			}
		}
		if id == "" {
			t.Fatalf("receipt FD %d names no till document: %q", d.FD, d.Text)
		}
		if prev, dup := fiscalised[id]; dup {
			t.Fatalf("document %s fiscalised twice: FD %d and FD %d", id, prev.FD, d.FD)
		}
		fiscalised[id] = d
	}
	if p, err := st.PendingDocs(ctx); err != nil || len(p) != 0 {
		t.Fatalf("pending documents after settling: %v %v", p, err)
	}
	counts, _ := st.DocCounts(ctx)
	if counts["sale_done"] != len(fiscalised) {
		t.Fatalf("till has %d finished sales, the printer fiscalised %d", counts["sale_done"], len(fiscalised))
	}
	for id, d := range fiscalised {
		doc, err := st.DocByID(ctx, id)
		if err != nil || doc.State != store.DocDone || doc.FD != d.FD {
			t.Fatalf("fiscalised %s (FD %d): till has %+v, %v", id, d.FD, doc, err)
		}
	}
	for key, a := range acked {
		d, ok := fiscalised[a.SaleID]
		if !ok || d.FD != a.Fiscal.FD {
			t.Fatalf("acknowledged sale %s (%s, FD %d) not fiscalised with that FD", key, a.SaleID, a.Fiscal.FD)
		}
		es, err := st.EntriesOfCheck(ctx, a.SaleID)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != len(a.Journal) {
			t.Fatalf("sale %s: %d journal entries, the answer named %d", a.SaleID, len(es), len(a.Journal))
		}
	}
	// Every journal entry belongs to a fiscalised sale, once per card and kind.
	entries, err := st.Pending(ctx, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sum := map[string]decimal.Decimal{}
	for _, e := range entries {
		d, ok := fiscalised[e.CheckID]
		if !ok {
			t.Fatalf("journal entry %s for %s, which was never fiscalised", e.ID, e.CheckID)
		}
		if e.FD != d.FD || e.FP != d.FP {
			t.Fatalf("journal entry %s carries FD %d FP %d, its receipt is FD %d FP %d", e.ID, e.FD, e.FP, d.FD, d.FP)
		}
		k := e.CheckID + "/" + e.CardCode + "/" + string(e.Kind)
		if seen[k] {
			t.Fatalf("journal has %s twice", k)
		}
		seen[k] = true
		sum[e.CardCode] = sum[e.CardCode].Add(e.Points)
	}
	// Balances: the replica's 100 000 points plus the journal.
	for _, c := range cards {
		b, err := st.Spendable(ctx, c, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := decimal.NewFromInt(100000).Add(sum[c])
		if !b.Total.Decimal().Equal(want) || !b.Spendable.Decimal().Equal(want) {
			t.Fatalf("card %s: balance %s spendable %s, journal says %s", c, b.Total, b.Spendable, want)
		}
	}
}

func waitFor(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
