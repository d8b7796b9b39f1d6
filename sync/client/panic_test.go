package client

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// panicky is a transport that panics, as a bug deep in a cycle would.
type panicky struct{}

func (panicky) RoundTrip(*http.Request) (*http.Response, error) { panic("boom") }

// TestCyclePanicIsAnError: a panic inside a sync cycle fails that cycle
// with an error naming it, instead of taking the till (and its sales)
// down; the next cycle runs.
func TestCyclePanicIsAnError(t *testing.T) {
	ctx := context.Background()
	st := tillStore(t)
	c, err := New(Options{URL: "http://127.0.0.1:1", TillID: "S001-T01", StoreID: "S001", Secret: "till-secret-for-tests-0123456789",
		Store: st, HTTPClient: &http.Client{Transport: panicky{}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), "internal error: boom") {
			t.Fatalf("cycle %d: %v, want the panic as an error", i, err)
		}
	}
}
