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
	kills := crashKills(t, 100)
	r := newCrashRig(t, kills, "")
	killRng := rand.New(rand.NewPCG(11, uint64(kills))) // the killer's
	for i := 0; i < kills && !t.Failed(); i++ {
		cmd := r.start()
		if i == 0 {
			r.openShift()
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { r.sell(stop, true); close(done) }()
		time.Sleep(time.Duration(killRng.IntN(80)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		close(stop)
		<-done
	}
	r.finish(nil)
	if t.Failed() {
		return
	}
	checkCrashInvariants(t, r.dbPath, r.journalPath, r.acked, r.cards)
	logs := r.agentLog.String()
	t.Logf("%d kills, %d sales acknowledged; settled on restart: %d fiscalised, %d dropped, %d never printed",
		kills, len(r.acked), strings.Count(logs, "settled: fiscalised"), strings.Count(logs, "settled: not fiscalised"), strings.Count(logs, "settled: never printed"))
}

// crashKills is how many kills a kill -9 test makes: def, 10 under -short,
// TILLAGENT_CRASH_KILLS when set.
func crashKills(t *testing.T, def int) int {
	if v := os.Getenv("TILLAGENT_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TILLAGENT_CRASH_KILLS=%q", v)
		}
		return n
	}
	if testing.Short() {
		return 10
	}
	return def
}

// crashRig runs the agent and the printer emulator as processes of their
// own, and sells through the agent's socket as a till UI does: a sale not
// answered is sent again with the same key after a restart.
type crashRig struct {
	t                                         *testing.T
	dir, cfgPath, dbPath, journalPath, socket string
	client                                    *http.Client
	agentLog                                  *syncBuffer

	rng      *rand.Rand // the seller's
	cards    []string
	bodies   map[string][]byte    // key → request body
	acked    map[string]ackedSale // key → answer
	inflight []string             // keys sent but not answered
	n        int
}

// newCrashRig builds the commands, starts the emulator and writes the
// agent's config; extra is YAML added to it.
func newCrashRig(t *testing.T, seed int, extra string) *crashRig {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/tillagent", "./cmd/tillctl", "./cmd/headoffice")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	r := &crashRig{t: t, dir: dir, journalPath: filepath.Join(dir, "fiscal.json"), dbPath: filepath.Join(dir, "till.db"),
		cfgPath: filepath.Join(dir, "agent.yaml"), socket: filepath.Join(dir, "api.sock"), agentLog: &syncBuffer{},
		rng: rand.New(rand.NewPCG(7, uint64(seed))), cards: []string{"2900000000018", "2900000000025"},
		bodies: map[string][]byte{}, acked: map[string]ackedSale{}}
	link := filepath.Join(dir, "ttyFISCAL")
	emu := exec.Command(filepath.Join(dir, "tillctl"), "emulate", "printer", "-throttle=false", "-journal", r.journalPath, "-link", link)
	emuLog := &syncBuffer{}
	emu.Stdout, emu.Stderr = emuLog, emuLog
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Process.Signal(syscall.SIGTERM); emu.Wait() })
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(link); return err == nil }) {
		t.Fatalf("emulator did not start:\n%s", emuLog.String())
	}
	replica, _ := filepath.Abs("testdata/crash.yaml")
	cfg := fmt.Sprintf(`store: {path: %s, demo_replica: %s}
api: {socket: %s}
printer: {type: shtrih, port: %s, answer_timeout: 2s}
log: {level: info, format: json}
`, r.dbPath, replica, r.socket, link) + extra
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", r.socket)
		},
		DisableKeepAlives: true,
	}}
	return r
}

// start starts the agent and waits until it answers.
func (r *crashRig) start() *exec.Cmd {
	cmd := exec.Command(filepath.Join(r.dir, "tillagent"), "-config", r.cfgPath)
	cmd.Stdout, cmd.Stderr = r.agentLog, r.agentLog
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	ready := waitFor(30*time.Second, func() bool {
		resp, err := r.client.Get("http://localhost/v1/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if !ready {
		cmd.Process.Kill()
		cmd.Wait()
		r.t.Fatalf("agent not ready:\n%s", tail(r.agentLog.String(), 4000))
	}
	return cmd
}

func (r *crashRig) openShift() {
	resp, err := r.client.Post("http://localhost/v1/shift/open", "application/json", strings.NewReader(`{"cashier":"Тест"}`))
	if err != nil || resp.StatusCode != 200 {
		r.t.Fatalf("open shift: %v %v", resp, err)
	}
	resp.Body.Close()
}

// sell sends sales until the agent dies or stop closes; unanswered keys
// stay in inflight. With more false it only finishes those.
func (r *crashRig) sell(stop <-chan struct{}, more bool) {
	t := r.t
	for {
		select {
		case <-stop:
			return
		default:
		}
		var key string
		if len(r.inflight) > 0 {
			key = r.inflight[0] // a real UI retries the same key after a timeout
		} else if !more {
			return
		} else {
			r.n++
			key = fmt.Sprintf("crash-%d", r.n)
			body, _ := json.Marshal(map[string]any{
				"idempotency_key": key,
				"cards":           []string{r.cards[r.rng.IntN(2)]},
				"redeem":          strconv.Itoa(r.rng.IntN(40)),
				"payments":        map[string]any{"cash": "1000.00"},
				"check": map[string]any{"lines": []any{
					map[string]any{"no": 1, "product_id": "1001", "qty": "1", "price": "89.00"},
					map[string]any{"no": 2, "product_id": "1101", "qty": strconv.Itoa(1 + r.rng.IntN(3)), "price": "61.00"},
				}},
			})
			r.bodies[key] = body
			r.inflight = append(r.inflight, key)
		}
		resp, err := r.client.Post("http://localhost/v1/sales", "application/json", bytes.NewReader(r.bodies[key]))
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
			if prev, ok := r.acked[key]; ok && (prev.SaleID != a.SaleID || prev.Fiscal.FD != a.Fiscal.FD) {
				t.Errorf("sale %s answered twice differently: %+v then %+v", key, prev, a)
			}
			r.acked[key] = a
			r.inflight = r.inflight[1:]
		case resp.StatusCode == 503:
			time.Sleep(20 * time.Millisecond) // unsettled or printer busy: retry the same key
		default:
			t.Errorf("sale %s: status %d: %s", key, resp.StatusCode, b)
			return
		}
	}
}

// finish starts the agent once more, which settles what the last kill
// left, finishes the open keys, runs then (if not nil) on the running
// agent, and stops it.
func (r *crashRig) finish(then func()) {
	t := r.t
	cmd := r.start()
	stop := make(chan struct{})
	timer := time.AfterFunc(20*time.Second, func() { close(stop) })
	r.sell(stop, false)
	timer.Stop()
	if len(r.inflight) > 0 {
		t.Errorf("keys still unanswered after the last start: %v", r.inflight)
	}
	if then != nil && !t.Failed() {
		then()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if t.Failed() {
		t.Logf("agent log:\n%s", tail(r.agentLog.String(), 4000))
		return
	}
	if len(r.acked) == 0 {
		t.Fatal("no sale was acknowledged: the harness tested nothing")
	}
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
	st := openTillStore(t, dbPath)
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
	entries, err := st.JournalAfter(ctx, "", 1_000_000)
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

// openTillStore opens the store of the agent the test killed (S001-T01).
func openTillStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Path: path, TillID: "S001-T01"})
	if err != nil {
		t.Fatal(err)
	}
	return st
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
