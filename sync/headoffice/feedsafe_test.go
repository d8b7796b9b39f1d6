package headoffice

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// TestFoldedCardsStayImportable: what a till's entries fold into a card is
// always something every till's feed import takes. A purchase history at
// store.MaxHistory stops there (past int64 kopecks no till could import
// the card, and the sync loop of every till carrying it failed); a lot
// expiring less than a millisecond after it activates (the till keeps
// milliseconds, PostgreSQL microseconds) is stored expiring a second after.
// The whole feed then imports into a real till store with nothing refused.
func TestFoldedCardsStayImportable(t *testing.T) {
	now := demoNow
	const card = "3400000000041"
	s := lateFixture(t, &now)
	ctx := context.Background()
	near := store.MaxHistory.Sub(checkout.Kopecks(100_00))
	if _, err := s.Import(ctx, &store.Replica{Version: 1, Cards: []store.ReplicaCard{{Code: card, Kind: "bonus", State: checkout.StateActive,
		History: store.CardHistory{PurchasesAllTime: near}}}, Lots: []store.ReplicaLot{lot(card, "A", "100", demoNow.Add(-48*time.Hour), nil)}}); err != nil {
		t.Fatal(err)
	}
	from := demoNow.Add(100 * time.Nanosecond)
	var lt lateTill
	res := lt.pushDecoded(t, s, store.Entry{CardCode: card, Kind: store.KindAccrual, Points: dec("10"), PurchaseKop: 1_000_000_00,
		Lots: []store.LotChange{{Create: true, Delta: dec("10"), ActiveFrom: from, ExpiresAt: from.Add(300 * time.Nanosecond)}}, CreatedAt: demoNow})
	wantStatuses(t, "the accrual", res, wire.Applied)
	var hist string
	var life time.Duration
	if err := s.db.QueryRow(ctx, `SELECT c.history->>'purchases_all_time', (SELECT expires_at - active_from FROM lots WHERE card = c.code AND lot_id <> 'A')
		FROM cards c WHERE c.code = $1`, card).Scan(&hist, &life); err != nil {
		t.Fatal(err)
	}
	if hist != store.MaxHistory.String() || life < time.Second {
		t.Fatalf("history %s, lot life %s; want %s and at least 1 s", hist, life, store.MaxHistory)
	}

	takeFeed(t, s, "S001-T01")
}

// feedTillStore is a till's store taking head office's feed as its sync
// loop does.
type feedTillStore struct {
	s      *Server
	st     *store.Store
	till   string
	cursor string
}

// takeFeed opens a fresh store for till (enrolled) and loads its whole
// feed, as a first load does; the test fails if the store refuses any
// record.
func takeFeed(t *testing.T, s *Server, till string) *feedTillStore {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: till})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &feedTillStore{s: s, st: st, till: till}
	f.pull(t)
	return f
}

// pull takes the feed since the till's cursor, every page, over the wire
// encoding.
func (f *feedTillStore) pull(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	req := FeedRequest{Cursor: f.cursor}
	for {
		page, err := f.s.FeedPage(ctx, f.till, req)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.DecodeFeed(data)
		if err != nil || len(got.Undecoded) != 0 {
			t.Fatalf("decode feed: %v, left out %+v", err, got.Undecoded)
		}
		if _, refused, err := f.st.ImportFeed(ctx, got.Replica, got.Undecoded, !page.More); err != nil || len(refused) != 0 {
			t.Fatalf("till import of the feed: %v, refused %+v", err, refused)
		}
		if !page.More {
			f.cursor = page.Cursor
			return
		}
		req.After = page.Next
	}
}

// lots are the card's lots in the till's replica: "id points/remaining".
func (f *feedTillStore) lots(t *testing.T, card string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+f.st.Path()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), `SELECT l.lot_id, l.points, l.remaining FROM lots l
		JOIN cards c ON c.id = l.card_id WHERE c.code = ? ORDER BY l.lot_id`, card)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, pts, rem string
		if err := rows.Scan(&id, &pts, &rem); err != nil {
			t.Fatal(err)
		}
		out = append(out, id+" "+pts+"/"+rem)
	}
	return out
}

// TestReplyEncodedBeforeTheStatus: a value that cannot be encoded (a time
// past year 9999) is answered 500 naming why, not 200 with a cut body the
// till reads as an empty feed.
func TestReplyEncodedBeforeTheStatus(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	s.reply(w, httptest.NewRequest("GET", "/v1/till/feed", nil), struct{ At time.Time }{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "encode reply") {
		t.Fatalf("reply of an unencodable value: %d %s, want 500 naming the encoding", w.Code, w.Body)
	}
}
