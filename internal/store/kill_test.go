package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const killChildEnv = "TILLAGENT_STORE_KILL_CHILD"

// TestKillChild is the child side of TestKill9: it appends sales of three
// entries in a loop and prints each sale's ids only after Append returned.
func TestKillChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("helper process for TestKill9")
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: path, TillID: "S001-T01"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	round := os.Getenv(killChildEnv + "_ROUND")
	for n := 0; ; n++ {
		check := fmt.Sprintf("K%s-%d", round, n)
		var es []Entry
		for i := 0; i < 3; i++ {
			es = append(es, Entry{CheckID: check, CardCode: "2900000000018", Kind: KindAccrual, Points: dec("1"), PurchaseKop: 100,
				Lots: []LotChange{{Create: true, Delta: dec("1"), ActiveFrom: time.Unix(1, 0)}}})
		}
		ids, err := s.Append(ctx, es)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(4)
		}
		// One write(2) per line, after the commit returned.
		os.Stdout.WriteString("C " + check + " " + strings.Join(ids, " ") + "\n")
	}
}

// TestKill9 SIGKILLs a process appending to the journal at random moments
// and checks after each kill that every sale it reported as committed is
// there exactly once, that no sale is partial, and that the file is intact.
func TestKill9(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		t.Skip("in child")
	}
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	if os.Getenv("TILLAGENT_SOAK") != "" {
		rounds = 40
	}
	path := filepath.Join(t.TempDir(), "till.db")
	committed := map[string][]string{} // check → ids, over all rounds
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for r := 0; r < rounds; r++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path, fmt.Sprintf("%s_ROUND=%d", killChildEnv, r))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it commit a few sales, then kill it at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child printed nothing; stderr: %s", r, stderr.String())
		}
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		n := 0
		for _, l := range append([]string{first}, drain(lines)...) {
			f := strings.Fields(l)
			if len(f) != 5 || f[0] != "C" {
				t.Fatalf("round %d: bad child line %q", r, l)
			}
			committed[f[1]] = f[2:]
			n++
		}
		checkJournal(t, path, committed)
		t.Logf("round %d: %d sales reported committed before SIGKILL", r, n)
	}
}

func drain(c chan string) []string {
	var out []string
	for l := range c {
		out = append(out, l)
	}
	return out
}

func checkJournal(t *testing.T, path string, committed map[string][]string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: path, TillID: "S001-T01"})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	var ic string
	if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("integrity_check = %q, %v", ic, err)
	}
	// Every reported id is there exactly once.
	for check, ids := range committed {
		for _, id := range ids {
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM journal WHERE id = ? AND check_id = ?`, id, check).Scan(&n); err != nil || n != 1 {
				t.Fatalf("committed entry %s of %s found %d times (%v)", id, check, n, err)
			}
		}
	}
	// No partial sale: every check has 3 entries with one lot each.
	rows, err := s.r.QueryContext(ctx, `SELECT j.check_id, count(DISTINCT j.seq), count(jl.lot_id) FROM journal j
		LEFT JOIN journal_lots jl ON jl.entry_seq = j.seq GROUP BY j.check_id HAVING count(DISTINCT j.seq) != 3 OR count(jl.lot_id) != 3`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var e, l int
		rows.Scan(&c, &e, &l)
		t.Fatalf("partial sale %s: %d entries, %d lot rows", c, e, l)
	}
	// Duplicated ids are impossible by the UNIQUE constraint; a sale
	// committed but not reported (killed between commit and print) is fine.
}
