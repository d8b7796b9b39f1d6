package main

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/internal/config"
	"tillagent/internal/store"
)

// deadHeadOffice is a head-office URL nothing listens on: the sync loop
// fails at once and backs off, as on a till cut off from head office.
func deadHeadOffice(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// syncingTill turns sync on against a head office that cannot be reached.
// The agent does not import store.demo_replica on a till that syncs, so
// the store is given the demo here, as an earlier load from head office
// would have left it (no offline limits saved); a mod that clears
// store.demo_replica leaves the store empty.
func syncingTill(t *testing.T, more ...func(*config.Config)) func(*config.Config) {
	url := deadHeadOffice(t)
	return func(c *config.Config) {
		c.Sync.Enabled, c.Sync.URL, c.Sync.Secret = true, url, "till-secret-for-tests-0123456789"
		c.Sync.Interval, c.Sync.BackoffMin, c.Sync.BackoffMax, c.Sync.RequestTimeout = time.Hour, time.Minute, time.Hour, time.Second
		for _, m := range more {
			m(c)
		}
		if c.Store.DemoReplica != "" {
			preload(t, c.Store.Path, c.Till.TillID, c.Store.DemoReplica)
		}
	}
}

// preload imports the replica file into the store at path before the agent
// opens it.
func preload(t *testing.T, path, till, file string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: path, TillID: till})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureDemo(ctx, file); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// saveFeedLimits stops the agent, records offline limits in its store as a
// feed received at feedAt would, and starts it again.
func (h *harness) saveFeedLimits(l store.OfflineLimits, feedAt time.Time) {
	h.t.Helper()
	h.stop()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: h.cfg.Store.Path, TillID: h.cfg.Till.TillID})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := st.SaveOfflineLimits(ctx, l, feedAt); err != nil {
		h.t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.start()
}

type quoteAnswer struct {
	Redemption *struct {
		Max      string `json:"max"`
		MaxLimit string `json:"max_limit"`
		Limits   []struct {
			Code   string `json:"code"`
			Points string `json:"points"`
		} `json:"limits"`
	} `json:"redemption"`
}

type cardLookup struct {
	Balance        string `json:"balance"`
	Spendable      string `json:"spendable"`
	SpendableLimit string `json:"spendable_limit"`
	CanSpend       bool   `json:"can_spend"`
	Reason         string `json:"reason"`
}

func (h *harness) quoteMax(code string, lines ...map[string]any) (max, limit string, limits map[string]string) {
	h.t.Helper()
	var q quoteAnswer
	h.must(200, "POST", "/v1/quote", map[string]any{"check": map[string]any{"lines": lines}, "cards": []string{code}}, &q)
	if q.Redemption == nil {
		h.t.Fatalf("quote with card %s: no redemption", code)
	}
	limits = map[string]string{}
	for _, l := range q.Redemption.Limits {
		limits[l.Code] = l.Points
	}
	return q.Redemption.Max, q.Redemption.MaxLimit, limits
}

func (h *harness) card(code string) cardLookup {
	h.t.Helper()
	var c cardLookup
	h.must(200, "GET", "/v1/cards/"+code, nil, &c)
	return c
}

// TestRedemptionWaitsForTheFirstLoad: a till with sync on whose first load
// from head office has not brought the offline rules (head office
// unreachable, the demo replica on the till) redeems nothing, saying why;
// the card and the quote show 0 with the rule; a sale without redemption
// and the accrual go on. Once a feed saved the rules, the card cap holds
// instead. The standalone demo (sync off) redeems as before.
func TestRedemptionWaitsForTheFirstLoad(t *testing.T) {
	h := newHarness(t, syncingTill(t))
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	e := h.refusal(422, "redeem.offline_limit", "POST", "/v1/sales", saleBody("fl-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90")))
	if !strings.Contains(e.Error.Detail, store.OfflineFirstLoad) || !strings.Contains(e.Error.Message, "первая загрузка") || e.Error.Hint == "" {
		t.Fatalf("refusal before the first load: %+v", e.Error)
	}
	if n := len(h.receipts()); n != 0 {
		t.Fatalf("%d receipts printed for a refused sale", n)
	}
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("fl-2", []string{card}, "", "500.00", line(1, "1001", "2", "89.90")), &a)
	if len(a.Quote.Cards) != 1 || a.Quote.Cards[0].Accrued == "0" || a.Quote.Cards[0].Accrued == "" {
		t.Fatalf("accrual before the first load: %+v", a.Quote.Cards)
	}
	h.must(201, "POST", "/v1/sales", saleBody("fl-3", nil, "", "100.00", line(1, "1001", "1", "89.90")), nil)
	if max, why, limits := h.quoteMax(card, line(1, "1001", "2", "89.90")); max != "0" || why != store.OfflineFirstLoad || limits[store.OfflineFirstLoad] != "0" {
		t.Fatalf("quote before the first load: max %s (%s), limits %v", max, why, limits)
	}
	if c := h.card(card); c.CanSpend || c.Spendable != "0" || c.Reason != store.OfflineFirstLoad {
		t.Fatalf("card before the first load: %+v", c)
	}

	h.saveFeedLimits(store.OfflineLimits{CardCap: decimal.NewFromInt(30)}, h.clock())
	h.refusal(422, "redeem.offline_limit", "POST", "/v1/sales", saleBody("fl-4", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90")))
	h.must(201, "POST", "/v1/sales", saleBody("fl-5", []string{card}, "30", "500.00", line(1, "1001", "2", "89.90")), nil)

	demo := newHarness(t, nil)
	demo.must(200, "POST", "/v1/shift/open", nil, nil)
	demo.must(201, "POST", "/v1/sales", saleBody("demo-1", []string{card}, "40", "500.00", line(1, "1001", "2", "89.90")), nil)
	if c := demo.card(card); !c.CanSpend || c.SpendableLimit != "" || c.Spendable != "260" {
		t.Fatalf("standalone card after redeeming 40 of 300: %+v", c)
	}
}

// TestOfflineAgeSurvivesClockSetBack: the last feed allows 45 s offline.
// 50 s after it a redemption is refused (offline_too_long); the agent is
// restarted with the clock set back an hour: still refused, and the card
// and the quote say so. Before, the negative age lifted the limit.
func TestOfflineAgeSurvivesClockSetBack(t *testing.T) {
	h := newHarness(t, syncingTill(t))
	feedAt := h.clock()
	h.stop()
	from := func(at time.Time) func() time.Time {
		start := time.Now()
		return func() time.Time { return at.Add(time.Since(start)) }
	}
	h.clock = from(feedAt.Add(50 * time.Second))
	h.saveFeedLimits(store.OfflineLimits{CardCap: decimal.NewFromInt(150), MaxAge: 45 * time.Second}, feedAt)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	e := h.refusal(422, "redeem.offline_limit", "POST", "/v1/sales", saleBody("age-1", []string{card}, "10", "500.00", line(1, "1001", "2", "89.90")))
	if !strings.Contains(e.Error.Detail, store.OfflineTooLong) {
		t.Fatalf("50 s after a 45 s feed: %+v", e.Error)
	}
	h.stop()
	h.clock = from(feedAt.Add(50*time.Second - time.Hour))
	h.start()
	e = h.refusal(422, "redeem.offline_limit", "POST", "/v1/sales", saleBody("age-2", []string{card}, "10", "500.00", line(1, "1001", "2", "89.90")))
	if !strings.Contains(e.Error.Detail, store.OfflineTooLong) || !strings.Contains(e.Error.Message, "без связи") {
		t.Fatalf("clock set back an hour: %+v", e.Error)
	}
	if c := h.card(card); c.CanSpend || c.Spendable != "0" || c.Reason != store.OfflineTooLong {
		t.Fatalf("card with the clock set back: %+v", c)
	}
	if max, why, _ := h.quoteMax(card, line(1, "1001", "2", "89.90")); max != "0" || why != store.OfflineTooLong {
		t.Fatalf("quote with the clock set back: max %s (%s)", max, why)
	}
	h.must(201, "POST", "/v1/sales", saleBody("age-3", []string{card}, "", "500.00", line(1, "1001", "2", "89.90")), nil)
}

// TestPrinterClockCountsTimeStopped: the last feed allows an hour
// offline. The agent reads the printer's clock at start, is stopped, and
// starts again with the till's clock set back to 10 s after the feed while
// the printer's clock moved on 2 h: the feed is 2 h old, so redeeming is
// refused (offline_too_long), which the till's clock alone would allow.
func TestPrinterClockCountsTimeStopped(t *testing.T) {
	var printerOffset atomic.Int64 // ns the printer's clock is ahead of time.Now
	h := newHarnessWith(t, syncingTill(t), func() time.Time { return time.Now().Add(time.Duration(printerOffset.Load())) })
	feedAt := h.clock()
	h.saveFeedLimits(store.OfflineLimits{CardCap: decimal.NewFromInt(150), MaxAge: time.Hour}, feedAt)
	// saveFeedLimits restarted the agent: it read the printer's clock
	// before it served.
	h.stop()
	start := time.Now()
	h.clock = func() time.Time { return feedAt.Add(10 * time.Second).Add(time.Since(start)) }
	printerOffset.Store(int64(2 * time.Hour))
	h.start()
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	if c := h.card(card); c.CanSpend || c.Reason != store.OfflineTooLong {
		t.Fatalf("card after 2 h stopped by the printer's clock, the till's set back: %+v, want offline_too_long", c)
	}
	e := h.refusal(422, "redeem.offline_limit", "POST", "/v1/sales", saleBody("pc-1", []string{card}, "10", "500.00", line(1, "1001", "2", "89.90")))
	if !strings.Contains(e.Error.Detail, store.OfflineTooLong) {
		t.Fatalf("redeeming: %+v", e.Error)
	}
}

// TestQuoteAndCardShowOfflineCaps: with a card cap of 150 and a till cap of
// 250, the family card (2500 points; 20 × 89.90 allows more by the
// program's limits) is offered 150, naming the card cap, in the quote and
// the card lookup; the sale of 150 goes through and leaves it 0 (cannot
// spend, card cap), and more is refused. Card 13 (300 spendable) is then
// offered 100 by the till cap (250 − 150).
func TestQuoteAndCardShowOfflineCaps(t *testing.T) {
	h := newHarness(t, syncingTill(t))
	h.saveFeedLimits(store.OfflineLimits{CardCap: decimal.NewFromInt(150), TillCap: decimal.NewFromInt(250)}, h.clock())
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	const family = "2700000000014"
	basket := line(1, "1001", "20", "89.90")
	if max, why, limits := h.quoteMax(family, basket); max != "150" || why != store.OfflineCardCap || limits[store.OfflineCardCap] != "150" || limits["balance"] != "2500" {
		t.Fatalf("quote: max %s (%s), limits %v; want 150 (card cap) of a balance of 2500", max, why, limits)
	}
	if c := h.card(family); !c.CanSpend || c.Spendable != "150" || c.SpendableLimit != store.OfflineCardCap || c.Balance != "2500" {
		t.Fatalf("family card: %+v, want spendable 150 (card cap) of 2500", c)
	}
	var a saleAnswer
	h.must(201, "POST", "/v1/sales", saleBody("cap-1", []string{family}, "150", "2000.00", basket), &a)
	if len(a.Cards) != 1 || a.Cards[0].Spendable != "0" {
		t.Fatalf("sale answer after spending the card cap: %+v", a.Cards)
	}
	if c := h.card(family); c.CanSpend || c.Spendable != "0" || c.Reason != store.OfflineCardCap {
		t.Fatalf("family card after spending the cap: %+v", c)
	}
	if max, why, _ := h.quoteMax(family, basket); max != "0" || why != store.OfflineCardCap {
		t.Fatalf("quote after spending the cap: max %s (%s)", max, why)
	}
	h.refusal(422, "redeem.offline_limit", "POST", "/v1/sales", saleBody("cap-2", []string{family}, "1", "2000.00", basket))

	if c := h.card(card); !c.CanSpend || c.Spendable != "100" || c.SpendableLimit != store.OfflineTillCap {
		t.Fatalf("card 13 after 150 spent on the till: %+v, want 100 (till cap 250)", c)
	}
	if max, why, _ := h.quoteMax(card, basket); max != "100" || why != store.OfflineTillCap {
		t.Fatalf("quote of card 13: max %s (%s), want 100 (till cap)", max, why)
	}
}

// TestSaleBeforeTheFirstLoad: a till with sync on that holds no replica yet
// answers any sale, quote or card lookup with replica.not_loaded naming the
// first load from head office, not store.unknown; a till without sync and
// without a replica is told to import one. A store really missing from a
// loaded replica is still store.unknown.
func TestSaleBeforeTheFirstLoad(t *testing.T) {
	noDemo := func(c *config.Config) { c.Store.DemoReplica = "" }
	h := newHarness(t, syncingTill(t, noDemo))
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	e := h.refusal(503, "replica.not_loaded", "POST", "/v1/sales", saleBody("nl-1", nil, "", "100.00", line(1, "1001", "1", "89.90")))
	if !strings.Contains(e.Error.Message, "первая загрузка") || !strings.Contains(e.Error.Detail, "first load from head office") || !strings.Contains(e.Error.Hint, "sync status") {
		t.Fatalf("sale before the first load: %+v", e.Error)
	}
	h.refusal(503, "replica.not_loaded", "GET", "/v1/cards/"+card, nil)
	h.refusal(503, "replica.not_loaded", "POST", "/v1/quote", map[string]any{"check": map[string]any{"lines": []any{line(1, "1001", "1", "89.90")}}})

	alone := newHarness(t, noDemo)
	e = alone.refusal(503, "replica.not_loaded", "POST", "/v1/sales", saleBody("nl-2", nil, "", "100.00", line(1, "1001", "1", "89.90")))
	if !strings.Contains(e.Error.Hint, "tillctl replica import") {
		t.Fatalf("standalone till without a replica: %+v", e.Error)
	}

	other := newHarness(t, func(c *config.Config) { c.Till.StoreID, c.Till.TillID = "S999", "S999-T01" })
	other.refusal(422, "store.unknown", "POST", "/v1/sales", saleBody("nl-3", nil, "", "100.00", line(1, "1001", "1", "89.90")))
}

// TestCardLookupOffersWhatTheQuoteAllows: the card lookup applies the
// program's monthly cap and minimum redemption (BONUS: 5000 a month, at
// least 10) as the quote does. Card 49 has spent 4980 of its month: it is
// offered 20 (monthly_cap), not its 1200. Card 18 under a card cap of 150
// spends 145: the 5 left are below the minimum, so the lookup says it
// cannot spend (min_redeem), as the quote's max 0 and the sale's refusal do.
func TestCardLookupOffersWhatTheQuoteAllows(t *testing.T) {
	h := newHarness(t, syncingTill(t))
	h.saveFeedLimits(store.OfflineLimits{CardCap: decimal.NewFromInt(150)}, h.clock())
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	basket := line(1, "1001", "20", "89.90")

	const monthly = "2900000000049"
	if c := h.card(monthly); !c.CanSpend || c.Spendable != "20" || c.SpendableLimit != "monthly_cap" {
		t.Fatalf("card 49 with 20 left of its monthly cap: %+v", c)
	}
	if max, why, _ := h.quoteMax(monthly, basket); max != "20" || why != "monthly_cap" {
		t.Fatalf("quote of card 49: max %s (%s), want 20 (monthly_cap)", max, why)
	}

	h.must(201, "POST", "/v1/sales", saleBody("min-1", []string{card}, "145", "2000.00", basket), nil)
	if max, why, _ := h.quoteMax(card, basket); max != "0" || why != "min_redeem" {
		t.Fatalf("quote with 5 left of the card cap: max %s (%s), want 0 (min_redeem)", max, why)
	}
	if c := h.card(card); c.CanSpend || c.Spendable != "0" || c.Reason != "min_redeem" {
		t.Fatalf("card 18 with 5 left of the card cap, minimum 10: %+v, want can_spend false (min_redeem)", c)
	}
	h.refusal(422, "redeem.over_limit", "POST", "/v1/sales", saleBody("min-2", []string{card}, "5", "2000.00", basket))
}

// offlineShown is the offline part of /v1/status and /v1/sync.
type offlineShown struct {
	Rules    bool    `json:"rules"`
	CardCap  string  `json:"card_cap"`
	TillCap  string  `json:"till_cap"`
	MaxAgeS  float64 `json:"max_age_s"`
	AgeS     float64 `json:"feed_age_s"`
	Blocked  string  `json:"redeem_blocked"`
	TillUsed string  `json:"till_cap_used"`
	TillLeft string  `json:"till_cap_left"`
}

func (h *harness) offlineShown() (status, sync offlineShown) {
	h.t.Helper()
	var st struct{ Offline offlineShown }
	h.must(200, "GET", "/v1/status", nil, &st)
	var sy struct{ Offline offlineShown }
	h.must(200, "GET", "/v1/sync", nil, &sy)
	return st.Offline, sy.Offline
}

func (h *harness) metricsHave(want ...string) {
	h.t.Helper()
	_, body := h.do("GET", "/metrics", nil, nil)
	for _, w := range want {
		if !strings.Contains(string(body), "\n"+w+"\n") {
			h.t.Errorf("metrics lack %q:\n%s", w, body)
		}
	}
}

// TestStatusShowsOfflineRules: /v1/status, /v1/sync and /metrics show the
// offline rules in force: before the first feed redemption is blocked on
// the whole till (offline_first_load); after a feed the caps (card 150,
// till 400, 45 s) and the till cap used by a redemption of 100 head office
// has not folded; 50 s after the feed, blocked (offline_too_long).
func TestStatusShowsOfflineRules(t *testing.T) {
	h := newHarness(t, syncingTill(t))
	if st, sy := h.offlineShown(); st.Blocked != store.OfflineFirstLoad || st.Rules || sy.Blocked != store.OfflineFirstLoad {
		t.Fatalf("before the first feed: status %+v, sync %+v", st, sy)
	}
	h.metricsHave("tillagent_offline_redeem_blocked 1", "tillagent_offline_first_load 1", "tillagent_offline_too_long 0")

	feedAt := h.clock()
	h.saveFeedLimits(store.OfflineLimits{CardCap: decimal.NewFromInt(150), TillCap: decimal.NewFromInt(400), MaxAge: 45 * time.Second}, feedAt)
	h.must(200, "POST", "/v1/shift/open", nil, nil)
	h.must(201, "POST", "/v1/sales", saleBody("st-1", []string{card}, "100", "2000.00", line(1, "1001", "20", "89.90")), nil)
	st, sy := h.offlineShown()
	if !st.Rules || st.CardCap != "150" || st.TillCap != "400" || st.MaxAgeS != 45 || st.Blocked != "" || st.TillUsed != "100" || st.TillLeft != "300" {
		t.Fatalf("after a feed and a redemption of 100: %+v", st)
	}
	if sy != st {
		t.Errorf("GET /v1/sync offline %+v, /v1/status %+v", sy, st)
	}
	h.metricsHave("tillagent_offline_card_cap 150", "tillagent_offline_till_cap 400", "tillagent_offline_till_cap_used 100",
		"tillagent_offline_max_age_seconds 45", "tillagent_offline_redeem_blocked 0", "tillagent_offline_first_load 0")

	h.stop()
	start := time.Now()
	h.clock = func() time.Time { return feedAt.Add(50*time.Second + time.Since(start)) }
	h.start()
	if st, _ := h.offlineShown(); st.Blocked != store.OfflineTooLong || st.AgeS < 50 || st.CardCap != "150" {
		t.Fatalf("50 s after a 45 s feed: %+v", st)
	}
	h.metricsHave("tillagent_offline_redeem_blocked 1", "tillagent_offline_too_long 1")
}
