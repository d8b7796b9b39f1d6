package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestRefusedWaitDefaults: with the defaults a refused entry waits two
// cycle intervals (the next cycle leaves it out), then twice as long after
// each refusal in a row, never more than an hour; SyncNow's force holds
// nothing back. The behaviour against head office is
// sync/e2e TestRefusedEntryBacksOff.
func TestRefusedWaitDefaults(t *testing.T) {
	c, err := New(Options{URL: "http://ho.invalid", TillID: "S001-T01", Secret: "s", Store: &store.Store{}})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
		32 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := c.refusedWait(i + 1); got != w {
			t.Errorf("refused %d times in a row: wait %v, want %v", i+1, got, w)
		}
	}
	now := time.Now()
	c.refuse("S001-T01-A", "S001-T01-A conflict: other content", now)
	c.refuse("S001-T01-B", "S001-T01-B rejected: bad", now.Add(-2*time.Minute))
	if held := c.heldRefusals(now, false); len(held) != 1 || !held["S001-T01-A"] {
		t.Errorf("held at %v: %v, want only the entry refused just now", now, held)
	}
	if held := c.heldRefusals(now, true); len(held) != 0 {
		t.Errorf("held when forced: %v, want none", held)
	}
	if c.refused["S001-T01-A"].times != 1 {
		t.Errorf("refusals of A: %d, want 1", c.refused["S001-T01-A"].times)
	}
}

// TestRefusalOfAnEntryNoLongerPendingIsDropped: head office refuses an
// entry, which is then acknowledged another way (a re-push sends
// acknowledged entries again; head office, restored, refused one, and the
// re-push went past it). The next push has nothing to send and shows no
// refusal: the till does not report "head office refused" for ever (found
// by the chaos soak).
func TestRefusalOfAnEntryNoLongerPendingIsDropped(t *testing.T) {
	ctx := context.Background()
	st := tillStore(t)
	ids, err := st.Append(ctx, []store.Entry{accrual5("")})
	if err != nil {
		t.Fatal(err)
	}
	ho := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { refuseAll(t, w, r) }))
	defer ho.Close()
	c, err := New(Options{URL: ho.URL, TillID: "S001-T01", Secret: "s", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	var re *refusedError
	if err := c.push(ctx, true); !errors.As(err, &re) || len(re.refused) != 1 {
		t.Fatalf("first push: %v, want the entry refused", err)
	}
	if err := st.MarkAcked(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if err := c.push(ctx, true); err != nil {
		t.Fatalf("push with the refused entry acknowledged since: %v, want nothing refused", err)
	}
	if n := c.Status().RefusedCount; n != 0 {
		t.Errorf("status shows %d refused entries, want 0", n)
	}
}

// refuseAll answers a push refusing every entry of it as a conflict.
func refuseAll(t *testing.T, w http.ResponseWriter, r *http.Request) {
	b, err := wire.DecodeBatch(mustReadAll(t, r.Body))
	if err != nil {
		t.Errorf("batch: %v", err)
		return
	}
	var res wire.BatchResult
	for _, e := range b.Entries {
		res.Results = append(res.Results, wire.Result{ID: e.ID, Status: wire.Conflict, Error: "other content"})
	}
	json.NewEncoder(w).Encode(res)
}

func mustReadAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRefusedJoinedWithAFailureIsTheFailure: a cycle whose push head
// office answered refusing an entry, and whose feed then failed, failed:
// SyncNow's error is the network's, not "refused" (the agent answered 409
// "entries refused" and hid that head office was gone).
func TestRefusedJoinedWithAFailureIsTheFailure(t *testing.T) {
	ref := &refusedError{refused: []string{"S001-T01-A conflict: other content"}}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"refused", ref, FailRefused},
		{"refused, wrapped", fmt.Errorf("sync pull: %w", ref), FailRefused},
		{"push and re-push refused", errors.Join(ref, fmt.Errorf("sync pull: %w", ref)), FailRefused},
		{"refused, then the feed timed out connecting", errors.Join(ref, &TimeoutError{Stage: StageConnect}), FailNetwork},
		{"refused, then no answer to the feed", errors.Join(ref, &TimeoutError{Stage: StageWait}), FailNoAnswer},
		{"refused, then the feed's connection reset", errors.Join(ref, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), FailNetwork},
		{"refused, then head office failed", errors.Join(ref, &AnswerError{Status: http.StatusInternalServerError}), FailHeadOffice},
	} {
		if got := FailureKind(c.err); got != c.want {
			t.Errorf("%s: kind %q, want %q", c.name, got, c.want)
		}
	}

	ctx := context.Background()
	st := tillStore(t)
	if _, err := st.Append(ctx, []store.Entry{accrual5("")}); err != nil {
		t.Fatal(err)
	}
	feeds := 0
	ho := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pushPath {
			refuseAll(t, w, r)
			return
		}
		// The feed: head office goes away mid-request.
		feeds++
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	defer ho.Close()
	c, err := New(Options{URL: ho.URL, TillID: "S001-T01", Secret: "s", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	err = c.SyncNow(ctx)
	if feeds == 0 {
		t.Fatal("the cycle never asked for the feed")
	}
	if kind := FailureKind(err); kind == FailRefused || err == nil {
		t.Fatalf("sync now with the feed cut: %v (kind %q), want the feed's failure", err, kind)
	}
	if s := c.Status(); s.State != "failing" || s.RefusedCount != 1 {
		t.Errorf("status: state %q, %d refused, want failing with the entry still refused", s.State, s.RefusedCount)
	}
}
