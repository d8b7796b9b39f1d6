package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/internal/store"
	"tillagent/sync/pgtest"
)

// TestCrashKill9WhileSyncing is TestCrashKill9 with the sync loop on.
// First the agent is killed during its first load (3,002 cards in pages
// of 10) until a start completes it. Then it is killed with SIGKILL while
// it sells and while it pushes its journal and imports the feed (`sync
// now` is asked over and over, batches and pages are small so a cycle is
// many requests), and head office, a process of its own on PostgreSQL, is
// killed now and then too. After the last start and a sync, head office
// holds exactly the till's journal (each entry once, the same content,
// all folded, none refused), its balances are the replica's plus the
// journal and equal Σ lots, and the till shows the same balances and every
// card of the first load with its own. It counts the kills that landed
// between head office committing a push and the till recording the
// answer, the case a lost answer leaves behind.
//
// Kills: 40 by default; TILLAGENT_CRASH_KILLS for more.
func TestCrashKill9WhileSyncing(t *testing.T) {
	dsn := pgtest.DSN(t)
	kills := crashKills(t, 40)
	r := newCrashRig(t, kills+1, "") // the config is written below, with head office's address
	ho := newHOProc(t, filepath.Join(r.dir, "headoffice"), dsn)
	ho.run("import", "testdata/crash.yaml")
	// 3,000 more cards, one lot each, so that the first load is 300 pages
	// for the kills to land in.
	var extra strings.Builder
	extra.WriteString("version: 1\ncards:\n")
	for i := range crashExtraCards {
		fmt.Fprintf(&extra, "  - {code: %q, kind: bonus, state: active}\n", crashExtraCard(i))
	}
	extra.WriteString("lots:\n")
	for i := range crashExtraCards {
		fmt.Fprintf(&extra, "  - {id: X%d, card: %q, points: \"%d\", accrued_at: 2026-10-01T10:00:00+03:00}\n", i, crashExtraCard(i), 1+i%500)
	}
	extraFile := filepath.Join(r.dir, "extra.yaml")
	if err := os.WriteFile(extraFile, []byte(extra.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ho.run("import", extraFile)
	secret := strings.TrimSpace(ho.run("enrol", "-till", "S001-T01", "-store", "S001"))
	secretFile := filepath.Join(r.dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf(`sync: {enabled: true, url: "http://%s", secret_file: %s, interval: 1s, batch_size: 3, page_size: 10,
  backoff_min: 100ms, backoff_max: 500ms, request_timeout: 5s}
`, ho.addr, secretFile)...)
	if err := os.WriteFile(r.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	pg, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close(context.Background()) })

	ho.start()
	killRng := rand.New(rand.NewPCG(13, uint64(kills)))
	// The first load, killed until it is through (at most 20 times).
	loadKills, midLoad := 0, 0
	for ; loadKills < 20; loadKills++ {
		cmd := r.start()
		time.Sleep(time.Duration(50+killRng.IntN(250)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		n := r.tillCards()
		if n == 2+crashExtraCards {
			break
		}
		if n > 0 {
			midLoad++
		}
	}
	var syncKilled, hoKills, betweenCommitAndAck int
	for i := 0; i < kills && !t.Failed(); i++ {
		if !ho.running() {
			ho.start()
		}
		cmd := r.start()
		if i == 0 {
			r.openShift()
			// Redemption waits for the first load (TestRedemptionWaitsForTheFirstLoad).
			if !r.syncUntilCaughtUp(30 * time.Second) {
				t.Fatalf("no first load:\n%s", tail(r.agentLog.String(), 4000))
			}
		}
		stop := make(chan struct{})
		sold, synced := make(chan struct{}), make(chan struct{})
		var cut atomic.Bool
		go func() { r.sell(stop, true); close(sold) }()
		go func() {
			defer close(synced)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := r.client.Post("http://localhost/v1/sync/now", "application/json", nil)
				if err != nil {
					cut.Store(true) // killed while a `sync now` ran
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		life := time.Duration(killRng.IntN(300)) * time.Millisecond
		if i > 0 && killRng.IntN(4) == 0 {
			time.Sleep(time.Duration(killRng.Int64N(int64(life) + 1)))
			ho.kill()
			hoKills++
		}
		time.Sleep(life)
		cmd.Process.Kill()
		cmd.Wait()
		close(stop)
		<-sold
		<-synced
		if cut.Load() {
			syncKilled++
		}
		betweenCommitAndAck += r.unackedAtHeadOffice(pg)
	}
	if !ho.running() {
		ho.start()
	}
	r.finish(func() {
		if !r.syncUntilCaughtUp(60 * time.Second) {
			t.Errorf("the till did not catch up with head office:\n%s", tail(r.agentLog.String(), 4000))
		}
	})
	if t.Failed() {
		t.Logf("head office log:\n%s", tail(ho.log.String(), 4000))
		return
	}
	checkCrashInvariants(t, r.dbPath, r.journalPath, r.acked, r.cards)
	checkHeadOfficeHoldsTheJournal(t, pg, r.dbPath, r.cards)
	checkExtraCards(t, r.dbPath)
	t.Logf("first load killed %d times (%d with part of it in); %d kills of the agent (%d during a sync now), %d of head office; %d sales acknowledged; %d entries were committed at head office and not yet acknowledged at the till when it died",
		loadKills, midLoad, kills, syncKilled, hoKills, len(r.acked), betweenCommitAndAck)
}

// The crash test's extra cards (codes 2910000000000 + i, check digit
// aside) hold one lot each of 1 + i%500 points, never sold to.
const crashExtraCards = 3000

func crashExtraCard(i int) string { return fmt.Sprintf("291%010d", i) }

// tillCards counts the cards in the dead agent's replica.
func (r *crashRig) tillCards() int {
	db, err := sql.Open("sqlite", "file:"+r.dbPath+"?mode=ro")
	if err != nil {
		r.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM cards`).Scan(&n); err != nil {
		return 0 // no schema yet: killed before the store was made
	}
	return n
}

// checkExtraCards: after the kills, the till holds every extra card with
// its balance, each counted once.
func checkExtraCards(t *testing.T, dbPath string) {
	t.Helper()
	ctx := context.Background()
	st := openTillStore(t, dbPath)
	defer st.Close()
	for i := range crashExtraCards {
		b, err := st.Spendable(ctx, crashExtraCard(i), time.Now())
		if err != nil {
			t.Fatalf("extra card %s: %v", crashExtraCard(i), err)
		}
		if want := decimal.NewFromInt(int64(1 + i%500)); !b.Total.Decimal().Equal(want) {
			t.Fatalf("extra card %s: balance %s, want %s", crashExtraCard(i), b.Total, want)
		}
	}
}

// syncUntilCaughtUp asks `sync now` until it succeeds with nothing left to
// push and the till's balances are head office's (the feed after the last
// push carries what it folded), or d passes.
func (r *crashRig) syncUntilCaughtUp(d time.Duration) bool {
	clean := 0
	return waitFor(d, func() bool {
		resp, err := r.client.Post("http://localhost/v1/sync/now", "application/json", nil)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Backlog int `json:"backlog"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil || st.Backlog != 0 {
			clean = 0
			time.Sleep(50 * time.Millisecond)
			return false
		}
		clean++
		return clean >= 2 // one more pull after the push that emptied the backlog
	})
}

// unackedAtHeadOffice counts the dead agent's unacknowledged entries that
// head office has already stored: kills between its commit and the till's.
func (r *crashRig) unackedAtHeadOffice(pg *pgx.Conn) int {
	ctx := context.Background()
	st := openTillStore(r.t, r.dbPath)
	defer st.Close()
	pend, err := st.Pending(ctx, 1_000_000)
	if err != nil {
		r.t.Fatal(err)
	}
	ids := make([]string, len(pend))
	for i, e := range pend {
		ids[i] = e.ID
	}
	var n int
	if err := pg.QueryRow(ctx, `SELECT count(*) FROM journal WHERE id = ANY($1)`, ids).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// checkHeadOfficeHoldsTheJournal: head office's journal is the till's,
// entry for entry, all folded and none refused; each card's balance is
// the replica's 100 000 points plus the journal, with no debt, and equals
// Σ its lots.
func checkHeadOfficeHoldsTheJournal(t *testing.T, pg *pgx.Conn, dbPath string, cards []string) {
	t.Helper()
	ctx := context.Background()
	st := openTillStore(t, dbPath)
	defer st.Close()
	mine, err := st.JournalAfter(ctx, "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pg.Query(ctx, `SELECT id, body::text, folded, rejected, till_id FROM journal ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	theirs := map[string]string{}
	for rows.Next() {
		var id, body, rejected, till string
		var folded bool
		if err := rows.Scan(&id, &body, &folded, &rejected, &till); err != nil {
			t.Fatal(err)
		}
		if !folded || rejected != "" || till != "S001-T01" {
			t.Errorf("head office entry %s of till %s: folded %v, rejected %q", id, till, folded, rejected)
		}
		var e store.Entry
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("head office entry %s: %v", id, err)
		}
		theirs[id] = entryContent(t, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	sum := map[string]decimal.Decimal{}
	for _, e := range mine {
		if !e.Acked {
			t.Errorf("entry %s not acknowledged after the last sync", e.ID)
		}
		if got, want := theirs[e.ID], entryContent(t, e); got != want {
			t.Errorf("entry %s:\ntill         %s\nhead office  %s", e.ID, want, got)
		}
		delete(theirs, e.ID)
		sum[e.CardCode] = sum[e.CardCode].Add(e.Points)
	}
	for id := range theirs {
		t.Errorf("head office holds entry %s, which the till never wrote", id)
	}
	for _, c := range cards {
		var debt, lots string
		if err := pg.QueryRow(ctx, `SELECT c.debt::text, (SELECT coalesce(sum(remaining), 0)::text FROM lots WHERE card = c.code)
			FROM cards c WHERE c.code = $1`, c).Scan(&debt, &lots); err != nil {
			t.Fatal(err)
		}
		want := decimal.NewFromInt(100000).Add(sum[c])
		if !decimal.RequireFromString(lots).Equal(want) || !decimal.RequireFromString(debt).IsZero() {
			t.Errorf("card %s at head office: Σ lots %s, debt %s; the journal says %s", c, lots, debt, want)
		}
	}
}

// entryContent is an entry as till and head office must agree on it.
func entryContent(t *testing.T, e store.Entry) string {
	t.Helper()
	e = e.InUTC()
	slices.SortFunc(e.Lots, func(a, b store.LotChange) int { return strings.Compare(a.LotID, b.LotID) })
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hoProc is `headoffice serve` as a process of its own, on a fixed
// loopback port so that a restart is where the till looks for it.
type hoProc struct {
	t        *testing.T
	bin, dsn string
	addr     string
	cmd      *exec.Cmd
	log      *syncBuffer
}

func newHOProc(t *testing.T, bin, dsn string) *hoProc {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hoProc{t: t, bin: bin, dsn: dsn, addr: l.Addr().String(), log: &syncBuffer{}}
	l.Close()
	t.Cleanup(h.kill)
	return h
}

// run runs a one-off headoffice command and returns its stdout.
func (h *hoProc) run(args ...string) string {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(os.Environ(), "HEADOFFICE_DSN="+h.dsn)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, h.log
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("headoffice %v: %v\n%s", args, err, h.log.String())
	}
	return out.String()
}

func (h *hoProc) start() {
	h.cmd = exec.Command(h.bin, "serve", "-listen", h.addr, "-expire-every", "0")
	h.cmd.Env = append(os.Environ(), "HEADOFFICE_DSN="+h.dsn)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	// Any HTTP answer (a till without a secret gets 401) means serving.
	if !waitFor(30*time.Second, func() bool {
		resp, err := http.Get("http://" + h.addr + "/v1/till/feed")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}) {
		h.t.Fatalf("head office did not start:\n%s", tail(h.log.String(), 4000))
	}
}

func (h *hoProc) running() bool { return h.cmd != nil }

// kill is kill -9.
func (h *hoProc) kill() {
	if h.cmd != nil {
		h.cmd.Process.Signal(syscall.SIGKILL)
		h.cmd.Wait()
		h.cmd = nil
	}
}
