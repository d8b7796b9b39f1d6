package headoffice

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// seedExpiringCards copies in n cards of the demo's bonus kind, each with
// one lot of 10 points that expired a day before demoNow, and returns their
// codes in code order.
func seedExpiringCards(t *testing.T, s *Server, n int) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Import(ctx, demoReplica(t)); err != nil {
		t.Fatal(err)
	}
	codes := make([]string, n)
	cards, lots := make([][]any, n), make([][]any, n)
	at, exp := demoNow.Add(-60*24*time.Hour), demoNow.Add(-24*time.Hour)
	for i := range codes {
		codes[i] = fmt.Sprintf("35%011d", i)
		cards[i] = []any{codes[i], "bonus", "active"}
		lots[i] = []any{codes[i], "X" + codes[i], "10", "10", at, at, exp}
	}
	if _, err := s.db.CopyFrom(ctx, pgx.Identifier{"cards"}, []string{"code", "kind", "state"}, pgx.CopyFromRows(cards)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.CopyFrom(ctx, pgx.Identifier{"lots"}, []string{"card", "lot_id", "points", "remaining", "accrued_at", "active_from", "expires_at"},
		pgx.CopyFromRows(lots)); err != nil {
		t.Fatal(err)
	}
	return codes
}

// TestMaintainFindsOnlyTheLotsDue: with 20,000 lots long expired or used
// up (remaining 0) and a few due, Maintain's look-up of the cards due reads
// only the lots due, in the custom and the generic plan. A head office
// keeps every lot ever accrued; the scheduled run must not read them all.
func TestMaintainFindsOnlyTheLotsDue(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	seedExpiringCards(t, s, 20000)
	if _, err := s.db.Exec(ctx, `UPDATE lots SET remaining = 0 WHERE lot_id LIKE 'X35%'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, sqlMaintainDue, s.now())
	if err != nil {
		t.Fatal(err)
	}
	due, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(due) == 0 {
		t.Fatalf("cards due: %v, %v; want the demo's lapsed lots", due, err)
	}
	readsAtMost(t, conn, "maintain_due", sqlMaintainDue, "'"+s.now().Format(time.RFC3339Nano)+"'", "lots", 100)
}

// TestMaintainInChunks: 1,100 cards with a lot due are expired in
// transactions of maintainChunk cards. While a batch holds the last card,
// the cards of the first chunk are already expired and committed, free for
// the tills' batches; once it lets go, Maintain ends having expired them
// all.
func TestMaintainInChunks(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	codes := seedExpiringCards(t, s, 2*maintainChunk+100)
	holder, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	last := codes[len(codes)-1]
	if _, err := holder.Exec(ctx, `SELECT 1 FROM cards WHERE code = $1 FOR NO KEY UPDATE`, last); err != nil {
		t.Fatal(err)
	}
	type result struct {
		st  MaintainStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := s.Maintain(ctx)
		done <- result{st, err}
	}()
	remaining := func(code string) string {
		var r string
		if err := s.db.QueryRow(ctx, `SELECT remaining::text FROM lots WHERE lot_id = $1`, "X"+code).Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for deadline := time.Now().Add(10 * time.Second); remaining(codes[0]) != "0"; {
		if time.Now().After(deadline) {
			t.Fatal("the first chunk's cards are not expired while another card is held")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("Maintain ended (%+v, %v) while card %s was held", r.st, r.err, last)
	default:
	}
	if r := remaining(last); r != "10" {
		t.Fatalf("held card %s: lot keeps %s points, want 10 until it is let go", last, r)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.st.Expired < len(codes) {
		t.Fatalf("Maintain: %+v, %v; want at least %d lots expired", r.st, r.err, len(codes))
	}
	var left int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM lots WHERE lot_id LIKE 'X35%' AND remaining > 0`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d seeded lots keep points after Maintain (%v)", left, err)
	}
	var changed int
	if err := s.db.QueryRow(ctx, `SELECT count(DISTINCT key) FROM changes WHERE section = 'cards' AND key LIKE '35%'`).Scan(&changed); err != nil || changed != len(codes) {
		t.Fatalf("change rows for %d of the %d expired cards (%v): the tills would not see their lots expire", changed, len(codes), err)
	}
}

// TestTwoHeadOfficesMaintainTogether: two head-office processes on one
// database (for availability) run their scheduled maintenance at the same
// moment. Each lot due expires once: the two runs' counts add up to the
// lots, every lot's points went to expired exactly once, and each card's
// balance report says so.
func TestTwoHeadOfficesMaintainTogether(t *testing.T) {
	a := openTest(t)
	ctx := context.Background()
	codes := seedExpiringCards(t, a, 2*maintainChunk+100)
	b, err := Open(ctx, Options{DSN: a.db.Config().ConnString(), Clock: func() time.Time { return demoNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	type result struct {
		st  MaintainStats
		err error
	}
	done := make(chan result, 2)
	for _, s := range []*Server{a, b} {
		go func() {
			st, err := s.Maintain(ctx)
			done <- result{st, err}
		}()
	}
	r1, r2 := <-done, <-done
	if r1.err != nil || r2.err != nil {
		t.Fatal(r1.err, r2.err)
	}
	var seeded, twice int
	if err := a.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE remaining = 0 AND expired = 10), count(*) FILTER (WHERE expired > 10)
		FROM lots WHERE lot_id LIKE 'X35%'`).Scan(&seeded, &twice); err != nil {
		t.Fatal(err)
	}
	if seeded != len(codes) || twice != 0 {
		t.Fatalf("%d of %d seeded lots expired once, %d more than once", seeded, len(codes), twice)
	}
	// The demo's own lapsed lot (L-13-0) is due too.
	if got := r1.st.Expired + r2.st.Expired; got != len(codes)+1 {
		t.Fatalf("the two runs expired %d + %d lots, want %d in all", r1.st.Expired, r2.st.Expired, len(codes)+1)
	}
	bal, err := a.CardBalanceOf(ctx, codes[len(codes)/2])
	if err != nil || !bal.Balance.IsZero() || bal.Expired.String() != "10" {
		t.Fatalf("balance of an expired card: %+v, %v; want 0 with 10 expired", bal, err)
	}
}
