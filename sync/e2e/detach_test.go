package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/client"
)

// TestCycleOutlivesItsCaller: while the loop runs, a cycle a sale's kick or
// a technician's sync now started is the loop's. An ERP job imports 40
// cards, a delta of 8 pages of 5 that come 150 ms apart, head office and
// the link fine; the kick's caller (the agent gives it a deadline) and then
// sync now's (a technician's Ctrl-C) stop waiting after 200 ms. Each gets
// busy, and the cycle goes on to the last page: every card at the till,
// state ok, no failure, the loop's next wait its interval from that cycle,
// not a back-off. Cut with its caller, the cycle failed with "head office
// sent no answer within the request timeout" and the loop backed off.
func TestCycleOutlivesItsCaller(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, p, tl := loadedTill(t, "S001-T71", func(o *client.Options) { o.DeltaPage = 5; o.Interval = time.Hour })
	var slow atomic.Bool
	var pages atomic.Int32
	p.onFeed = func(r *http.Request) {
		if slow.Load() && r.URL.Query().Get("limit") != "" {
			pages.Add(1)
			time.Sleep(150 * time.Millisecond)
		}
	}
	done := make(chan struct{})
	go func() { tl.c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitIdle := func(what string) client.Status {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if st := tl.c.Status(); !st.Running && !st.NextAttempt.IsZero() {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the cycle did not end: %+v", what, tl.c.Status())
			}
		}
	}
	waitIdle("Run's first cycle")
	slow.Store(true)

	for i, r := range []struct {
		name string
		call func(context.Context) error
	}{{"kick", tl.c.Kick}, {"sync now", tl.c.SyncNow}} {
		round := r.name
		mass := &store.Replica{Version: 1}
		var codes []string
		for j := range 40 {
			code := fmt.Sprintf("2920%d%05d", i+1, j)
			codes = append(codes, code)
			mass.Cards = append(mass.Cards, store.ReplicaCard{Code: code, Kind: "bonus", State: checkout.StateActive})
			mass.Lots = append(mass.Lots, store.ReplicaLot{ID: "M1", Card: code, Points: checkout.MustPoints("10"), AccruedAt: demoNow.Add(-time.Hour)})
		}
		if _, err := h.srv.Import(ctx, mass); err != nil {
			t.Fatal(err)
		}
		asked := pages.Load()
		short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
		err := r.call(short)
		stop()
		if client.FailureKind(err) != client.FailBusy {
			t.Fatalf("%s given up after 200 ms: %v (%s), want busy: the cycle goes on", round, err, client.FailureKind(err))
		}
		st := waitIdle(round)
		if st.State != "ok" || st.Failures != 0 || st.LastError != "" {
			t.Fatalf("%s: after the cycle state %s, %d failures, error %q; want ok: head office was fine", round, st.State, st.Failures, st.LastError)
		}
		if n := pages.Load() - asked; n < 8 {
			t.Fatalf("%s: %d delta pages asked, want the 8 of the import", round, n)
		}
		for _, code := range codes {
			if !hasCard(tl, code) {
				t.Fatalf("%s: card %s of the import not at the till", round, code)
			}
		}
		if wait := st.NextAttempt.Sub(st.LastAttempt); wait != time.Hour {
			t.Fatalf("%s: the loop waits %v from the cycle, want its interval (1h)", round, wait)
		}
		if st.Unreachable() {
			t.Fatalf("%s: the till counts as not reaching head office: the next sale's kick is skipped", round)
		}
	}
	// The agent stopping while such a cycle runs: Run returns once the
	// cycle has ended (the agent closes the store after Run).
	if _, err := h.srv.Import(ctx, &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: "2920900000", Kind: "bonus", State: checkout.StateActive}}}); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if err := tl.c.SyncNow(short); client.FailureKind(err) != client.FailBusy {
		t.Fatalf("sync now given up after 50 ms: %v, want busy", err)
	}
	cancel()
	<-done
	if tl.c.Status().Running {
		t.Fatal("Run returned while the cycle sync now started was still running")
	}
}

// TestCycleCutWithoutTheLoopIsNoFailure: without Run the cycle is its
// caller's; cut off when the caller gives up, it says nothing of head
// office: the state stays ok, no failure counted, the error not a timeout
// of the request (RequestTimeout is 5 s, the caller gave up at 200 ms).
func TestCycleCutWithoutTheLoopIsNoFailure(t *testing.T) {
	ctx := context.Background()
	h, p, tl := loadedTill(t, "S001-T72", func(o *client.Options) { o.DeltaPage = 5 })
	p.onFeed = func(r *http.Request) {
		if r.URL.Query().Get("limit") != "" {
			time.Sleep(150 * time.Millisecond)
		}
	}
	mass := &store.Replica{Version: 1}
	for i := range 40 {
		mass.Cards = append(mass.Cards, store.ReplicaCard{Code: fmt.Sprintf("29203%05d", i), Kind: "bonus", State: checkout.StateActive})
	}
	if _, err := h.srv.Import(ctx, mass); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	defer stop()
	err := tl.c.SyncNow(short)
	var te *client.TimeoutError
	if err == nil || errors.As(err, &te) {
		t.Fatalf("sync now given up at 200 ms: %v, want the caller's deadline, not a request timeout", err)
	}
	if st := tl.c.Status(); st.State != "ok" || st.Failures != 0 || st.Unreachable() {
		t.Fatalf("after a cycle its caller cut: state %s, %d failures, unreachable %v; want ok as before", st.State, st.Failures, st.Unreachable())
	}
	if err := tl.c.SyncNow(ctx); err != nil {
		t.Fatalf("the next sync now: %v", err)
	}
	if !hasCard(tl, "2920300039") {
		t.Fatal("the next sync now did not finish the delta")
	}
}
