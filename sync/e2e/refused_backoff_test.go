package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tillagent/sync/client"
	"tillagent/sync/wire"
)

// sendLog is the till's HTTP transport, recording on the way to head
// office when each entry was pushed and when each feed page was asked (one
// pull a cycle here: the deltas are small).
type sendLog struct {
	mu    sync.Mutex
	sends map[string][]time.Time // entry id → when a push carried it
	pulls []time.Time
}

func (l *sendLog) RoundTrip(r *http.Request) (*http.Response, error) {
	now := time.Now()
	switch r.URL.Path {
	case "/v1/till/journal":
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		plain := body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			if plain, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		}
		var b wire.Batch
		if err := json.Unmarshal(plain, &b); err != nil {
			return nil, err
		}
		l.mu.Lock()
		for _, e := range b.Entries {
			l.sends[e.ID] = append(l.sends[e.ID], now)
		}
		l.mu.Unlock()
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
	case "/v1/till/feed":
		l.mu.Lock()
		l.pulls = append(l.pulls, now)
		l.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// sent returns a copy of the times entry id was pushed.
func (l *sendLog) sent(id string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.sends[id]...)
}

// pullsBetween counts the feed requests strictly between a and b.
func (l *sendLog) pullsBetween(a, b time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.pulls {
		if p.After(a) && p.Before(b) {
			n++
		}
	}
	return n
}

// TestRefusedEntryBacksOff: head office holds one of the till's entries
// with other content (a conflict, permanent until someone fixes head
// office). The Run loop sends it once, leaves it out of the ordinary cycles
// that follow, and sends it again only after its back-off (RefusedRetryMin,
// then doubled, capped at RefusedRetryMax); entries written before and
// during the back-off are acknowledged meanwhile, and the refused entry
// stays pending and shown in Status throughout. Kick leaves it to its
// back-off; SyncNow sends it at once, whatever its back-off; once head office's copy is fixed, SyncNow gets it
// acknowledged and nothing is left refused.
func TestRefusedEntryBacksOff(t *testing.T) {
	ctx := context.Background()
	const retryMin, retryMax = 400 * time.Millisecond, 800 * time.Millisecond
	rec := &sendLog{sends: map[string][]time.Time{}}
	h, _, a, bad := conflictFixture(t, "S001-T63", func(o *client.Options) {
		o.HTTPClient = &http.Client{Transport: rec}
		o.Interval = 20 * time.Millisecond
		o.RefusedRetryMin, o.RefusedRetryMax = retryMin, retryMax
	})
	// More entries after it than a batch holds (3).
	a.sell(t, card13, powder("1"), "")
	a.sell(t, card13, powder("2"), "")

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.c.Run(rctx) }()
	stopRun := sync.OnceFunc(func() { cancel(); <-done })
	defer stopRun()

	// checkShown: the refused entry is the one shown, with a time it is
	// due to be sent again.
	checkShown := func(when string) {
		t.Helper()
		st := a.c.Status()
		if st.RefusedCount != 1 || len(st.Refused) != 1 || !strings.HasPrefix(st.Refused[0], bad.ID+" conflict") || st.RefusedRetryAt.IsZero() {
			t.Fatalf("%s: refused %v (%d), retry at %v; want the one conflict shown", when, st.Refused, st.RefusedCount, st.RefusedRetryAt)
		}
	}
	// waitSends polls until Run has pushed the refused entry n times,
	// checking all along, once it was first refused, that it stays shown.
	shown := false
	waitSends := func(n int) []time.Time {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if a.c.Status().RefusedCount > 0 {
				shown = true
			}
			if shown {
				checkShown("during the back-off")
			}
			if s := rec.sent(bad.ID); len(s) >= n && shown {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("the refused entry was pushed %d times by Run, want %d", len(rec.sent(bad.ID)), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := waitSends(1)[0]
	// A sale during the back-off: the next cycle pushes it, long before
	// the refused entry is due again.
	a.sell(t, card13, powder("3"), "")
	sends := waitSends(3)
	// Stop once the cycle that sent it the third time has gone on to pull.
	for deadline := time.Now().Add(10 * time.Second); rec.pullsBetween(sends[2], time.Now().Add(time.Hour)) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no pull after the third send")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopRun()

	if gap := sends[1].Sub(sends[0]); gap < retryMin {
		t.Errorf("sent again %v after the first refusal, want at least %v", gap, retryMin)
	}
	if gap := sends[2].Sub(sends[1]); gap < retryMax {
		t.Errorf("sent a third time %v after the second, want at least %v (doubled)", gap, retryMax)
	}
	if n := rec.pullsBetween(sends[0], sends[1]); n < 3 {
		t.Errorf("%d pulls between the first two sends of the refused entry, want ordinary cycles that left it out", n)
	}
	es := a.journal(t)
	last := es[len(es)-1].ID
	if s := rec.sent(last); len(s) != 1 || !s[0].After(first) || !s[0].Before(sends[1]) {
		t.Errorf("the sale during the back-off was pushed at %v, want once between the refused entry's sends %v and %v", s, first, sends[1])
	}
	checkShown("after Run")
	if n, err := a.st.PendingCount(ctx); err != nil || n != 1 {
		t.Fatalf("after Run: %d entries pending (%v), want the refused one alone", n, err)
	}
	if st := a.c.Status(); st.Backlog != 1 || st.Folded != last {
		t.Errorf("after Run: backlog %d, head office's watermark %q; want 1 and %s (every entry after the refused one folded)", st.Backlog, st.Folded, last)
	}
	base := len(rec.sent(bad.ID))

	// Kick (the agent's cycle after a sale that spent points) leaves it
	// to its back-off.
	a.c.Kick(ctx)
	if n := len(rec.sent(bad.ID)); n != base {
		t.Fatalf("kick: the refused entry pushed %d times in all, want %d (inside its back-off)", n, base)
	}

	// SyncNow sends it at once (twice in a row: well inside its back-off).
	for i := 1; i <= 2; i++ {
		err := a.c.SyncNow(ctx)
		if err == nil || !strings.Contains(err.Error(), bad.ID+" conflict") {
			t.Fatalf("sync now %d: %v, want the conflict of %s", i, err, bad.ID)
		}
		if n := len(rec.sent(bad.ID)); n != base+i {
			t.Fatalf("sync now %d: the refused entry pushed %d times in all, want %d", i, n, base+i)
		}
		checkShown("after sync now")
	}

	// A technician gives head office the till's content back; the next
	// SyncNow shows the result at once.
	if _, err := h.srv.DB().Exec(ctx, `UPDATE journal SET body = (CASE WHEN $2 = '' THEN body::jsonb - 'note'
		ELSE jsonb_set(body::jsonb, '{note}', to_jsonb($2::text)) END)::json WHERE id = $1`, bad.ID, bad.Note); err != nil {
		t.Fatal(err)
	}
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatalf("sync now after the fix: %v", err)
	}
	st := a.c.Status()
	if st.RefusedCount != 0 || len(st.Refused) != 0 || !st.RefusedRetryAt.IsZero() || st.Backlog != 0 {
		t.Fatalf("after the fix: refused %v (%d), retry at %v, backlog %d; want nothing refused or pending",
			st.Refused, st.RefusedCount, st.RefusedRetryAt, st.Backlog)
	}
}
