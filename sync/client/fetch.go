package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// ErrCardUnknown: head office does not hold the card either.
var ErrCardUnknown = errors.New("head office does not know the card")

// ErrUnreachable: the last cycle got no answer from head office and
// something tried it within Options.FetchProbe, so a card is not asked for
// (the cashier is not kept waiting on a dead link).
var ErrUnreachable = errors.New("head office did not answer the last sync")

// ErrNotLoaded: the till's first load from head office (a new till, its
// store replaced, its feed reset) is running, or has not run and the card could not be
// taken without the programs it brings. Ask again once it is done.
var ErrNotLoaded = errors.New("the till's first load from head office has not finished")

// ErrCycleRunning: a sync cycle (a feed page being imported, a push) held
// the replica for longer than the fetch could wait: head office is up,
// ask again in a moment.
var ErrCycleRunning = errors.New("a sync cycle is running")

// refetchKey (sync_state) is set from a feed reset or a watermark that
// went back (head office restored from a backup) until every card the
// till holds has been asked for again, once the replica is loaded: the
// card code done up to, as JSON ({"after": code}).
const refetchKey = "refetch_cards"

// lostKey (sync_state) holds the cards the till holds that head office no
// longer knew when asked again after its restore (created after its
// backup), as JSON ({"codes": [...], "since": time}): asked for again now
// and then (Options.LostRetry) until head office has them back (ERP sends
// again what it sent since the backup) and makes them home again, for at
// most lostFor.
const lostKey = "refetch_lost"

// lostFor is how long cards head office lost are asked for again.
const lostFor = 7 * 24 * time.Hour

// lostCards is lostKey's value.
type lostCards struct {
	Codes []string  `json:"codes"`
	Since time.Time `json:"since"`
}

// Unreachable reports whether the last cycle got no feed: head office
// unreachable or failing, not merely refusing entries.
func (s Status) Unreachable() bool { return s.unreached }

func (c *Client) unreachable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.unreached
}

// fetchesOff reports whether head office answered that it takes no card
// fetches (serve -card-fetch=false).
func fetchesOff(err error) bool {
	var ae *AnswerError
	return errors.As(err, &ae) && ae.Status == http.StatusForbidden && !ae.Plain
}

// FetchCard asks head office for a card the till's replica lacks (a
// customer of another store on a store of the `home` card scope, or a card
// issued since the last delta) and imports it with its live lots. Head
// office makes the card home to the till's store, so its later changes
// come with the deltas. The cycle lock is held from the request to the
// import: a delta imported in between could carry a newer state of the
// card that this answer would then take back.
func (c *Client) FetchCard(ctx context.Context, code string) error {
	if !store.ValidID(code) {
		// No replica, head office's included, holds such a code: a bad
		// scan or a mistyped code, not worth a request.
		return fmt.Errorf("fetch card %q: no card has such a code (1-64 of A-Z a-z 0-9 _ . : / -): %w", code, ErrCardUnknown)
	}
	probed := func() bool {
		return c.unreachable() && time.Now().UnixNano()-c.tried.Load() < int64(c.o.FetchProbe)
	}
	if probed() {
		return ErrUnreachable // before waiting for a cycle stuck on the dead link
	}
	if st := c.Status(); st.Loading {
		// Not waited for: a first load of a chain's cards takes minutes,
		// hours on a slow link, and brings the card if the store gets it.
		return fmt.Errorf("fetch card %s: the first load is running (%d cards so far): %w", code, st.LoadedCards, ErrNotLoaded)
	}
	if err := c.lockCycle(ctx); err != nil {
		var be *BusyError
		if errors.As(err, &be) {
			return fmt.Errorf("fetch card %s: the sync cycle running since %s holds the replica, not waited for longer: %w", code, be.Since.Format(time.TimeOnly), ErrCycleRunning)
		}
		return err
	}
	defer c.unlockCycle()
	if probed() {
		return ErrUnreachable // the cycle just ended found no head office
	}
	c.tried.Store(time.Now().UnixNano())
	a, st, err := c.fetch(ctx, []string{code})
	switch {
	case err != nil:
		return fmt.Errorf("fetch card %s: %w", code, err)
	case slices.Contains(a.Unknown, code):
		return fmt.Errorf("fetch card %s: %w", code, ErrCardUnknown)
	case len(a.Unreadable) > 0:
		return fmt.Errorf("fetch card %s: head office's record of it does not decode (%s: %s)", code, a.Undecoded[0].Key, a.Undecoded[0].Error)
	case st.Cards == 0 && !c.Status().ReplicaLoaded:
		return fmt.Errorf("fetch card %s: its record was refused, as the programs it needs are not loaded yet: %w", code, ErrNotLoaded)
	case st.Cards == 0:
		return fmt.Errorf("fetch card %s: head office's record of it was refused (see the rejected records in sync status)", code)
	}
	c.log.Info("card fetched from head office", "card", code, "lots", st.Lots)
	return nil
}

// fetch asks head office for the cards and imports its answer (under the
// cycle lock).
func (c *Client) fetch(ctx context.Context, codes []string) (*wire.CardAnswer, store.ImportStats, error) {
	body, err := json.Marshal(map[string][]string{"codes": codes})
	if err != nil {
		return nil, store.ImportStats{}, err
	}
	data, err := c.do(ctx, http.MethodPost, "/v1/till/cards", nil, body)
	if err != nil {
		return nil, store.ImportStats{}, err
	}
	a, err := wire.DecodeCardAnswer(data, codes)
	if err != nil {
		return nil, store.ImportStats{}, err
	}
	for _, u := range a.Undecoded {
		c.log.Error("card from head office does not decode: left out", "record", u.Section+" "+u.Key, "err", u.Error)
	}
	// A card with a record that does not decode is left out whole, not
	// held back as a feed's would be: no feed need ever send it again.
	// It stays unknown; the next fetch asks again.
	r := *a.Replica
	left := func(card string) bool { return slices.Contains(a.Unreadable, card) }
	r.Cards = slices.DeleteFunc(slices.Clone(r.Cards), func(x store.ReplicaCard) bool { return left(x.Code) })
	r.Lots = slices.DeleteFunc(slices.Clone(r.Lots), func(x store.ReplicaLot) bool { return left(x.Card) })
	st, err := c.importFeed(ctx, &wire.Feed{Replica: &r}, false)
	if err != nil {
		return nil, st, err
	}
	c.mu.Lock()
	c.st.CardsFetched += st.Cards
	c.st.ImportedRecs += int64(countStats(st))
	c.mu.Unlock()
	return a, st, nil
}

// refetchShown runs refetch for a cycle whose feed came in. A failure does
// not fail the cycle (a head office without the route would otherwise
// slow every push to the back-off): it is shown in Status.RefetchError,
// and the next cycle goes on from the saved position.
func (c *Client) refetchShown(ctx context.Context) {
	err := c.refetch(ctx)
	if err == nil {
		err = c.refetchLost(ctx)
	}
	if err != nil {
		c.log.Warn("sync: asking head office again for the cards held (it was restored) failed; the next cycle goes on", "err", err)
	}
	c.mu.Lock()
	c.st.RefetchError = ""
	if err != nil {
		c.st.RefetchError = err.Error()
	}
	c.mu.Unlock()
}

// refetch asks head office again for every card the till holds, once the
// replica is loaded after head office was restored (refetchKey): the
// backup may predate some being made home to the store (fetched by a till,
// or assigned by ERP), and the store's tills would hear of those no more.
// Head office makes each home again. The reload brought every card of an
// `all` store, so there one answer ends it. It runs under the cycle lock;
// its position is saved after each answer.
func (c *Client) refetch(ctx context.Context) error {
	raw, err := c.o.Store.SyncState(ctx, refetchKey)
	if err != nil || raw == "" {
		return err
	}
	if cur, err := c.o.Store.SyncState(ctx, cursorKey); err != nil || cur == "" {
		return err // the first load is not done
	}
	var pos struct {
		After string `json:"after"`
	}
	if err := json.Unmarshal([]byte(raw), &pos); err != nil {
		c.log.Error("bad saved position of fetching the cards again: starting over", "value", raw, "err", err)
	}
	n := 0
	var gone []string
	for {
		codes, err := c.o.Store.CardCodes(ctx, pos.After, wire.MaxFetchCards)
		if err != nil || len(codes) == 0 {
			if err == nil {
				break
			}
			return err
		}
		a, _, err := c.fetch(ctx, codes)
		if fetchesOff(err) {
			// Head office turned card fetches off: the store gets only
			// its own cards, by its choice.
			c.log.Warn("head office takes no card fetches: the cards held are not asked for again after its restore", "err", err)
			return c.o.Store.SetSyncState(ctx, refetchKey, "")
		}
		if err != nil {
			return fmt.Errorf("fetch again the cards held before head office was restored (after %q): %w", pos.After, err)
		}
		n += len(codes) - len(a.Unknown)
		if len(a.Unknown) > 0 {
			c.log.Warn("cards the till holds are unknown to head office after its restore: asked for again until it has them", "cards", len(a.Unknown), "first", a.Unknown[0])
			if gone, err = c.addLost(ctx, a.Unknown); err != nil {
				return err
			}
		}
		if a.Scope != "home" {
			break
		}
		pos.After = codes[len(codes)-1]
		b, _ := json.Marshal(pos)
		if err := c.o.Store.SetSyncState(ctx, refetchKey, string(b)); err != nil {
			return err
		}
	}
	c.log.Info("cards held before head office was restored fetched again", "cards", n, "unknown_to_it", len(gone))
	return c.o.Store.SetSyncState(ctx, refetchKey, "")
}

// addLost adds codes to the lost cards (lostKey) and returns them all.
func (c *Client) addLost(ctx context.Context, codes []string) ([]string, error) {
	l, err := c.lost(ctx)
	if err != nil {
		return nil, err
	}
	if len(l.Codes) == 0 {
		l.Since = time.Now()
	}
	l.Codes = slices.Compact(slices.Sorted(slices.Values(append(l.Codes, codes...))))
	return l.Codes, c.saveLost(ctx, l)
}

func (c *Client) lost(ctx context.Context) (lostCards, error) {
	var l lostCards
	raw, err := c.o.Store.SyncState(ctx, lostKey)
	if err != nil || raw == "" {
		return l, err
	}
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		c.log.Error("bad saved list of cards head office lost: dropped", "value", raw, "err", err)
		return lostCards{}, nil
	}
	return l, nil
}

func (c *Client) saveLost(ctx context.Context, l lostCards) error {
	v := ""
	if len(l.Codes) > 0 {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		v = string(b)
	}
	return c.o.Store.SetSyncState(ctx, lostKey, v)
}

// refetchLost asks head office again, at most once an Options.LostRetry,
// for the cards it did not know when asked after its restore: those it has
// again are imported and made home again (FetchCards), the others wait
// for the next time; after lostFor they are given up (logged).
func (c *Client) refetchLost(ctx context.Context) error {
	l, err := c.lost(ctx)
	if err != nil || len(l.Codes) == 0 {
		return err
	}
	if time.Since(l.Since) > lostFor {
		c.log.Warn("cards head office lost in its restore are asked for no more", "cards", len(l.Codes), "first", l.Codes[0], "since", l.Since)
		return c.saveLost(ctx, lostCards{})
	}
	now := time.Now().UnixNano()
	if now-c.lostTried.Load() < int64(c.o.LostRetry) {
		return nil
	}
	c.lostTried.Store(now)
	var still []string
	for chunk := range slices.Chunk(l.Codes, wire.MaxFetchCards) {
		a, _, err := c.fetch(ctx, chunk)
		if fetchesOff(err) {
			return c.saveLost(ctx, lostCards{}) // card fetches turned off
		}
		if err != nil {
			return fmt.Errorf("ask again for the %d cards head office lost in its restore: %w", len(l.Codes), err)
		}
		still = append(still, a.Unknown...)
	}
	if back := len(l.Codes) - len(still); back > 0 {
		c.log.Info("cards head office lost in its restore are back there", "cards", back)
	}
	l.Codes = still
	return c.saveLost(ctx, l)
}
