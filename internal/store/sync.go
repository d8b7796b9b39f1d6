package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// PendingEntry is an unacknowledged journal entry with the id of the entry
// written just before it ("" for the first), acknowledged or not: head
// office folds a till's entries along this chain, so a gap (a batch lost or
// overtaken) can never move the watermark past an entry it does not have.
type PendingEntry struct {
	Entry
	Prev string
}

// PendingChain returns up to limit unacknowledged entries in append order,
// each with its predecessor's id.
func (s *Store) PendingChain(ctx context.Context, limit int) ([]PendingEntry, error) {
	es, err := s.Pending(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]PendingEntry, len(es))
	for i, e := range es {
		out[i].Entry = e
		// Ids of this till sort in append order, so the predecessor is the
		// largest id below this one.
		err := s.r.QueryRowContext(ctx, `SELECT id FROM journal WHERE id < ? AND id > ? ORDER BY id DESC LIMIT 1`,
			e.ID, s.tillID+"-").Scan(&out[i].Prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("pending journal: predecessor of %s: %w", e.ID, err)
		}
	}
	return out, nil
}

// PendingCount is the number of unacknowledged entries (the sync backlog).
func (s *Store) PendingCount(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM journal WHERE acked = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store %s: count pending journal: %w", s.path, err)
	}
	return n, nil
}

// SyncState returns a value the sync loop saved ("" when none).
func (s *Store) SyncState(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM sync_state WHERE key = ?`, key).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store %s: read sync state %s: %w", s.path, key, err)
	}
	return v, nil
}

// SetSyncState saves a value of the sync loop (e.g. the feed cursor).
func (s *Store) SetSyncState(ctx context.Context, key, value string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO sync_state(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("store %s: save sync state %s: %w", s.path, key, err)
	}
	return nil
}

// JournalAfter returns up to limit journal entries after the entry with id
// after ("" = from the start), in append order, acknowledged or not: for
// comparing a till's journal with head office's.
func (s *Store) JournalAfter(ctx context.Context, after string, limit int) ([]Entry, error) {
	return s.entries(ctx, `WHERE j.seq > coalesce((SELECT seq FROM journal WHERE id = ?), 0) ORDER BY j.seq LIMIT ?`, after, limit)
}

// OfflineLimits are head office's rules for spending points it has not yet
// seen (published in the replica feed, saved by the sync loop): CardCap is
// the most points one card may redeem on this till beyond the replica's
// watermark, TillCap the most all cards together, MaxAge how long after the
// last feed the till may redeem at all. Zero means no limit. Accrual is
// never limited.
type OfflineLimits struct {
	CardCap decimal.Decimal `json:"card_cap"`
	TillCap decimal.Decimal `json:"till_cap"`
	MaxAge  time.Duration   `json:"max_age_ns"`
}

// Reasons OfflineRedeemLimit gives when an offline rule binds.
const (
	OfflineCardCap  = "offline_card_cap"
	OfflineTillCap  = "offline_till_cap"
	OfflineTooLong  = "offline_too_long"
	offlineStateKey = "offline_limits"
	contactStateKey = "last_feed_at"
)

type savedLimits struct {
	OfflineLimits
	FeedAt time.Time `json:"feed_at"`
}

// SaveOfflineLimits records the limits of a feed imported at feedAt (the
// sync loop calls it after every successful pull).
func (s *Store) SaveOfflineLimits(ctx context.Context, l OfflineLimits, feedAt time.Time) error {
	b, err := json.Marshal(savedLimits{OfflineLimits: l, FeedAt: feedAt})
	if err != nil {
		return err
	}
	return s.SetSyncState(ctx, offlineStateKey, string(b))
}

// OfflineRedeemLimit is the most points card code may redeem at now under
// head office's offline rules, and the rule that bound it ("" when none did:
// the limit is then the card's spendable points). Offline spending is what
// head office has not folded yet: this till's redemptions after the
// replica's watermark. With k tills each held to CardCap, a card can be
// overdrawn by at most (k−1) × CardCap. No rules saved yet (never synced):
// no offline limit.
func (s *Store) OfflineRedeemLimit(ctx context.Context, code string, now time.Time) (decimal.Decimal, string, error) {
	b, err := s.Spendable(ctx, code, now)
	if err != nil {
		return decimal.Zero, "", err
	}
	limit := b.Spendable.Decimal()
	raw, err := s.SyncState(ctx, offlineStateKey)
	if err != nil || raw == "" {
		return limit, "", err
	}
	var l savedLimits
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return decimal.Zero, "", fmt.Errorf("offline limit of card %s: saved limits: %w", code, err)
	}
	if l.MaxAge > 0 && now.Sub(l.FeedAt) > l.MaxAge {
		return decimal.Zero, OfflineTooLong, nil
	}
	card, all, err := s.unfoldedRedeemed(ctx, code)
	if err != nil {
		return decimal.Zero, "", fmt.Errorf("offline limit of card %s: %w", code, err)
	}
	reason := ""
	bind := func(capacity, used decimal.Decimal, why string) {
		if !capacity.IsPositive() {
			return
		}
		if left := decimal.Max(capacity.Sub(used), decimal.Zero); left.LessThan(limit) {
			limit, reason = left, why
		}
	}
	bind(l.CardCap, card, OfflineCardCap)
	bind(l.TillCap, all, OfflineTillCap)
	return limit, reason, nil
}

// unfoldedRedeemed sums the points this till's redemptions after the
// watermark spent: on the card, and on all cards.
func (s *Store) unfoldedRedeemed(ctx context.Context, code string) (card, all decimal.Decimal, err error) {
	wm, err := s.FoldedThrough(ctx)
	if err != nil {
		return card, all, err
	}
	lo, hi := s.tillID+"-", s.tillID+"."
	if wm > lo {
		lo = wm
	}
	rows, err := s.r.QueryContext(ctx, `SELECT card_code, points FROM journal WHERE kind = 'redemption' AND id > ? AND id < ?`, lo, hi)
	if err != nil {
		return card, all, err
	}
	defer rows.Close()
	for rows.Next() {
		var c, p string
		if err := rows.Scan(&c, &p); err != nil {
			return card, all, err
		}
		d, err := parseDec(p, "journal points")
		if err != nil {
			return card, all, err
		}
		all = all.Sub(d)
		if c == code {
			card = card.Sub(d)
		}
	}
	return card, all, rows.Err()
}
