package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestPushesGoCompressed: once head office's answers say it takes gzip
// bodies, the till's pushes go gzip-compressed and are applied (through
// the proxy, which passes bodies and headers on as they are): the
// balances agree with head office's.
func TestPushesGoCompressed(t *testing.T) {
	ctx := context.Background()
	h, p, a := loadedTill(t, "S001-T66", nil)
	var mu sync.Mutex
	var codings []string
	p.onJournal = func(r *http.Request) {
		mu.Lock()
		codings = append(codings, r.Header.Get("Content-Encoding"))
		mu.Unlock()
	}
	for i := 1; i <= 3; i++ {
		a.sell(t, card13, powder(fmt.Sprint(i)), "")
	}
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(codings) == 0 || codings[0] != "gzip" {
		t.Fatalf("push Content-Encodings %q, want gzip", codings)
	}
	if st := a.c.Status(); st.Backlog != 0 {
		t.Fatalf("backlog %d after the compressed push", st.Backlog)
	}
	sameBalances(t, h, a, []string{card13})
}
