package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// offlineCap asks OfflineCap and fails the test on an error.
func offlineCap(t *testing.T, s *Store, code string, at time.Time, syncs bool) (string, string) {
	t.Helper()
	l, why, err := s.OfflineCap(context.Background(), code, at, syncs)
	if err != nil {
		t.Fatal(err)
	}
	return l.String(), why
}

// reopener opens till S001-T01's store at path on *clock (mono nil: the
// process's monotonic clock), a restart each call.
func reopener(t *testing.T, path string, clock *time.Time, mono func() time.Duration) func() *Store {
	return func() *Store {
		t.Helper()
		s, err := Open(context.Background(), Options{Path: path, TillID: "S001-T01", Clock: func() time.Time { return *clock }, Monotonic: mono})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestOfflineCapBeforeTheFirstFeed: with no rules saved a till that syncs
// may redeem nothing (its first load has not brought them), a standalone
// till has no offline cap; once a feed saved rules, even "no limits" (all
// zero), the till that syncs has no cap either.
func TestOfflineCapBeforeTheFirstFeed(t *testing.T) {
	s := mustDemo(t)
	if l, why := offlineCap(t, s, "2900000000018", demoNow, true); l != "0" || why != OfflineFirstLoad {
		t.Fatalf("syncing till, no feed yet: %s (%s), want 0 (%s)", l, why, OfflineFirstLoad)
	}
	if l, why := offlineCap(t, s, "2900000000018", demoNow, false); why != "" {
		t.Fatalf("standalone till: %s (%s), want no cap", l, why)
	}
	if err := s.SaveOfflineLimits(context.Background(), OfflineLimits{}, demoNow); err != nil {
		t.Fatal(err)
	}
	if l, why := offlineCap(t, s, "2900000000018", demoNow, true); why != "" {
		t.Fatalf("after a feed without limits: %s (%s), want no cap", l, why)
	}
}

// TestOfflineAgeSurvivesClockSetBack: a feed at 12:00 with a maximum age of
// 1 h. The till's clock reached 14:00 (a sale asked, MarkClock) and was then
// set back to 12:05: the feed is still 2 h old, also after a restart. A
// journal entry written after the feed at 14:00 ages it the same way,
// without any mark. Times before the feed do not count: an entry written
// with the clock ahead, then a feed, leaves the new feed young. A new feed
// starts the age afresh (the old mark no longer counts).
func TestOfflineAgeSurvivesClockSetBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "till.db")
	clock := demoNow
	open := reopener(t, path, &clock, nil)
	s := open()
	if _, err := s.ImportFile(ctx, demoPath(t)); err != nil {
		t.Fatal(err)
	}
	lim := OfflineLimits{CardCap: decimal.NewFromInt(150), MaxAge: time.Hour}
	if err := s.SaveOfflineLimits(ctx, lim, demoNow); err != nil {
		t.Fatal(err)
	}
	const card = "2900000000018"
	if l, why := offlineCap(t, s, card, demoNow.Add(5*time.Minute), true); l != "150" || why != OfflineCardCap {
		t.Fatalf("5 min after the feed: %s (%s), want 150 (card cap)", l, why)
	}
	if err := s.MarkClock(ctx, demoNow.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// An earlier mark never takes the saved one back.
	if err := s.MarkClock(ctx, demoNow.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	back := demoNow.Add(5 * time.Minute)
	if l, why := offlineCap(t, s, card, back, true); l != "0" || why != OfflineTooLong {
		t.Fatalf("clock set back to 12:05 after 14:00: %s (%s), want 0 (%s)", l, why, OfflineTooLong)
	}
	s.Close()
	s = open()
	defer func() { s.Close() }()
	if l, why := offlineCap(t, s, card, back, true); l != "0" || why != OfflineTooLong {
		t.Fatalf("after a restart with the clock set back: %s (%s), want 0 (%s)", l, why, OfflineTooLong)
	}

	// A new feed at 12:10 (the clock still set back): young again.
	feed2 := demoNow.Add(10 * time.Minute)
	if err := s.SaveOfflineLimits(ctx, lim, feed2); err != nil {
		t.Fatal(err)
	}
	if l, why := offlineCap(t, s, card, feed2.Add(time.Minute), true); l != "150" || why != OfflineCardCap {
		t.Fatalf("after a new feed: %s (%s), want 150: the mark of the old feed must not count", l, why)
	}
	// feed2 came while the clock was set back, so it was saved in the
	// offline age's time, 14:00 (offlineState.now). An entry written 2 h
	// after that (clock ahead again), then the clock back.
	clock = demoNow.Add(2*time.Hour + 2*time.Hour + time.Minute)
	if _, err := s.Append(ctx, []Entry{{CheckID: "c1", CardCode: card, Kind: KindAccrual, Points: dec("5")}}); err != nil {
		t.Fatal(err)
	}
	if l, why := offlineCap(t, s, card, feed2.Add(time.Minute), true); l != "0" || why != OfflineTooLong {
		t.Fatalf("journal entry 2 h after the feed, clock set back: %s (%s), want 0 (%s)", l, why, OfflineTooLong)
	}
	// The next feed comes after that entry: the entry no longer ages it.
	feed3 := feed2.Add(2 * time.Minute)
	if err := s.SaveOfflineLimits(ctx, lim, feed3); err != nil {
		t.Fatal(err)
	}
	if l, why := offlineCap(t, s, card, feed3.Add(time.Minute), true); l != "150" || why != OfflineCardCap {
		t.Fatalf("feed after an entry written with the clock ahead: %s (%s), want 150", l, why)
	}
}

// TestMarkClockKeepsTheLatest: marks racing from many goroutines leave the
// latest of them, whatever order they commit in.
func TestMarkClockKeepsTheLatest(t *testing.T) {
	s := mustDemo(t)
	s.seen.elapsed = func() time.Duration { return 0 } // the marks alone, to the millisecond
	ctx := context.Background()
	if err := s.SaveOfflineLimits(ctx, OfflineLimits{MaxAge: time.Hour}, demoNow); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 20)
	for i := 1; i <= 20; i++ {
		go func() { errs <- s.MarkClock(ctx, demoNow.Add(time.Duration(i)*time.Minute)) }()
	}
	for i := 0; i < 20; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.readOfflineState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.UnixMilli(st.mark.SeenMS); !got.Equal(demoNow.Add(20*time.Minute)) || !st.mark.FeedAt.Equal(demoNow) {
		t.Fatalf("mark after 20 racing marks: seen %s for the feed of %s, want %s", got, st.mark.FeedAt, demoNow.Add(20*time.Minute))
	}
	// An older mark for the same feed, saved past MarkClock's own check (as
	// a writer that read before the newer mark committed would), does not
	// replace it; a mark for another feed does.
	if err := s.saveMark(ctx, clockMark{FeedAt: demoNow, SeenMS: demoNow.Add(time.Minute).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.readOfflineState(ctx); st.mark.SeenMS != demoNow.Add(20*time.Minute).UnixMilli() {
		t.Fatalf("an older mark replaced the saved one: %+v", st.mark)
	}
	later := demoNow.Add(30 * time.Minute)
	if err := s.saveMark(ctx, clockMark{FeedAt: later, SeenMS: later.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.readOfflineState(ctx); !st.mark.FeedAt.Equal(later) {
		t.Fatalf("the mark of a newer feed was not saved: %+v", st.mark)
	}
}

// fakeMono is a monotonic clock the test moves.
type fakeMono struct{ d time.Duration }

func (m *fakeMono) elapsed() time.Duration { return m.d }

// TestOfflineAgeGrowsWithTheClockBackAfterAFeed is QA's repro: a feed
// allowing 45 s offline, the till restarted at once with its clock an hour
// back; 65 s later (on the monotonic clock) redemption is refused, though
// the wall clock is still an hour before the feed. Before, the age stayed
// 0 until the wall clock passed the feed again.
func TestOfflineAgeGrowsWithTheClockBackAfterAFeed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "till.db")
	mono := &fakeMono{}
	clock := demoNow
	open := reopener(t, path, &clock, mono.elapsed)
	s := open()
	if _, err := s.ImportFile(ctx, demoPath(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveOfflineLimits(ctx, OfflineLimits{CardCap: decimal.NewFromInt(150), MaxAge: 45 * time.Second}, demoNow); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// The restart: a new process, its monotonic clock from 0, the wall
	// clock an hour back.
	mono.d, clock = 0, demoNow.Add(-time.Hour)
	s = open()
	defer s.Close()
	const card = "2900000000018"
	if l, why := offlineCap(t, s, card, clock, true); l != "150" || why != OfflineCardCap {
		t.Fatalf("right after the feed, clock an hour back: %s (%s), want 150 (card cap)", l, why)
	}
	mono.d, clock = 65*time.Second, clock.Add(65*time.Second)
	if l, why := offlineCap(t, s, card, clock, true); l != "0" || why != OfflineTooLong {
		t.Fatalf("65 s after a 45 s feed, clock an hour back: %s (%s), want 0 (%s)", l, why, OfflineTooLong)
	}
	// MarkClock saves that time: another restart, the monotonic clock
	// from 0 again, is still refused.
	if err := s.MarkClock(ctx, clock); err != nil {
		t.Fatal(err)
	}
	s.Close()
	mono.d = 0
	s = open()
	if l, why := offlineCap(t, s, card, clock, true); l != "0" || why != OfflineTooLong {
		t.Fatalf("restarted again with the clock back: %s (%s), want 0 (%s)", l, why, OfflineTooLong)
	}
}

// TestFeedWhileTheClockIsBehindIsYoung: the till saw 14:00 (a clock mark),
// then its clock went back to 13:00 and a feed came with a 45 s maximum
// age: the feed is saved in the offline age's time, so it is not already
// too old, and it ages from then on the monotonic clock.
func TestFeedWhileTheClockIsBehindIsYoung(t *testing.T) {
	ctx := context.Background()
	mono := &fakeMono{}
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "till.db"), TillID: "S001-T01", Monotonic: mono.elapsed})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ImportFile(ctx, demoPath(t)); err != nil {
		t.Fatal(err)
	}
	lim := OfflineLimits{CardCap: decimal.NewFromInt(150), MaxAge: 45 * time.Second}
	if err := s.SaveOfflineLimits(ctx, lim, demoNow); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkClock(ctx, demoNow.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	behind := demoNow.Add(time.Hour)
	if err := s.SaveOfflineLimits(ctx, lim, behind); err != nil {
		t.Fatal(err)
	}
	const card = "2900000000018"
	mono.d = time.Second
	if l, why := offlineCap(t, s, card, behind.Add(time.Second), true); l != "150" || why != OfflineCardCap {
		t.Fatalf("1 s after a feed taken with the clock behind: %s (%s), want 150 (card cap)", l, why)
	}
	mono.d = 50 * time.Second
	if l, why := offlineCap(t, s, card, behind.Add(50*time.Second), true); why != OfflineTooLong {
		t.Fatalf("50 s after that feed: %s (%s), want %s", l, why, OfflineTooLong)
	}
}

// TestPrinterClockCountsTimeStopped: a feed at 12:00 with a maximum age of
// 1 h; at 12:10 the agent reads the printer's clock (3 h ahead: another
// zone) and is stopped. Two hours later it starts with the till's clock
// set back to 12:10: by the till's clock alone the feed is 10 min old, but
// the printer's clock moved on 2 h, so the feed is 2 h 10 min old and
// redeeming offline is refused, also after another restart. A printer
// clock then set back adds nothing.
func TestPrinterClockCountsTimeStopped(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "till.db")
	clock := demoNow
	open := reopener(t, path, &clock, (&fakeMono{}).elapsed)
	s := open()
	if _, err := s.ImportFile(ctx, demoPath(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveOfflineLimits(ctx, OfflineLimits{CardCap: decimal.NewFromInt(150), MaxAge: time.Hour}, demoNow); err != nil {
		t.Fatal(err)
	}
	const card = "2900000000018"
	at := demoNow.Add(10 * time.Minute)
	printer := at.Add(3 * time.Hour)
	if err := s.MarkPrinterClock(ctx, at, printer); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open() // two hours later, the till's clock back at 12:10
	if l, why := offlineCap(t, s, card, at, true); l != "150" || why != OfflineCardCap {
		t.Fatalf("by the till's clock alone: %s (%s), want 150 (card cap)", l, why)
	}
	if err := s.MarkPrinterClock(ctx, at, printer.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if l, why := offlineCap(t, s, card, at, true); l != "0" || why != OfflineTooLong {
		t.Fatalf("the printer's clock 2 h on: %s (%s), want 0 (%s)", l, why, OfflineTooLong)
	}
	s.Close()
	s = open()
	defer func() { s.Close() }()
	if l, why := offlineCap(t, s, card, at, true); l != "0" || why != OfflineTooLong {
		t.Fatalf("restarted again: %s (%s), want 0 (%s)", l, why, OfflineTooLong)
	}

	// A new feed, then the printer's clock set back an hour: nothing added.
	feed := at
	if err := s.SaveOfflineLimits(ctx, OfflineLimits{CardCap: decimal.NewFromInt(150), MaxAge: time.Hour}, feed); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPrinterClock(ctx, at, printer.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if l, why := offlineCap(t, s, card, at, true); l != "150" || why != OfflineCardCap {
		t.Fatalf("after a new feed, the printer's clock set back: %s (%s), want 150 (card cap)", l, why)
	}
}
