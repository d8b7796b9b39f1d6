package e2e

// The actions TestChaosSoak takes beyond sales, syncs and ERP jobs: a
// store on the home card scope, offline caps and the maximum offline age,
// journal conflicts settled by support, a replaced till store, and head
// office restored from a backup. Each keeps its own part of the model
// (chaosExt) so that the end checks in chaos_test.go know what head office
// must hold.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/client"
	"tillagent/sync/headoffice"
	"tillagent/sync/wire"
)

// chaosHomeStore is on the home card scope, set before its till enrolled.
const chaosHomeStore = "S002"

// chaosMaxAge is the offline maximum age when a seed sets one: clocks move
// in whole hours, so no feed is ever exactly this old.
const chaosMaxAge = 30*time.Hour + 30*time.Minute

// chaosRetention is how long head office keeps its change log in the soak
// (maintenance prunes it).
const chaosRetention = 72 * time.Hour

// chaosHold is head office's -journal-hold: tills drop entries it folded
// longer ago, and it is restored only from backups younger (its promise).
const chaosHold = 72 * time.Hour

type chaosExt struct {
	off store.OfflineLimits
	// seq counts the home card assignments and the widening; home maps
	// each card ERP assigned to chaosHomeStore to seq then, widenSeq is seq
	// when ERP widened the store to all cards (0: never).
	seq      int
	home     map[string]int
	widenSeq int
	widenAt  int // round at which ERP widens the store to all (0: never)
	// fetched are the cards of home that only the store's till made home,
	// fetching them (ERP does not know of them: a restore may lose them
	// until the till's reload asks for them again).
	fetched map[string]bool

	injected map[string]*chaosConflict // entry id → the copy "another device" pushed first
	retired  []*chaosRetired           // till stores replaced

	bk         *hoBackup
	bkRound    int
	bkAt       time.Time // head office's clock at the backup
	dropped    int       // journal entries the tills dropped
	kept       int       // retakes that kept a till's entries, the till unknown to the restored head office
	retakeNext bool      // a till joined since the backup: the next restore retakes the journal
	retaken    int       // restores from a backup older than chaosHold, then retake-journal
	replacedAt int       // round a till store was last replaced
	// orphans are entries of replaced stores head office held behind a
	// gap: once the new store's journal starts the chain they can never
	// fold, and head office must keep them as rejected (defect 6).
	orphans       map[string]bool
	restores      int
	lastRestore   int    // round
	restoreWait   string // a till cut off through a restore: views wait for its re-push
	lotDocs       map[string]string
	beats         map[int]string // round → an action every run takes once (CI covers each)
	episodes      int
	episodeOver   decimal.Decimal
	homeArrivals  int
	refusedSyncs  int
	lostByReplace int
}

// chaosConflict is an entry head office got first from another device
// with the till's id (its Note differs): the till's own copy conflicts.
type chaosConflict struct {
	till    string
	copy    string // canonical, as head office holds it
	round   int
	settled bool // support kept head office's copy (and no restore undid it)
	reason  string
}

// chaosRetired is a till store that was replaced: its journal, and which
// of its entries head office holds (the others are lost with the file).
type chaosRetired struct {
	till    string
	entries []store.Entry
	held    map[string]bool
}

func newChaosExt() chaosExt {
	return chaosExt{home: map[string]int{}, fetched: map[string]bool{}, injected: map[string]*chaosConflict{}, lotDocs: map[string]string{}, beats: map[int]string{}, orphans: map[string]bool{}}
}

// beat runs the round's scheduled action, if any: every run, CI's short
// one included, assigns a home card, fetches a card from another store
// (before the backup and between it and the restore), runs an offline
// episode, injects and
// settles a conflict, replaces a till store, backs head office up and
// restores it.
func (c *chaos) beat() {
	c.t.Helper()
	switch c.x.beats[c.round] {
	case "assign":
		c.assignHome()
	case "fetch":
		c.fetchVisitor()
	case "conflict":
		tl := c.pick()
		c.sell(tl, false)
		c.injectConflict(tl)
	case "settle":
		c.settleConflicts()
	case "episode":
		c.offlineEpisode()
	case "replace":
		c.replaceStore(c.pick())
	case "backup":
		c.backupHO()
	case "join":
		c.joinTill()
	case "restore":
		c.restoreHO()
	case "prune":
		// Long enough for head office's marks to pass the hold, and every
		// till told so by a delta.
		c.maintain()
		c.passTimeBy(chaosHold + time.Hour)
		c.maintain()
		for _, tl := range c.tills {
			if tl.downUntil == 0 {
				c.syncNow(tl)
			}
			c.pruneJournal(tl)
		}
	}
	if c.x.widenAt != 0 && c.round == c.x.widenAt {
		c.widenHome()
	}
}

// ---------------------------------------------------------------- home --

// holdsRule is what the till must know of card: must (a sync that began
// after the card became home, or any sync for an all-scope store), mustNot
// (not home to the till's home-scope store).
func (c *chaos) holdsRule(tl *chaosTill, card string) (must, mustNot bool) {
	if tl.storeID != chaosHomeStore {
		return tl.seenSeq >= 0, false
	}
	if c.x.widenSeq > 0 {
		return tl.seenSeq >= c.x.widenSeq, false
	}
	seq, ok := c.x.home[card]
	return ok && tl.seenSeq >= seq, !ok
}

// holds reports whether the till holds card, failing the round when that
// breaks the store's card scope.
func (c *chaos) holds(tl *chaosTill, card string) bool {
	_, ok := c.balanceIfHeld(tl, card)
	return ok
}

// balanceIfHeld is holds with the card's balance at head office's now.
func (c *chaos) balanceIfHeld(tl *chaosTill, card string) (store.Balance, bool) {
	c.t.Helper()
	b, err := tl.st.Spendable(c.ctx, card, c.now)
	must, mustNot := c.holdsRule(tl, card)
	switch {
	case err == nil && mustNot:
		c.t.Errorf("round %d: till %s of store %s (scope home) holds card %s, not home to it", c.round, tl.id, tl.storeID, card)
		c.failed = true
	case errors.Is(err, store.ErrUnknownCard) && must:
		c.t.Errorf("round %d: till %s does not hold card %s after a sync (home to its store since assignment %d, the till's last sync began at %d)",
			c.round, tl.id, card, c.x.home[card], tl.seenSeq)
		c.failed = true
	case err != nil && !errors.Is(err, store.ErrUnknownCard):
		c.t.Fatalf("round %d: till %s: card %s: %v", c.round, tl.id, card, err)
	}
	return b, err == nil
}

// setHomeScope puts chaosHomeStore on the home scope with a few cards
// home, before its till enrols.
func (c *chaos) setHomeScope() {
	c.t.Helper()
	code, data, err := c.erp(c.h.hs.URL, "PUT", "/v1/erp/stores/"+chaosHomeStore+"/card-scope", "", []byte(`{"scope":"home"}`))
	if err != nil || code != 200 || !strings.Contains(string(data), `"scope":"home"`) {
		c.t.Fatalf("card scope of %s: %d %s (%v)", chaosHomeStore, code, data, err)
	}
	var first []string
	for _, card := range chaosCards {
		if c.rng.IntN(3) == 0 {
			first = append(first, card)
		}
	}
	c.assign(first)
	c.t.Logf("store %s on the home scope, home cards %v", chaosHomeStore, first)
}

// assign makes cards home to chaosHomeStore over ERP HTTP; head office
// must answer how many were new.
func (c *chaos) assign(cards []string) {
	c.t.Helper()
	if len(cards) == 0 {
		return
	}
	c.x.seq++
	fresh := 0
	for _, card := range cards {
		if _, ok := c.x.home[card]; !ok {
			fresh++
			c.x.home[card] = c.x.seq
		} else if c.x.fetched[card] {
			// Home unless a restore lost it and the till has not asked
			// for it again yet: head office knows which.
			var home bool
			if err := c.h.srv.DB().QueryRow(c.ctx, `SELECT EXISTS (SELECT 1 FROM card_stores WHERE store_id = $1 AND card = $2)`,
				chaosHomeStore, card).Scan(&home); err != nil {
				c.t.Fatal(err)
			}
			if !home {
				fresh++
			}
			delete(c.x.fetched, card) // ERP knows it now
		}
	}
	body, _ := json.Marshal(map[string]any{"cards": cards})
	code, data, err := c.erp(c.h.hs.URL, "POST", "/v1/erp/stores/"+chaosHomeStore+"/cards", "", body)
	if want := fmt.Sprintf("{\"assigned\":%d}\n", fresh); err != nil || code != 200 || string(data) != want {
		c.t.Errorf("round %d: assign %v home to %s: %d %s (%v), want %s", c.round, cards, chaosHomeStore, code, data, err, want)
		c.failed = true
	}
}

// assignHome: ERP makes one or two cards home to the store (one may be
// home already); its till, synced, must then hold each with head office's
// whole state (lots, debt), changes made while it was not home included.
func (c *chaos) assignHome() {
	c.t.Helper()
	var cards, fresh []string
	for range 1 + c.rng.IntN(2) {
		card := chaosCards[c.rng.IntN(len(chaosCards))]
		if !slices.Contains(cards, card) {
			cards = append(cards, card)
			if _, ok := c.x.home[card]; !ok {
				fresh = append(fresh, card)
			}
		}
	}
	c.counts["home card assigned"] += len(fresh)
	c.logf("ERP makes cards %v home to store %s (new: %v)", cards, chaosHomeStore, fresh)
	c.assign(cards)
	for _, tl := range c.tills {
		if tl.storeID != chaosHomeStore || tl.downUntil != 0 || c.failed {
			continue
		}
		c.syncNow(tl)
		if c.x.restoreWait != "" || c.failed {
			continue
		}
		for _, card := range fresh {
			c.x.homeArrivals++
			c.sameCard(tl, card, "once assigned home")
		}
	}
}

// fetchVisitor: a customer of another store shows a card the home store's
// till lacks; the till fetches it from head office and holds it at once with
// head office's whole state. The card is home to the store from then on: its
// changes come with the deltas (every later check of the card), and after a
// restore the till's reload asks for it again.
func (c *chaos) fetchVisitor() {
	c.t.Helper()
	var tl *chaosTill
	for _, x := range c.tills {
		if x.storeID == chaosHomeStore {
			tl = x
		}
	}
	if c.x.widenSeq > 0 || tl == nil || tl.downUntil != 0 || c.x.restoreWait != "" || c.failed {
		return
	}
	if !tl.c.Status().ReplicaLoaded {
		// A replaced store whose first load has not run yet (it was
		// partitioned): without the catalog the fetched card's kind is
		// unknown and the till refuses it, while head office has made it
		// home to the store, so the load brings it anyway.
		c.counts["card fetch skipped: replica not loaded"]++
		return
	}
	var strangers []string
	for _, card := range chaosCards {
		if _, ok := c.x.home[card]; !ok {
			strangers = append(strangers, card)
		}
	}
	if len(strangers) == 0 {
		return
	}
	card := strangers[c.rng.IntN(len(strangers))]
	switch err := tl.c.FetchCard(c.ctx, card); {
	case errors.Is(err, client.ErrUnreachable):
		c.counts["card fetch skipped: head office unreachable at the last sync"]++
		return
	case err != nil:
		c.t.Errorf("round %d: till %s fetching card %s: %v", c.round, tl.id, card, err)
		c.failed = true
		return
	}
	c.x.seq++
	c.x.home[card], c.x.fetched[card] = c.x.seq, true
	c.counts["card fetched"]++
	c.logf("till %s fetches card %s, not home to store %s", tl.id, card, chaosHomeStore)
	c.sameCard(tl, card, "once fetched")
}

// widenHome: ERP widens the store to all cards; after its next sync its
// till holds every card.
func (c *chaos) widenHome() {
	c.t.Helper()
	code, data, err := c.erp(c.h.hs.URL, "PUT", "/v1/erp/stores/"+chaosHomeStore+"/card-scope", "", []byte(`{"scope":"all"}`))
	if err != nil || code != 200 || !strings.Contains(string(data), `"scope":"all"`) {
		c.t.Errorf("round %d: widen %s: %d %s (%v)", c.round, chaosHomeStore, code, data, err)
		c.failed = true
		return
	}
	c.x.seq++
	c.x.widenSeq = c.x.seq
	c.counts["scope widened"]++
	c.logf("ERP widens store %s to every card", chaosHomeStore)
}

// hoCard is a card at head office as a till must show it: its lots with
// points left and not expired at now, and its debt.
func (c *chaos) hoCard(card string) (map[string]string, decimal.Decimal) {
	c.t.Helper()
	rows, err := c.h.srv.DB().Query(c.ctx, `SELECT lot_id, points::text, remaining::text, extract(epoch FROM active_from)::bigint,
		coalesce(extract(epoch FROM expires_at)::bigint, 0) FROM lots WHERE card = $1 AND remaining > 0 AND (expires_at IS NULL OR expires_at > $2)`, card, c.now)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, pts, rem string
		var from, exp int64
		if err := rows.Scan(&id, &pts, &rem, &from, &exp); err != nil {
			c.t.Fatal(err)
		}
		out[id] = lotLine(decimal.RequireFromString(pts), decimal.RequireFromString(rem), from, exp)
	}
	rows.Close()
	var debt string
	if err := c.h.srv.DB().QueryRow(c.ctx, `SELECT debt::text FROM cards WHERE code = $1`, card).Scan(&debt); err != nil {
		c.t.Fatal(err)
	}
	return out, decimal.RequireFromString(debt)
}

func lotLine(pts, rem decimal.Decimal, from, exp int64) string {
	return fmt.Sprintf("%s/%s active %d expires %d", rem, pts, from, exp)
}

// tillCard is the same of the till's replica (with its own unfolded
// entries, none at the moments it is asked).
func (c *chaos) tillCard(tl *chaosTill, card string) (map[string]string, decimal.Decimal) {
	c.t.Helper()
	in, err := tl.st.QuoteInput(c.ctx, checkout.Check{ID: tl.id + "-look", StoreID: tl.storeID, Lines: powder("1")}, []string{card}, c.now)
	if err != nil {
		c.t.Fatalf("round %d: till %s: card %s: %v", c.round, tl.id, card, err)
	}
	out := map[string]string{}
	k := in.Cards[0]
	for _, l := range k.Lots {
		var exp int64
		if l.ExpiresAt != nil {
			exp = l.ExpiresAt.Unix()
		}
		out[l.ID] = lotLine(l.Points.Decimal(), l.Remaining.Decimal(), l.ActiveFrom.Unix(), exp)
	}
	return out, k.Debt.Decimal()
}

// sameCard: the till holds card exactly as head office does, lot by lot.
func (c *chaos) sameCard(tl *chaosTill, card, when string) bool {
	c.t.Helper()
	want, wantDebt := c.hoCard(card)
	got, gotDebt := c.tillCard(tl, card)
	ok := gotDebt.Equal(wantDebt)
	for id, w := range want {
		if got[id] != w {
			ok = false
		}
	}
	for id := range got {
		if _, in := want[id]; !in {
			ok = false
		}
	}
	if !ok {
		c.t.Errorf("round %d: till %s %s: card %s\n  till:        debt %s lots %v\n  head office: debt %s lots %v", c.round, tl.id, when, card, gotDebt, got, wantDebt, want)
		c.failed = true
	}
	return ok
}

// ------------------------------------------------------------- offline --

// checkOfflineCap checks the till's offline rule for card against what
// the test knows: no feed yet (first load), the feed's age against the
// maximum (clocks move in whole hours, the maximum is not whole), and the
// caps less this till's redemptions after its watermark, from its journal.
func (c *chaos) checkOfflineCap(tl *chaosTill, card string, limit decimal.Decimal, reason string) {
	c.t.Helper()
	off := c.x.off
	bad := func(want string) {
		c.t.Errorf("round %d: till %s: offline cap of card %s is %s (%q), want %s (feed last tried at %s, last had at %s, now %s)",
			c.round, tl.id, card, limit, reason, want, tl.feedTry.Format(time.RFC3339), tl.feedOK.Format(time.RFC3339), tl.now.Format(time.RFC3339))
		c.failed = true
	}
	switch {
	case tl.feedTry.IsZero():
		if reason != store.OfflineFirstLoad || !limit.IsZero() {
			bad("0 (first load: no feed yet)")
		}
		return
	case tl.feedOK.IsZero():
		return // a first load was tried: it may have saved the rules or not
	}
	if off.MaxAge > 0 {
		if tl.now.Sub(tl.feedTry) > off.MaxAge {
			if reason != store.OfflineTooLong || !limit.IsZero() {
				bad(fmt.Sprintf("0 (%s: no feed for %v)", store.OfflineTooLong, tl.now.Sub(tl.feedTry)))
			}
			return
		}
		if tl.now.Sub(tl.feedOK) <= off.MaxAge && reason == store.OfflineTooLong {
			bad(fmt.Sprintf("the caps (a feed %v ago)", tl.now.Sub(tl.feedOK)))
			return
		}
		if reason == store.OfflineTooLong {
			return // the last feed was tried but maybe not had
		}
	}
	wm, err := tl.st.FoldedThrough(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	es, err := tl.st.JournalAfter(c.ctx, wm, 1_000_000)
	if err != nil {
		c.t.Fatal(err)
	}
	onCard, onAll := decimal.Zero, decimal.Zero
	for _, e := range es {
		if e.ID > wm && e.Kind == store.KindRedemption {
			onAll = onAll.Sub(e.Points)
			if e.CardCode == card {
				onCard = onCard.Sub(e.Points)
			}
		}
	}
	want, why := decimal.Zero, ""
	for _, b := range []struct {
		capacity, used decimal.Decimal
		why            string
	}{{off.CardCap, onCard, store.OfflineCardCap}, {off.TillCap, onAll, store.OfflineTillCap}} {
		if !b.capacity.IsPositive() {
			continue
		}
		if left := decimal.Max(b.capacity.Sub(b.used), decimal.Zero); why == "" || left.LessThan(want) {
			want, why = left, b.why
		}
	}
	if !limit.Equal(want) || reason != why {
		bad(fmt.Sprintf("%s (%q): caps %s/%s less this till's redemptions after its watermark %q, %s on the card, %s in all",
			want, why, off.CardCap, off.TillCap, wm, onCard, onAll))
	}
}

// offlineEpisode: every till synced, then all cut off; each redeems what
// its quote allows on one card (at most the card cap; nothing once its
// feed is older than the maximum age, which time may pass in the middle
// to cross), then all reconnect. The overdraft head office flags (its
// report over HTTP) is at most Σ redeemed less the smallest till's
// redemption — the first folded was within what it saw — so within
// (k − 1) × cap; none when the tills together spent no more than each saw;
// at least what neither the card's lots nor the episode's accruals could
// cover.
func (c *chaos) offlineEpisode() {
	c.t.Helper()
	if c.x.restoreWait != "" || c.openConflicts() {
		return
	}
	c.round0heal()
	for range 2 {
		for _, tl := range c.tills {
			c.syncNow(tl)
		}
	}
	if c.failed {
		return
	}
	for _, tl := range c.tills {
		if n, err := tl.st.PendingCount(c.ctx); err != nil || n != 0 {
			c.logf("offline episode skipped: till %s has %d pending (%v)", tl.id, n, err)
			return
		}
	}
	// A card some till could spend from (its program, state, balance).
	var card string
	var part []*chaosTill
	seen := decimal.Zero
	for _, i := range c.rng.Perm(len(chaosPointCards)) {
		card, part = chaosPointCards[i], nil
		spends := false
		for _, tl := range c.tills {
			if !c.holds(tl, card) {
				continue
			}
			b, err := tl.st.Spendable(c.ctx, card, tl.now)
			if err != nil {
				c.t.Fatal(err)
			}
			if len(part) == 0 || b.Spendable.Decimal().LessThan(seen) {
				seen = b.Spendable.Decimal()
			}
			part = append(part, tl)
			in, err := tl.st.QuoteInput(c.ctx, checkout.Check{ID: tl.id + "-try", StoreID: tl.storeID, Lines: powder("1")}, []string{card}, tl.now)
			if err != nil {
				c.t.Fatal(err)
			}
			if res, err := checkout.Quote(in); err == nil && res.Redemption != nil && res.Redemption.Max.IsPositive() {
				spends = true
			}
		}
		if spends {
			break
		}
		part = nil
	}
	if len(part) == 0 {
		return
	}
	// What anything could cover the redemptions with: every lot's points
	// left or lapsed (a spend dated before an expiry takes the lapsed ones).
	var s string
	if err := c.h.srv.DB().QueryRow(c.ctx, `SELECT coalesce(sum(remaining + expired), 0)::text FROM lots WHERE card = $1`, card).Scan(&s); err != nil {
		c.t.Fatal(err)
	}
	lots := decimal.RequireFromString(s)
	before := c.overdrafts(card)
	for _, tl := range c.tills {
		tl.p.down.Store(true)
		tl.downUntil = c.round + 1
	}
	passAt := -1
	if c.x.off.MaxAge > 0 && c.rng.IntN(3) == 0 {
		passAt = c.rng.IntN(len(part) + 1)
	}
	c.x.episodes++
	c.counts["offline episode"]++
	c.logf("offline episode on card %s: tills %d, each saw %s spendable at least, time passes the maximum age before till %d", card, len(part), seen, passAt)
	red := map[string]decimal.Decimal{}
	sum, accrued, least := decimal.Zero, decimal.Zero, decimal.Zero
	entries := map[string]string{} // entry id → till
	for i, tl := range part {
		if i == passAt {
			c.passTimeBy(c.x.off.MaxAge + time.Hour)
		}
		tl.n++
		check := checkout.Check{ID: fmt.Sprintf("%s-C%05d", tl.id, tl.n), StoreID: tl.storeID, Lines: powder(fmt.Sprint(1 + c.rng.IntN(3)))}
		es := c.sellCheck(tl, check, []string{card}, false, true)
		for _, e := range es {
			entries[e.ID] = tl.id
			switch {
			case e.CardCode != card:
			case e.Kind == store.KindRedemption:
				red[tl.id] = red[tl.id].Sub(e.Points)
			case e.Points.IsPositive():
				accrued = accrued.Add(e.Points)
			}
		}
		r := red[tl.id]
		if c.x.off.CardCap.IsPositive() && r.GreaterThan(c.x.off.CardCap) {
			c.t.Errorf("round %d: till %s redeemed %s of card %s cut off, over the card cap %s", c.round, tl.id, r, card, c.x.off.CardCap)
			c.failed = true
		}
		sum = sum.Add(r)
		if i == 0 || r.LessThan(least) {
			least = r
		}
	}
	for _, tl := range c.tills {
		tl.downUntil = 0
		tl.p.down.Store(false)
	}
	for range 2 {
		for _, tl := range c.tills {
			c.syncNow(tl)
		}
	}
	if c.failed {
		return
	}
	after := c.overdrafts(card)
	over := decimal.Zero
	for id, o := range after {
		if _, old := before[id]; old {
			continue
		}
		till, ok := entries[o.EntryID]
		if !ok || till != o.TillID || o.Points.Decimal().GreaterThan(red[till]) {
			c.t.Errorf("round %d: overdraft %+v: not one of the episode's redemptions (%v) or more than its till redeemed", c.round, o, red)
			c.failed = true
		}
		over = over.Add(o.Points.Decimal())
	}
	c.x.episodeOver = c.x.episodeOver.Add(over)
	upper := sum.Sub(least)
	lower := sum.Sub(lots).Sub(accrued)
	c.logf("offline episode on card %s: redeemed %v (%s in all), accrued %s, overdrawn %s (bounds %s..%s; lots %s)", card, red, sum, accrued, over, lower, upper, lots)
	switch {
	case over.GreaterThan(upper):
		c.t.Errorf("round %d: offline episode on card %s: %s overdrawn, more than Σ redeemed %s less the smallest till's %s (%v)", c.round, card, over, sum, least, red)
		c.failed = true
	case c.x.off.CardCap.IsPositive() && over.GreaterThan(c.x.off.CardCap.Mul(decimal.NewFromInt(int64(len(part)-1)))):
		c.t.Errorf("round %d: offline episode on card %s: %s overdrawn, over (k − 1) × cap with k = %d", c.round, card, over, len(part))
		c.failed = true
	case sum.LessThanOrEqual(seen) && over.IsPositive():
		c.t.Errorf("round %d: offline episode on card %s: the tills redeemed %s in all, within the %s each saw, yet %s is flagged overdrawn", c.round, card, sum, seen, over)
		c.failed = true
	case over.LessThan(lower):
		c.t.Errorf("round %d: offline episode on card %s: redeemed %s, the card's lots held %s and the episode accrued %s, yet only %s is flagged overdrawn",
			c.round, card, sum, lots, accrued, over)
		c.failed = true
	}
	c.checkOverdraftReport()
}

// round0heal ends every partition now.
func (c *chaos) round0heal() {
	for _, tl := range c.tills {
		if tl.downUntil != 0 {
			tl.downUntil = 0
			tl.p.down.Store(false)
		}
	}
}

// overdrafts is head office's overdrafts of card by a key of the row.
func (c *chaos) overdrafts(card string) map[string]headoffice.Overdraft {
	c.t.Helper()
	ods, err := c.h.srv.Overdrafts(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]headoffice.Overdraft{}
	for _, o := range ods {
		if o.Card == card {
			out[o.EntryID+" "+o.Points.String()+" "+o.At.UTC().Format(time.RFC3339Nano)] = o
		}
	}
	return out
}

// checkOverdraftReport: GET /v1/erp/reports/overdrafts lists what
// Overdrafts does.
func (c *chaos) checkOverdraftReport() {
	c.t.Helper()
	ods, err := c.h.srv.Overdrafts(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	code, data, err := c.erp(c.h.hs.URL, "GET", "/v1/erp/reports/overdrafts", "", nil)
	var page headoffice.OverdraftPage
	if err == nil && code == 200 {
		err = json.Unmarshal(data, &page)
	}
	got := page.Overdrafts
	if err != nil || code != 200 || page.More || len(got) != len(ods) {
		c.t.Errorf("round %d: overdrafts report over HTTP: %d, %d rows (%v); Overdrafts has %d", c.round, code, len(got), err, len(ods))
		c.failed = true
		return
	}
	for i := range got {
		if g, w := got[i], ods[i]; g.EntryID != w.EntryID || g.TillID != w.TillID || !g.Points.Decimal().Equal(w.Points.Decimal()) || g.Card != w.Card {
			c.t.Errorf("round %d: overdrafts report row %d over HTTP %+v, Overdrafts %+v", c.round, i, g, w)
			c.failed = true
		}
	}
}

// pruneJournal: a till drops the journal entries head office lets it
// (till.prune: the keeping age is the sale service's rule, not tried
// here).
func (c *chaos) pruneJournal(tl *chaosTill) {
	c.t.Helper()
	n := tl.prune(c.t, tl.now.Add(time.Second))
	c.x.dropped += n
	c.counts["journal pruned"]++
	c.logf("till %s drops %d journal entries head office's backups hold", tl.id, n)
}

// passTimeBy moves every clock on by d.
func (c *chaos) passTimeBy(d time.Duration) {
	c.h.clock.Add(d)
	for _, tl := range c.tills {
		tl.till.clock.Add(d)
		tl.till.now = tl.till.clock.Now()
	}
	c.now = c.h.clock.Now()
	c.counts["time passes"]++
	c.logf("time passes: %v, head office's clock now %s", d, c.now.Format(time.RFC3339))
}

// ----------------------------------------------------------- conflicts --

// openConflicts: some injected conflict is not settled (a till may be
// refused: the fault table's reconnects, which take any error as fatal,
// are left out meanwhile).
func (c *chaos) openConflicts() bool {
	for _, k := range c.x.injected {
		if !k.settled {
			return true
		}
	}
	return false
}

// refusedOK: err is a cycle whose only refused entries are injected
// conflicts not settled yet (the cycle pushed the rest and pulled).
func (c *chaos) refusedOK(tl *chaosTill, err error) bool {
	if client.FailureKind(err) != client.FailRefused {
		return false
	}
	st := tl.c.Status()
	if len(st.Refused) == 0 {
		return false
	}
	for _, line := range st.Refused {
		id, rest, _ := strings.Cut(line, " ")
		k := c.x.injected[id]
		if k == nil || k.till != tl.id || !strings.HasPrefix(rest, "conflict") {
			return false
		}
	}
	c.x.refusedSyncs++
	return true
}

// column is the one text column query reads at head office.
func (c *chaos) column(query string, args ...any) []string {
	c.t.Helper()
	rows, err := c.h.srv.DB().Query(c.ctx, query, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// hoHeld is the ids head office holds of till id.
func (c *chaos) hoHeld(id string) map[string]bool {
	c.t.Helper()
	ids := c.column(`SELECT id FROM journal WHERE till_id = $1`, id)
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// postDirect pushes b to head office itself (not through the till's
// proxy) with the till's credentials.
func (c *chaos) postDirect(tl *chaosTill, b wire.Batch) *wire.BatchResult {
	c.t.Helper()
	body, _ := json.Marshal(b)
	req, _ := http.NewRequest(http.MethodPost, c.h.hs.URL+"/v1/till/journal", bytes.NewReader(body))
	req.SetBasicAuth(tl.id, tl.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("round %d: push of %s: %s %s", c.round, tl.id, resp.Status, data)
	}
	r, err := wire.DecodeBatchResult(data)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// injectConflict: another device with the till's id and secret pushes one
// of the till's pending entries first, with another note. Head office
// takes that copy; the till's own is a conflict once it pushes it.
func (c *chaos) injectConflict(tl *chaosTill) {
	c.t.Helper()
	pend, err := tl.st.PendingChain(c.ctx, 200)
	if err != nil {
		c.t.Fatal(err)
	}
	held := c.hoHeld(tl.id)
	var cand []store.PendingEntry
	for _, p := range pend {
		if !held[p.ID] {
			cand = append(cand, p)
		}
	}
	if len(cand) == 0 {
		return
	}
	p := cand[c.rng.IntN(len(cand))]
	other := wire.Entry{Entry: p.Entry, Prev: p.Prev}
	other.Note = fmt.Sprintf("another device's copy, round %d", c.round)
	res := c.postDirect(tl, wire.Batch{TillID: tl.id, Entries: []wire.Entry{other}})
	if len(res.Results) != 1 || res.Results[0].Status != wire.Applied {
		c.t.Errorf("round %d: till %s: the other copy of %s: %+v, want applied", c.round, tl.id, p.ID, res.Results)
		c.failed = true
		return
	}
	c.x.injected[p.ID] = &chaosConflict{till: tl.id, copy: canonical(c.t, other.Entry), round: c.round}
	c.counts["conflict injected"]++
	c.logf("another device pushes till %s's entry %s first (%d pending)", tl.id, p.ID, len(pend))
}

// settleConflicts: support lists the open conflicts over ERP HTTP (each
// one injected, with both copies) and keeps head office's copy of each.
func (c *chaos) settleConflicts() {
	c.t.Helper()
	code, data, err := c.erp(c.h.hs.URL, "GET", "/v1/erp/conflicts", "", nil)
	var page headoffice.ConflictPage
	if err == nil && code == 200 {
		err = json.Unmarshal(data, &page)
	}
	if err != nil || code != 200 || page.More { // a round injects far fewer than a page
		c.t.Errorf("round %d: conflicts: %d %s (%v)", c.round, code, data, err)
		c.failed = true
		return
	}
	for _, k := range page.Conflicts {
		inj := c.x.injected[k.ID]
		if inj == nil || inj.till != k.TillID {
			c.t.Errorf("round %d: conflict %s of till %s that nobody caused: %+v", c.round, k.ID, k.TillID, k)
			c.failed = true
			continue
		}
		var ho, tc wire.Entry
		if err := errors.Join(json.Unmarshal(k.HeadOfficeCopy, &ho), json.Unmarshal(k.TillCopy, &tc)); err != nil {
			c.t.Fatalf("conflict %s: %v", k.ID, err)
		}
		if canonical(c.t, ho.Entry) != inj.copy {
			c.t.Errorf("round %d: conflict %s: head office's copy %s, want the one pushed first %s", c.round, k.ID, canonical(c.t, ho.Entry), inj.copy)
			c.failed = true
		}
		if own := c.tillEntry(k.TillID, k.ID); own != "" && canonical(c.t, tc.Entry) != own {
			c.t.Errorf("round %d: conflict %s: the till's copy %s, the till holds %s", c.round, k.ID, canonical(c.t, tc.Entry), own)
			c.failed = true
		}
		reason := fmt.Sprintf("chaos round %d: the other device's copy stands", c.round)
		body, _ := json.Marshal(map[string]string{"keep": "head_office", "reason": reason})
		code, data, err := c.erp(c.h.hs.URL, "POST", "/v1/erp/conflicts/"+k.ID, "", body)
		if err != nil || code != 200 || !strings.Contains(string(data), `"kept":"head_office"`) {
			c.t.Errorf("round %d: settle %s: %d %s (%v)", c.round, k.ID, code, data, err)
			c.failed = true
			continue
		}
		inj.settled, inj.reason = true, reason
		c.counts["conflict settled"]++
		c.logf("support settles conflict %s keeping head office's copy", k.ID)
	}
	// Injected copies whose till's own was acknowledged without a
	// conflict (head office's copy came back after a restore as the
	// till's) or that no till holds any more are settled too.
	for id, k := range c.x.injected {
		if !k.settled && c.tillEntry(k.till, id) == "" {
			k.settled = true
		}
	}
}

// tillEntry is the canonical content of entry id in the current store of
// till, "" when it does not hold it.
func (c *chaos) tillEntry(till, id string) string {
	c.t.Helper()
	for _, tl := range c.tills {
		if tl.id != till {
			continue
		}
		es, err := tl.st.JournalAfter(c.ctx, "", 1_000_000)
		if err != nil {
			c.t.Fatal(err)
		}
		if i := slices.IndexFunc(es, func(e store.Entry) bool { return e.ID == id }); i >= 0 {
			return canonical(c.t, es[i])
		}
	}
	return ""
}

// -------------------------------------------------------- replacement --

// replaceStore: the till's SQLite file is lost; a new one starts under the
// same id, enrolled again (a new secret), its clock a minute on from the
// old one's (so its ids follow the old watermark). The old file's entries
// head office does not hold are gone; its sales can no longer be returned.
func (c *chaos) replaceStore(tl *chaosTill) {
	c.t.Helper()
	if c.x.restoreWait == tl.id {
		return
	}
	waiting := c.column(`SELECT id FROM journal WHERE till_id = $1 AND NOT folded`, tl.id)
	for _, id := range waiting {
		c.x.orphans[id] = true
	}
	old := tl.till
	es := old.journal(c.t)
	held := c.hoHeld(tl.id)
	lost := 0
	for _, e := range es {
		if !held[e.ID] {
			lost++
		}
	}
	c.x.retired = append(c.x.retired, &chaosRetired{till: tl.id, entries: es, held: held})
	c.x.replacedAt = c.round
	c.x.lostByReplace += lost
	if err := old.st.Close(); err != nil {
		c.t.Fatalf("till %s: close: %v", tl.id, err)
	}
	skew := old.clock.Now().Sub(demoNow) + time.Minute
	tl.till = newTillWith(c.t, c.h, tl.p, tl.id, tl.storeID, skew, func(o *client.Options) { o.RequestTimeout = 3 * time.Second })
	tl.sales, tl.last = nil, ""
	tl.feedOK, tl.feedTry, tl.seenSeq = time.Time{}, time.Time{}, -1
	c.counts["store replaced"]++
	c.logf("till %s's store is replaced (%d entries, %d of them lost with it)", tl.id, len(es), lost)
	if tl.downUntil == 0 {
		c.syncNow(tl)
	}
}

// joinTill enrols a new till of store S001 (the store opens a till) right
// after the scheduled backup, sells on it and syncs: the restore due next
// lacks the till and retakes the journal, which keeps its entries until
// the till's next sync, admitted from its secret, takes them.
func (c *chaos) joinTill() {
	c.t.Helper()
	p := newProxy(c.t, c.h.hs.URL)
	tl := &chaosTill{till: newTillWith(c.t, c.h, p, "S001-T03", "S001", c.now.Sub(demoNow), func(o *client.Options) { o.RequestTimeout = 3 * time.Second }),
		p: p, seenSeq: -1}
	if err := c.noteSync(tl, c.x.seq, tl.c.SyncNow(c.ctx)); err != nil {
		c.t.Fatalf("round %d: till %s joins: first load: %v", c.round, tl.id, err)
	}
	c.tills = append(c.tills, tl)
	c.x.retakeNext = true
	c.counts["till joined"]++
	c.logf("till %s joins store S001", tl.id)
	c.sell(tl, false)
	c.syncNow(tl)
}

// enrolled: head office has a row for the till.
func (c *chaos) enrolled(till string) bool {
	return len(c.column(`SELECT till_id FROM tills WHERE till_id = $1`, till)) == 1
}

// --------------------------------------------------------- restore --

// backupHO copies head office's tables aside (the last backup replaces the
// one before).
func (c *chaos) backupHO() {
	c.t.Helper()
	old := c.column(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name LIKE 'bk\_%'`)
	for _, tb := range old {
		if _, err := c.h.srv.DB().Exec(c.ctx, `DROP TABLE `+pgx.Identifier{tb}.Sanitize()); err != nil {
			c.t.Fatal(err)
		}
	}
	c.x.bk, c.x.bkRound, c.x.bkAt = takeBackup(c.t, c.h), c.round, c.now
	c.counts["backup"]++
	c.logf("head office backed up")
}

// restoreHO restores head office from the last backup (one till may stay
// cut off through it). ERP then sends again what it sent since: the home
// cards, the scope, the card's state, its lot imports and corrections
// (a deduction only if the card's balance still covers it; else ERP drops
// it); some tills sync before ERP resets every till's feed, then each
// re-pushes what head office lacks and loads its replica afresh.
func (c *chaos) restoreHO() {
	c.t.Helper()
	if c.x.bk == nil || c.x.restoreWait != "" {
		return
	}
	// A backup older than the hold breaks head office's promise: tills may
	// have dropped entries it lacks. The operator then gives them back from
	// ERP's copy of the journal export (headoffice retake-journal), here
	// the export just before the restore, tills' entries only (ERP sends
	// its corrections again itself, below). A till enrolled after the
	// backup is unknown to the restored head office: the retake keeps its
	// entries, and its next sync, admitted from its secret, takes them.
	// After a restore within the hold the operator retakes the journal
	// half of the time: the entries of stores replaced since the backup,
	// which no till holds any more, then come back too.
	var erpCopy *headoffice.JournalCopy
	pastHold := c.now.Sub(c.x.bkAt) >= chaosHold
	retake := pastHold || c.x.retakeNext || c.rng.IntN(2) == 0
	c.x.retakeNext = false
	if retake {
		var err error
		if erpCopy, err = headoffice.NewJournalCopy(c.t.TempDir()); err != nil {
			c.t.Fatal(err)
		}
		defer erpCopy.Close()
		for _, x := range c.exportJournal(-1) {
			if x.TillID == headoffice.ERPTill {
				continue
			}
			if err := erpCopy.Add(x); err != nil {
				c.t.Fatalf("round %d: ERP's copy of the export: %v", c.round, err)
			}
		}
	}
	var keep *chaosTill
	if c.rng.IntN(3) == 0 {
		keep = c.pick()
	}
	for _, tl := range c.tills {
		switch {
		case tl == keep:
			if tl.downUntil == 0 {
				tl.downUntil = c.round + 2 + c.rng.IntN(6)
				tl.p.down.Store(true)
			}
		case tl.downUntil != 0:
			tl.downUntil = 0
			tl.p.down.Store(false)
		}
	}
	c.x.bk.restore(c.t, c.h, c.tills[0].p)
	c.retarget()
	if erpCopy != nil {
		c.retakeJournal(erpCopy, pastHold)
	}
	c.x.restores++
	c.x.lastRestore = c.round
	c.counts["restore"]++
	c.logf("head office restored from the backup of round %d (till %v stays cut off)", c.x.bkRound, keep != nil)

	// The model: what the restored head office holds, or has kept for a
	// till it does not know yet.
	all := map[string]bool{}
	for _, tl := range c.tills {
		for id := range c.hoHeld(tl.id) {
			all[id] = true
		}
	}
	for _, id := range c.column(`SELECT id FROM retake_kept`) {
		all[id] = true
	}
	for _, r := range c.x.retired {
		for id := range r.held {
			if !all[id] {
				delete(r.held, id)
				c.x.lostByReplace++
			}
		}
	}
	for id := range c.x.injected {
		if !all[id] {
			delete(c.x.injected, id) // the till's own copy will be taken
		}
	}
	for id := range c.x.orphans {
		if !all[id] {
			delete(c.x.orphans, id) // stored after the backup: its store's file is gone
		}
	}
	c.refreshConflicts()

	// ERP sends again what it sent since the backup.
	if c.x.widenSeq > 0 {
		if code, data, err := c.erp(c.h.hs.URL, "PUT", "/v1/erp/stores/"+chaosHomeStore+"/card-scope", "", []byte(`{"scope":"all"}`)); err != nil || code != 200 {
			c.t.Errorf("round %d: widen again: %d %s (%v)", c.round, code, data, err)
			c.failed = true
		}
	}
	var homes []string
	for card := range c.x.home {
		if !c.x.fetched[card] {
			homes = append(homes, card)
		}
	}
	sort.Strings(homes)
	if len(homes) > 0 {
		var n int
		if err := c.h.srv.DB().QueryRow(c.ctx, `SELECT count(*) FROM card_stores WHERE store_id = $1 AND card = ANY($2)`, chaosHomeStore, homes).Scan(&n); err != nil {
			c.t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]any{"cards": homes})
		code, data, err := c.erp(c.h.hs.URL, "POST", "/v1/erp/stores/"+chaosHomeStore+"/cards", "", body)
		if want := fmt.Sprintf("{\"assigned\":%d}\n", len(homes)-n); err != nil || code != 200 || string(data) != want {
			c.t.Errorf("round %d: home cards again after the restore: %d %s (%v), want %s", c.round, code, data, err, want)
			c.failed = true
		}
	}
	state := `{"version":1,"cards":[{"code":"` + chaosToggled + `","kind":"bonus","state":"active"}]}`
	if c.blocked {
		state = `{"version":1,"cards":[{"code":"` + chaosToggled + `","kind":"bonus","state":"blocked","block_reason":"chaos"}]}`
	}
	if code, data, err := c.erp(c.h.hs.URL, "POST", "/v1/erp/import", "", []byte(state)); err != nil || code != 200 {
		c.t.Errorf("round %d: card state again: %d %s (%v)", c.round, code, data, err)
		c.failed = true
	}
	var lost []string
	for key := range c.x.lotDocs {
		card, lot, _ := strings.Cut(key, "/")
		var n int
		if err := c.h.srv.DB().QueryRow(c.ctx, `SELECT count(*) FROM lots WHERE card = $1 AND lot_id = $2`, card, lot).Scan(&n); err != nil {
			c.t.Fatal(err)
		}
		if n == 0 {
			lost = append(lost, key)
		}
	}
	sort.Strings(lost)
	for _, key := range lost {
		code, data, err := c.erp(c.h.hs.URL, "POST", "/v1/erp/import", "", []byte(c.x.lotDocs[key]))
		if err != nil || code != 200 || !strings.Contains(string(data), `"lots":1`) {
			c.t.Errorf("round %d: lot %s again after the restore: %d %s (%v)", c.round, key, code, data, err)
			c.failed = true
		}
	}
	ids := map[string]bool{}
	erpIDs := c.column(`SELECT id FROM journal WHERE till_id = 'ERP'`)
	for _, id := range erpIDs {
		ids[id] = true
	}
	var deductions []*chaosCorrection
	resent := 0
	for _, k := range c.corrections {
		if ids["ERP-"+k.id] || !k.done && k.points.IsNegative() {
			continue // held, or a deduction never answered: sent again at the end
		}
		if k.points.IsNegative() {
			deductions = append(deductions, k)
			continue
		}
		ids["ERP-"+k.id] = true // a retry of an accrual sent twice is one
		c.sendCorrection(c.h.hs.URL, k)
		resent++
	}
	c.checkProblems()

	// Some tills sync before ERP resets their feeds (head office's
	// watermark went back: they re-push then); then ERP resets every till's.
	for _, tl := range c.tills {
		if tl.downUntil == 0 && c.rng.IntN(2) == 0 {
			c.syncQuiet(tl, "before the feed reset")
		}
	}
	for _, tl := range c.tills {
		code, data, err := c.erp(c.h.hs.URL, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", "", nil)
		if code == http.StatusNotFound && !c.enrolled(tl.id) {
			// Enrolled since the backup, and not synced since: its
			// admission resets its feed.
			c.counts["reset-feed of a till not known after a restore"]++
			continue
		}
		if err != nil || code != 200 {
			c.t.Errorf("round %d: reset-feed of %s after the restore: %d %s (%v)", c.round, tl.id, code, data, err)
			c.failed = true
		}
	}
	for range 2 {
		for _, tl := range c.tills {
			if tl.downUntil == 0 {
				c.syncQuiet(tl, "after the feed reset")
			}
		}
	}
	c.refreshConflicts()
	// The deductions lost: sent again where the balance covers them.
	dropped := map[*chaosCorrection]bool{}
	for _, k := range deductions {
		b, err := c.h.srv.CardBalanceOf(c.ctx, k.card)
		if err != nil {
			c.t.Fatal(err)
		}
		if b.Balance.Decimal().GreaterThanOrEqual(k.points.Neg()) {
			c.sendCorrection(c.h.hs.URL, k)
			resent++
		} else {
			dropped[k] = true
		}
	}
	if len(dropped) > 0 {
		c.mu.Lock()
		c.corrections = slices.DeleteFunc(c.corrections, func(k *chaosCorrection) bool { return dropped[k] })
		c.mu.Unlock()
	}
	c.checkProblems()
	c.logf("after the restore ERP sent %d home cards, %d lots, %d corrections again and dropped %d deductions", len(homes), len(lost), resent, len(dropped))
	if keep != nil {
		c.x.restoreWait = keep.id
		return
	}
	for _, tl := range c.tills {
		if !c.failed {
			c.syncNow(tl)
		}
	}
}

// retakeJournal gives the restored head office ERP's copy of the tills'
// entries back. Nothing may conflict (the copy is head office's own) and
// only a till retired in the backup may be refused; every other till's
// watermark must then pass what it dropped.
func (c *chaos) retakeJournal(erpCopy *headoffice.JournalCopy, pastHold bool) {
	c.t.Helper()
	rs, err := c.h.srv.RetakeJournal(c.ctx, erpCopy, nil)
	if err != nil {
		c.t.Fatalf("round %d: retake-journal: %v", c.round, err)
	}
	applied := 0
	folded := map[string]string{} // a till that dropped entries has them in the copy
	kept := map[string]bool{}     // unknown to head office: taken at its next sync
	for _, r := range rs {
		applied += r.Applied
		folded[r.TillID] = r.FoldedThrough
		if r.Conflict+r.PassedOver > 0 || r.Err != "" && !strings.Contains(r.Err, "retired") {
			c.t.Errorf("round %d: retake-journal of till %s: %+v", c.round, r.TillID, r)
			c.failed = true
		}
		if r.Kept > 0 {
			kept[r.TillID] = true
			c.x.kept++
		}
	}
	for _, tl := range c.tills {
		if kept[tl.id] {
			continue
		}
		k, err := tl.st.JournalKept(c.ctx)
		if err != nil {
			c.t.Fatal(err)
		}
		if wm := folded[tl.id]; wm < k.PrunedThrough {
			c.t.Errorf("round %d: after retake-journal head office's watermark of till %s is %s, before the entries it dropped (through %s)", c.round, tl.id, wm, k.PrunedThrough)
			c.failed = true
		}
	}
	where := "within"
	if pastHold {
		where = "past"
		c.x.retaken++
	}
	c.counts["restore "+where+" the hold, journal retaken"]++
	c.logf("head office restored from a backup %s the journal hold: retake-journal gave back %d entries of %d tills", where, applied, len(rs))
}

// syncQuiet is a sync that must work (or be refused only for injected
// conflicts) whose view is not checked: right after a restore the tills
// hold what head office lost until all have re-pushed.
func (c *chaos) syncQuiet(tl *chaosTill, when string) {
	c.t.Helper()
	seq := c.x.seq
	if err := c.noteSync(tl, seq, tl.c.SyncNow(c.ctx)); err != nil {
		c.t.Errorf("round %d: till %s: sync %s: %v (status %+v)", c.round, tl.id, when, err, tl.c.Status())
		c.failed = true
	}
}

// refreshConflicts reads which injected conflicts a restore left open:
// one open at head office, or whose till's copy head office will see
// again (the till has not acknowledged it), is not settled.
func (c *chaos) refreshConflicts() {
	c.t.Helper()
	cs, err := c.h.srv.Conflicts(c.ctx, true)
	if err != nil {
		c.t.Fatal(err)
	}
	rows := map[string]headoffice.Conflict{}
	for _, k := range cs {
		rows[k.ID] = k
	}
	for id, k := range c.x.injected {
		row, ok := rows[id]
		switch {
		case ok:
			k.settled = row.SettledAt != nil
		default:
			k.settled = c.tillAcked(k.till, id)
		}
	}
}

// tillAcked: the current store of till holds entry id acknowledged (or
// does not hold it at all).
func (c *chaos) tillAcked(till, id string) bool {
	c.t.Helper()
	for _, tl := range c.tills {
		if tl.id != till {
			continue
		}
		for _, e := range tl.journal(c.t) {
			if e.ID == id {
				return e.Acked
			}
		}
	}
	return true
}

// noteSync records a sync of tl that began at assignment seq: the feed
// times the offline rules go by, the home cards it must hold, and the
// end of a restore's wait. A cycle refused only for injected conflicts
// pushed the rest and pulled: it counts as done (nil).
func (c *chaos) noteSync(tl *chaosTill, seq int, err error) error {
	tl.feedTry = tl.now
	if err != nil && !strings.Contains(err.Error(), "sync pull: pushing the journal again") && c.refusedOK(tl, err) {
		err = nil
	}
	if err == nil {
		tl.feedOK, tl.seenSeq = tl.now, max(tl.seenSeq, seq)
		if c.x.restoreWait == tl.id && !tl.c.Status().Repushing {
			c.x.restoreWait = ""
			c.logf("till %s re-pushed after the restore", tl.id)
		}
	}
	return err
}

// ----------------------------------------------------------- the end --

// endConflicts settles what is open and checks every conflict head office
// lists: injected, settled with the reason support gave; every injected
// entry of a till that pushed it since (and no restore in between) is
// listed.
func (c *chaos) endConflicts() {
	t := c.t
	t.Helper()
	cs, err := c.h.srv.Conflicts(c.ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, k := range cs {
		listed[k.ID] = true
		inj := c.x.injected[k.ID]
		switch {
		case inj == nil:
			t.Errorf("conflict %+v: nobody caused it", k)
		case k.SettledAt == nil:
			t.Errorf("conflict %s still open at the end", k.ID)
		case inj.reason != "" && k.Reason != inj.reason && c.x.lastRestore < inj.round:
			t.Errorf("conflict %s settled with reason %q, support gave %q", k.ID, k.Reason, inj.reason)
		}
	}
	for id, k := range c.x.injected {
		if !listed[id] && c.tillEntry(k.till, id) != "" && k.round > c.x.lastRestore {
			t.Errorf("entry %s: head office holds another device's copy, the till's own was acknowledged, and no conflict was ever listed", id)
		}
	}
	list := func(path string) []headoffice.Conflict {
		code, data, err := c.erp(c.h.hs.URL, "GET", path, "", nil)
		var page headoffice.ConflictPage
		if err == nil && code == 200 {
			err = json.Unmarshal(data, &page)
		}
		if err != nil || code != 200 || page.More { // far fewer than a page
			t.Errorf("GET %s: %d %s (%v)", path, code, data, err)
		}
		return page.Conflicts
	}
	if open := list("/v1/erp/conflicts"); len(open) != 0 {
		t.Errorf("GET /v1/erp/conflicts: %+v, want none open", open)
	}
	if all := list("/v1/erp/conflicts?all=1"); len(all) != len(cs) {
		t.Errorf("GET /v1/erp/conflicts?all=1: %d conflicts, Conflicts(all) %d", len(all), len(cs))
	}
}

// retiredHeld is the entries head office holds of replaced till stores,
// by id, as head office must hold them (an injected copy where one was).
func (c *chaos) retiredHeld() map[string]store.Entry {
	out := map[string]store.Entry{}
	for _, r := range c.x.retired {
		for _, e := range r.entries {
			if r.held[e.ID] {
				out[e.ID] = e
			}
		}
	}
	return out
}

// lastFolded is the entry head office's watermark must name for tl at the
// end: its current store's last entry, or, if it has none, the last of
// its replaced stores' entries head office holds.
func (c *chaos) lastFolded(tl *chaosTill) string {
	if es := tl.journal(c.t); len(es) > 0 {
		return es[len(es)-1].ID
	}
	last := ""
	for _, r := range c.x.retired {
		if r.till != tl.id {
			continue
		}
		for _, e := range r.entries {
			if r.held[e.ID] && e.ID > last {
				last = e.ID
			}
		}
	}
	return last
}

// beatsFor spreads the scheduled actions over the run.
func beatsFor(rounds int) map[int]string {
	out := map[int]string{}
	for _, b := range []struct {
		name string
		at   float64
	}{{"assign", 0.1}, {"fetch", 0.12}, {"conflict", 0.15}, {"replace", 0.2}, {"prune", 0.25}, {"backup", 0.3}, {"join", 0.3}, {"restore", 0.301},
		{"episode", 0.4}, {"settle", 0.5},
		{"assign", 0.6}, {"fetch", 0.65}, {"restore", 0.7}, {"prune", 0.75}, {"conflict", 0.8}, {"episode", 0.9}} {
		r := max(1, int(b.at*float64(rounds)))
		for out[r] != "" {
			r++
		}
		out[r] = b.name
	}
	return out
}

// ------------------------------------------------- defects' reproductions --

// replacedAfterBackup is the setup of defects 3 and 4 (TestChaosSoak with
// TILLAGENT_CHAOS_KNOWN=1): head office with an enrolment key and the
// demo, tills A (S001-T71) and B (S001-T72) loaded. A sells on card 13
// and syncs; head office is backed up; A sells on card 49 (an accrual: a
// new lot) and syncs, and B pulls it. A's SQLite file is then lost: a new
// store A2 starts under the same id, enrolled again, and loads (its
// watermark is the old store's last entry). Head office is restored from
// the backup: the card-49 sale is lost for good (A2 never had it), and
// ERP corrects card 13 by 40 after the restore.
func replacedAfterBackup(t *testing.T) (h *ho, a2, b *till, lot string) {
	t.Helper()
	ctx := context.Background()
	h = &ho{t: t, dsn: pgDSN(t), clock: newTestClock(demoNow), enrolKey: []byte(strings.Repeat("chaos-enrol-key.", 2))}
	h.start()
	t.Cleanup(h.stop)
	importDemo(t, h)
	p := newProxy(t, h.hs.URL)
	a := newTill(t, h, p, "S001-T71", "S001", 0)
	b = newTill(t, h, p, "S001-T72", "S001", 0)
	syncEach(t, a, b)
	a.sell(t, card13, powder("1"), "")
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	bk := takeBackup(t, h)
	a.sell(t, "2900000000049", basket(), "")
	if err := a.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range a.journal(t) {
		for _, l := range e.Lots {
			if e.CardCode == "2900000000049" && l.Create {
				lot = l.LotID
			}
		}
	}
	if lot == "" {
		t.Fatal("test setup: the card-49 sale created no lot")
	}
	a.st.Close()
	a2 = newTill(t, h, p, "S001-T71", "S001", time.Minute)
	if err := a2.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	bk.restore(t, h, p)
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "after-restore", Card: card13, Points: decimal.NewFromInt(40), Reason: "goodwill"}); err != nil {
		t.Fatal(err)
	}
	for _, tl := range []*till{a2, b} {
		if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+tl.id+"/reset-feed", nil); code != 200 {
			t.Fatalf("reset %s: %d %s", tl.id, code, data)
		}
	}
	return h, a2, b, lot
}

// TestReplacedStoreTakesTheRestoredFeed (defect 3): the replaced store A2
// has no entry of its own; its watermark names the old store's last entry,
// which the restored head office lost for good. Its syncs must work and
// bring the restored replica (the correction made since): no entry of A2
// lies between the two watermarks, so nothing could be counted twice.
// They fail instead ("still behind the till's ... after pushing the
// journal after it again"), every cycle, until A2 sells: the till takes
// no change from head office at all meanwhile (a blocked card stays
// usable there).
func TestReplacedStoreTakesTheRestoredFeed(t *testing.T) {
	ctx := context.Background()
	h, a2, _, _ := replacedAfterBackup(t)
	for i := range 2 {
		if err := a2.c.SyncNow(ctx); err != nil {
			t.Errorf("sync %d of the replaced store after the restore: %v", i+1, err)
		}
	}
	sameBalances(t, h, a2, []string{card13})
}

// TestReloadDropsLotsHeadOfficeLost (defect 4): till B loaded the lot the
// card-49 sale created; the restored head office lost it for good (the
// store that made it is gone). After ERP's feed reset B loads the replica
// afresh, and must then hold card 49 as head office does. It keeps the
// lot instead (feed imports only upsert), and shows the card that many
// points above head office, forever: points a customer can spend there
// and head office will find overdrawn.
func TestReloadDropsLotsHeadOfficeLost(t *testing.T) {
	ctx := context.Background()
	h, _, b, lot := replacedAfterBackup(t)
	if err := b.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st := b.c.Status(); st.Resets != 1 || !st.ReplicaLoaded {
		t.Fatalf("till B after the reset: %+v, want its replica loaded afresh", st)
	}
	sameBalances(t, h, b, []string{card13, "2900000000049"})
	in, err := b.st.QuoteInput(ctx, checkout.Check{ID: "look", StoreID: "S001", Lines: powder("1")}, []string{"2900000000049"}, demoNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range in.Cards[0].Lots {
		if l.ID == lot {
			t.Errorf("till B still holds lot %s (%s points) of card 49, which head office no longer has", lot, l.Remaining)
		}
	}
}

// TestResetWithAConflictStillReloads (defect 5): a till holds an entry
// head office has another copy of (a conflict, not settled yet). ERP
// corrects card 13 and resets the till's feed. The till's next cycle must
// re-push, load the replica afresh (the correction in it) and answer the
// conflict ("a push whose entries head office refused still pulls",
// docs/sync.md). The re-push's refusal ends the cycle before the reload
// instead, while the answer is still "refused" (FailRefused: the rest
// went through): the till shows card 13 without the correction until its
// next cycle.
func TestResetWithAConflictStillReloads(t *testing.T) {
	ctx := context.Background()
	h, _, a, bad := conflictFixture(t, "S001-T73", nil)
	if err := a.c.SyncNow(ctx); err == nil || !strings.Contains(err.Error(), bad.ID+" conflict") {
		t.Fatalf("sync: %v, want the conflict of %s", err, bad.ID)
	}
	if _, err := h.srv.Correct(ctx, headoffice.Correction{ID: "during-conflict", Card: card13, Points: decimal.NewFromInt(40), Reason: "goodwill"}); err != nil {
		t.Fatal(err)
	}
	if code, data := erpCall(t, h, "POST", "/v1/erp/tills/"+a.id+"/reset-feed", nil); code != 200 {
		t.Fatalf("reset: %d %s", code, data)
	}
	err := a.c.SyncNow(ctx)
	if client.FailureKind(err) != client.FailRefused || !strings.Contains(err.Error(), bad.ID+" conflict") {
		t.Fatalf("sync after the reset: %v, want only the conflict of %s refused", err, bad.ID)
	}
	if st := a.c.Status(); st.Resets != 1 || !st.ReplicaLoaded {
		t.Errorf("status after the reset's cycle: resets %d, replica loaded %v, cursor %q: want the replica loaded afresh", st.Resets, st.ReplicaLoaded, st.Cursor)
	}
	sameBalances(t, h, a, []string{card13})
}

// TestReplacedStoreLeavesNothingWaiting (defect 6): a till's later entry
// reached head office before the one before it (a batch that overtook
// another: stored, waiting behind the gap), and then the till's SQLite
// file was lost with the missing entry. The replacement store's journal
// restarts the chain (docs/sync.md, "A replaced till store"); the old
// entry can then never be folded. Head office must not report it waiting
// behind a gap for ever: it keeps it as rejected (GET /v1/erp/rejected)
// for support, like any entry that will never count. It stays unfolded
// and waiting instead: the tills report shows the till waiting since then
// (an alert nobody can clear), and the accruals report counts it
// unfolded in every period it falls in.
func TestReplacedStoreLeavesNothingWaiting(t *testing.T) {
	ctx := context.Background()
	h, p, a := loadedTill(t, "S001-T74", nil)
	a.sell(t, card13, powder("1"), "50") // a redemption and an accrual: two entries
	pend, err := a.st.PendingChain(ctx, 10)
	if err != nil || len(pend) != 2 {
		t.Fatalf("pending %d, %v; want the sale's two entries", len(pend), err)
	}
	if res := post(t, &env{p: p}, a, wire.Batch{TillID: a.id, Entries: []wire.Entry{{Entry: pend[1].Entry, Prev: pend[1].Prev}}}); res.Results[0].Status != wire.Applied {
		t.Fatalf("the overtaking batch: %+v", res.Results)
	}
	a.st.Close()
	a2 := newTill(t, h, p, a.id, "S001", time.Minute)
	if err := a2.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	a2.sell(t, card13, powder("1"), "")
	if err := a2.c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	ts, err := h.srv.Tills(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es := a2.journal(t)
	for _, s := range ts {
		if s.TillID == a.id && (s.Waiting != 0 || s.FoldedThrough != es[len(es)-1].ID) {
			t.Errorf("tills report after the restart of the chain: %+v, want nothing waiting and the new store's last entry folded", s)
		}
	}
	var unfolded int
	if err := h.srv.DB().QueryRow(ctx, `SELECT count(*) FROM journal WHERE till_id = $1 AND NOT folded AND rejected = ''`, a.id).Scan(&unfolded); err != nil {
		t.Fatal(err)
	}
	if unfolded != 0 {
		t.Errorf("%d entries of the old store left unfolded, neither folded nor kept as rejected", unfolded)
	}
	acc, err := h.srv.Accruals(ctx, demoNow.Add(-time.Hour), demoNow.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if acc.Unfolded.Entries != 0 {
		t.Errorf("accruals report: %d entries unfolded (%s points), want none: nothing can ever fold them", acc.Unfolded.Entries, acc.Unfolded.Points)
	}
}
