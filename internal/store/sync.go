package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"tillagent/checkout"
)

// PendingEntry is an entry the sync loop is to push (unacknowledged, or
// after the re-push position, see RepushAfter) with the id of the entry
// written just before it ("" for the first), acknowledged or not: head
// office folds a till's entries along this chain, so a gap (a batch lost or
// overtaken) can never move the watermark past an entry it does not have.
type PendingEntry struct {
	Entry
	Prev string
}

// PendingChain returns up to limit entries to push in append order, each
// with its predecessor's id: the unacknowledged ones and, while a re-push
// is asked (RepushAfter), every entry after the re-push position,
// acknowledged or not.
func (s *Store) PendingChain(ctx context.Context, limit int) ([]PendingEntry, error) {
	after, active, err := s.Repush(ctx)
	if err != nil {
		return nil, err
	}
	var es []Entry
	if active {
		// The re-push range starts at the seq of its first id (ids and seqs
		// of this till grow together), so each part reads by an index:
		// unacknowledged entries before it, then the seq range from it.
		lo, hi := s.repushBounds(after)
		var from int64
		err = s.r.QueryRowContext(ctx, `SELECT coalesce((SELECT seq FROM journal WHERE id > ? AND id < ? ORDER BY id LIMIT 1),
			(SELECT coalesce(max(seq), 0) + 1 FROM journal))`, lo, hi).Scan(&from)
		if err != nil {
			return nil, fmt.Errorf("pending journal: re-push after %q: %w", after, err)
		}
		es, err = s.entries(ctx, `WHERE j.seq IN (
				SELECT seq FROM (SELECT seq FROM journal WHERE acked = 0 AND seq < ?1 ORDER BY seq LIMIT ?4)
				UNION ALL
				SELECT seq FROM (SELECT seq FROM journal WHERE seq >= ?1 AND (acked = 0 OR (id > ?2 AND id < ?3)) ORDER BY seq LIMIT ?4)
			) ORDER BY j.seq LIMIT ?4`, from, lo, hi, limit)
	} else {
		es, err = s.Pending(ctx, limit)
	}
	if err != nil {
		return nil, err
	}
	// An entry after those PruneJournal dropped may have the last of them
	// for its predecessor (only once head office was restored from a
	// backup older than it promised: else the predecessor is kept). Named
	// so, it keeps head office from folding it over the gap as if nothing
	// were missing (JournalKept.Lost).
	dropped, err := s.SyncState(ctx, journalPrunedThroughKey)
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
		if dropped < e.ID {
			out[i].Prev = max(out[i].Prev, dropped)
		}
	}
	return out, nil
}

// PendingCount is the number of entries PendingChain has to push (the sync
// backlog): the unacknowledged ones and those of a re-push.
func (s *Store) PendingCount(ctx context.Context) (int, error) {
	after, active, err := s.Repush(ctx)
	if err != nil {
		return 0, err
	}
	q, args := `SELECT count(*) FROM journal WHERE acked = 0`, []any{}
	if active {
		lo, hi := s.repushBounds(after)
		q, args = `SELECT (SELECT count(*) FROM journal WHERE acked = 0) +
			(SELECT count(*) FROM journal WHERE id > ? AND id < ? AND acked = 1)`, []any{lo, hi}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store %s: count pending journal: %w", s.path, err)
	}
	return n, nil
}

// repushStateKey holds the re-push position as JSON {"after": id}; no row
// means no re-push ("" is a position: everything).
const repushStateKey = "journal_repush"

type repushState struct {
	After string `json:"after"`
}

// RepushAfter asks the sync loop to push again every entry of this till
// after the journal id after ("" = all of them), acknowledged or not, in
// append order: head office restored from a backup has lost the entries it
// had acknowledged after its watermark (after), and the journal rows are
// append-only, so their acked flag cannot go back. PendingChain offers them
// until AdvanceRepush has recorded head office's acknowledgement past the
// last of them; with no entry after after there is nothing to send again
// and none is asked. It changes no balance: that follows the replica's
// watermark alone (loadCard).
func (s *Store) RepushAfter(ctx context.Context, after string) error {
	if after != "" {
		rest, ok := strings.CutPrefix(after, s.tillID+"-")
		if _, _, _, err := decodeULID(rest); !ok || err != nil {
			return fmt.Errorf("store %s: re-push after %q: not a journal id of till %s", s.path, after, s.tillID)
		}
	}
	lo, hi := s.repushBounds(after)
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM journal WHERE id > ? AND id < ? LIMIT 1`, lo, hi).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		// Head office has the whole journal: nothing to send again.
		return s.endRepush(ctx)
	}
	if err != nil {
		return fmt.Errorf("store %s: re-push after %q: %w", s.path, after, err)
	}
	b, err := json.Marshal(repushState{After: after})
	if err != nil {
		return err
	}
	return s.SetSyncState(ctx, repushStateKey, string(b))
}

func (s *Store) endRepush(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sync_state WHERE key = ?`, repushStateKey); err != nil {
		return fmt.Errorf("store %s: end re-push: %w", s.path, err)
	}
	return nil
}

// Repush returns the re-push position and whether a re-push is asked.
func (s *Store) Repush(ctx context.Context) (after string, active bool, err error) {
	raw, err := s.SyncState(ctx, repushStateKey)
	if err != nil || raw == "" {
		return "", false, err
	}
	var st repushState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return "", false, fmt.Errorf("store %s: saved re-push position %q: %w", s.path, raw, err)
	}
	return st.After, true, nil
}

// AdvanceRepush moves the re-push position over the entries right after it
// that head office has just acknowledged (acked: the ids of a batch it
// answered applied or duplicate), and ends the re-push once the position
// reaches the last entry. Entries after an unacknowledged one stay in the
// re-push (sent again, answered duplicate). No re-push asked: nothing to do.
func (s *Store) AdvanceRepush(ctx context.Context, acked []string) error {
	after, active, err := s.Repush(ctx)
	if err != nil || !active || len(acked) == 0 {
		return err
	}
	set := make(map[string]bool, len(acked))
	for _, id := range acked {
		set[id] = true
	}
	lo, hi := s.repushBounds(after)
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM journal WHERE id > ? AND id < ? ORDER BY id LIMIT ?`, lo, hi, len(acked)+1)
	if err != nil {
		return fmt.Errorf("store %s: advance re-push after %q: %w", s.path, after, err)
	}
	pos, end := after, true
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("store %s: advance re-push after %q: %w", s.path, after, err)
		}
		if !set[id] {
			end = false
			break
		}
		pos = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store %s: advance re-push after %q: %w", s.path, after, err)
	}
	if end {
		// Nothing after pos is left to send again; entries written from
		// now on are unacknowledged anyway.
		if err := s.endRepush(ctx); err != nil {
			return err
		}
		s.log.Info("journal re-push complete", "through", pos)
		return nil
	}
	if pos == after {
		return nil
	}
	return s.RepushAfter(ctx, pos)
}

// repushBounds are the journal ids a re-push after after covers: this
// till's ids above after.
func (s *Store) repushBounds(after string) (lo, hi string) {
	lo, hi = s.tillID+"-", s.tillID+"."
	if after > lo {
		lo = after
	}
	return lo, hi
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

// CardCodes returns the codes of at most limit cards the replica holds
// after the code after, in byte order.
func (s *Store) CardCodes(ctx context.Context, after string, limit int) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT code FROM cards WHERE code > ? ORDER BY code LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store %s: list cards after %q: %w", s.path, after, err)
	}
	defer rows.Close()
	var codes []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("store %s: list cards after %q: %w", s.path, after, err)
		}
		codes = append(codes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store %s: list cards after %q: %w", s.path, after, err)
	}
	return codes, nil
}

// HasEntriesIn reports whether the journal holds an entry with an id in
// (lo, hi]: one of this till's own between two watermarks.
func (s *Store) HasEntriesIn(ctx context.Context, lo, hi string) (bool, error) {
	var has bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM journal WHERE id > ? AND id <= ?)`, lo, hi).Scan(&has); err != nil {
		return false, fmt.Errorf("store %s: journal between %q and %q: %w", s.path, lo, hi, err)
	}
	return has, nil
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

// Reasons OfflineCap and OfflineRedeemLimit give when an offline rule binds.
const (
	OfflineCardCap = "offline_card_cap"
	OfflineTillCap = "offline_till_cap"
	OfflineTooLong = "offline_too_long"
	// OfflineFirstLoad: the till syncs with head office, but no feed has
	// brought it the rules yet (its first load is pending, in progress or
	// was cut off). It redeems nothing meanwhile: the cards of the pages
	// already loaded would otherwise spend without any cap.
	OfflineFirstLoad = "offline_first_load"
	offlineStateKey  = "offline_limits"
	clockStateKey    = "offline_clock"
	printerClockKey  = "offline_printer_clock"
	contactStateKey  = "last_feed_at"
)

type savedLimits struct {
	OfflineLimits
	FeedAt time.Time `json:"feed_at"`
	// JournalSeq is the journal's last seq when the feed was saved (nil in
	// limits saved before it was recorded): later entries were written
	// after the feed.
	JournalSeq *int64 `json:"journal_seq,omitempty"`
}

// clockMark is the latest time the till's clock showed since the feed of
// FeedAt (MarkClock).
type clockMark struct {
	FeedAt time.Time `json:"feed_at"`
	SeenMS int64     `json:"seen_ms"` // Unix milliseconds
}

// printerMark pairs a reading of the fiscal printer's own clock with the
// offline age's time then (MarkPrinterClock): the printer's clock keeps
// running while the agent is stopped, so it measures how long it was.
type printerMark struct {
	SeenMS    int64 `json:"seen_ms"`    // the offline age's time, Unix ms
	PrinterMS int64 `json:"printer_ms"` // the printer's clock, its wall time read as UTC, Unix ms
}

// SaveOfflineLimits records the limits of a feed imported at feedAt (the
// sync loop calls it after every successful pull). The feed's time is
// saved as the offline age's time (offlineState.now), never earlier: a
// feed taken while the clock is set back is as young as it really is.
func (s *Store) SaveOfflineLimits(ctx context.Context, l OfflineLimits, feedAt time.Time) error {
	st, err := s.readOfflineState(ctx)
	if err != nil {
		return fmt.Errorf("store %s: save offline limits: %w", s.path, err)
	}
	feedAt = st.now(feedAt, &s.seen)
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM journal`).Scan(&seq); err != nil {
		return fmt.Errorf("store %s: save offline limits: %w", s.path, err)
	}
	b, err := json.Marshal(savedLimits{OfflineLimits: l, FeedAt: feedAt, JournalSeq: &seq})
	if err != nil {
		return err
	}
	return s.SetSyncState(ctx, offlineStateKey, string(b))
}

// offlineState is what the offline rules are judged on, read in one
// statement: the saved limits (ok false when none), the clock mark and the
// last journal entry's seq and time (seq 0: an empty journal).
type offlineState struct {
	limits   savedLimits
	ok       bool
	mark     clockMark
	printer  printerMark // zero: never read
	lastSeq  int64
	lastTime time.Time
}

func (s *Store) readOfflineState(ctx context.Context) (offlineState, error) {
	var st offlineState
	var lim, mark, printer sql.NullString
	var seq, ms sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT value FROM sync_state WHERE key = ?), (SELECT value FROM sync_state WHERE key = ?),
		(SELECT value FROM sync_state WHERE key = ?),
		(SELECT seq FROM journal ORDER BY seq DESC LIMIT 1), (SELECT created_ms FROM journal ORDER BY seq DESC LIMIT 1)`,
		offlineStateKey, clockStateKey, printerClockKey).Scan(&lim, &mark, &printer, &seq, &ms)
	if err != nil {
		return st, fmt.Errorf("store %s: read offline state: %w", s.path, err)
	}
	if lim.String != "" {
		if err := json.Unmarshal([]byte(lim.String), &st.limits); err != nil {
			return st, fmt.Errorf("store %s: saved offline limits %q: %w", s.path, lim.String, err)
		}
		st.ok = true
	}
	if mark.String != "" {
		if err := json.Unmarshal([]byte(mark.String), &st.mark); err != nil {
			return st, fmt.Errorf("store %s: saved clock mark %q: %w", s.path, mark.String, err)
		}
	}
	if printer.String != "" {
		if err := json.Unmarshal([]byte(printer.String), &st.printer); err != nil {
			return st, fmt.Errorf("store %s: saved printer clock %q: %w", s.path, printer.String, err)
		}
	}
	if seq.Valid {
		st.lastSeq, st.lastTime = seq.Int64, time.UnixMilli(ms.Int64)
	}
	return st, nil
}

// now is the moment the offline age is measured at: the latest of the
// wall clock and of the latest time seen (the wall clock's readings in this
// process and the durable times: the feed, the last MarkClock since it, the
// last journal entry written after it) plus the monotonic time elapsed
// since that was seen. A till's clock can be set back (by hand, a bad NTP
// source, a dead RTC battery), even right after a feed and across a
// restart; the monotonic clock cannot, so the age keeps growing at the
// real rate from the last time anything durable recorded. Feed times and
// clock marks are saved in this same time (SaveOfflineLimits, MarkClock),
// so a feed taken while the clock is behind is young, not already old.
func (st offlineState) now(clock time.Time, seen *monotonic) time.Time {
	l := st.limits
	latest := clock
	if l.FeedAt.After(latest) {
		latest = l.FeedAt
	}
	if at := time.UnixMilli(st.mark.SeenMS); st.mark.FeedAt.Equal(l.FeedAt) && at.After(latest) {
		latest = at
	}
	if l.JournalSeq != nil && st.lastSeq > *l.JournalSeq && st.lastTime.After(latest) {
		latest = st.lastTime
	}
	return seen.since(latest)
}

// monotonic carries the latest time seen forward on the monotonic clock
// (offlineState.now).
type monotonic struct {
	elapsed func() time.Duration
	mu      sync.Mutex
	at      time.Time     // the latest time seen...
	atMono  time.Duration // ...and elapsed() when it was seen
	ok      bool
}

// since records t if it is later than the time carried forward, and
// returns the later of the two.
func (m *monotonic) since(t time.Time) time.Time {
	e := m.elapsed()
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.at.Add(e - m.atMono); !m.ok || t.After(cur) {
		m.at, m.atMono, m.ok = t, e, true
	}
	return m.at.Add(e - m.atMono)
}

// MarkClock records the offline age's time at now (offlineState.now) as
// seen since the last feed, if it is later than the one recorded. The sale
// flow calls it before each redemption and once a minute, so a clock set
// back is caught whether or not the till sold meanwhile, also across a
// restart. Nothing to do before the first feed.
func (s *Store) MarkClock(ctx context.Context, now time.Time) error {
	return s.MarkPrinterClock(ctx, now, time.Time{})
}

// MarkPrinterClock is MarkClock with printer, the fiscal printer's own
// clock read at now (zero: not read). The printer's clock is a stopwatch:
// the time it moved on since its last reading is added to the offline
// age's time of that reading, so time the agent was stopped counts even
// when the till's clock was set back meanwhile (only setting both back
// hides it). Only the difference between two readings counts, so a
// printer clock in another zone, or minutes off, changes nothing; one set
// forward adds that much to the age once (the safe side), one set back
// adds nothing.
func (s *Store) MarkPrinterClock(ctx context.Context, now, printer time.Time) error {
	st, err := s.readOfflineState(ctx)
	if err != nil || !st.ok {
		return err
	}
	p := printer.UnixMilli()
	if !printer.IsZero() && st.printer.PrinterMS != 0 && p > st.printer.PrinterMS {
		if ran := time.UnixMilli(st.printer.SeenMS + p - st.printer.PrinterMS); ran.After(now) {
			now = ran
		}
	}
	ms := st.now(now, &s.seen).UnixMilli()
	if !printer.IsZero() {
		b, _ := json.Marshal(printerMark{SeenMS: ms, PrinterMS: p})
		if err := s.SetSyncState(ctx, printerClockKey, string(b)); err != nil {
			return err
		}
	}
	if ms <= st.limits.FeedAt.UnixMilli() || st.mark.FeedAt.Equal(st.limits.FeedAt) && ms <= st.mark.SeenMS {
		return nil
	}
	return s.saveMark(ctx, clockMark{FeedAt: st.limits.FeedAt, SeenMS: ms})
}

// saveMark saves m unless the saved mark is for the same feed and later:
// two marks racing never take it back.
func (s *Store) saveMark(ctx context.Context, m clockMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO sync_state(key, value) VALUES (?1, ?2)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value
		WHERE json_extract(value, '$.feed_at') IS NOT json_extract(?2, '$.feed_at')
		   OR json_extract(value, '$.seen_ms') < json_extract(?2, '$.seen_ms')`,
		clockStateKey, string(b))
	if err != nil {
		return fmt.Errorf("store %s: save clock mark: %w", s.path, err)
	}
	return nil
}

// feedAge is how old the saved limits' feed is at now, measured on the
// offline age's clock (offlineState.now), never below 0.
func (s *Store) feedAge(st offlineState, now time.Time) time.Duration {
	return max(st.now(now, &s.seen).Sub(st.limits.FeedAt), 0)
}

// OfflineCap is the most points card code may redeem on this till at now
// under head office's offline rules alone, whatever the card holds, and
// the rule that binds ("" and zero when none does). The rules are those of
// the last feed (SaveOfflineLimits): nothing once the feed is older than
// the maximum age (OfflineTooLong, measured at offlineState.now), else the
// card cap less this till's redemptions on the card after the replica's
// watermark (OfflineCardCap) or the till cap less its redemptions on all
// cards after it (OfflineTillCap), whichever is smaller. Offline spending
// is what head office has not folded yet; with k tills each held to
// CardCap, a card can be overdrawn by at most (k−1) × CardCap. With no
// rules saved, a till that syncs (its first load has not brought them)
// may redeem nothing (OfflineFirstLoad), and one that does not (the
// standalone demo) has no offline rules.
func (s *Store) OfflineCap(ctx context.Context, code string, now time.Time, syncs bool) (decimal.Decimal, string, error) {
	st, err := s.readOfflineState(ctx)
	if err != nil {
		return decimal.Zero, "", fmt.Errorf("offline cap of card %s: %w", code, err)
	}
	switch l := st.limits; {
	case !st.ok && syncs:
		return decimal.Zero, OfflineFirstLoad, nil
	case !st.ok:
		return decimal.Zero, "", nil
	case l.MaxAge > 0 && s.feedAge(st, now) > l.MaxAge:
		return decimal.Zero, OfflineTooLong, nil
	case !l.CardCap.IsPositive() && !l.TillCap.IsPositive():
		return decimal.Zero, "", nil
	}
	card, all, err := s.unfoldedRedeemed(ctx, code)
	if err != nil {
		return decimal.Zero, "", fmt.Errorf("offline cap of card %s: %w", code, err)
	}
	limit, reason := decimal.Zero, ""
	bind := func(capacity, used decimal.Decimal, why string) {
		if !capacity.IsPositive() {
			return
		}
		// On a tie the card cap, evaluated first, is named.
		if left := decimal.Max(capacity.Sub(used), decimal.Zero); reason == "" || left.LessThan(limit) {
			limit, reason = left, why
		}
	}
	bind(st.limits.CardCap, card, OfflineCardCap)
	bind(st.limits.TillCap, all, OfflineTillCap)
	return limit, reason, nil
}

// OfflineRedeemLimit is the most points card code may redeem at now on a
// till that syncs with head office: its spendable points, lowered by
// OfflineCap, and the rule that bound it ("" when none did). Before any
// feed it is 0 (OfflineFirstLoad). The sale flow asks OfflineCap itself,
// with whether the till syncs.
func (s *Store) OfflineRedeemLimit(ctx context.Context, code string, now time.Time) (decimal.Decimal, string, error) {
	b, err := s.Spendable(ctx, code, now)
	if err != nil {
		return decimal.Zero, "", err
	}
	limit := b.Spendable.Decimal()
	capped, reason, err := s.OfflineCap(ctx, code, now, true)
	if err != nil {
		return decimal.Zero, "", err
	}
	switch {
	case reason == OfflineTooLong || reason == OfflineFirstLoad:
		return decimal.Zero, reason, nil
	case reason != "" && capped.LessThan(limit):
		return capped, reason, nil
	}
	return limit, "", nil
}

// OfflineStatus is the offline rules in force on the till (for status and
// metrics): head office's caps from the last feed, how old that feed is on
// the offline age's clock (offlineState.now), whether no card may redeem
// at all (Blocked: OfflineTooLong, OfflineFirstLoad, or OfflineTillCap used
// up) and how much of the till cap the redemptions head office has not
// folded yet use.
type OfflineStatus struct {
	// Rules: a feed has saved head office's rules (none: a standalone
	// till, or one that syncs before its first feed).
	Rules    bool            `json:"rules"`
	CardCap  decimal.Decimal `json:"card_cap"` // 0: no cap
	TillCap  decimal.Decimal `json:"till_cap"` // 0: no cap
	MaxAge   time.Duration   `json:"-"`
	MaxAgeS  float64         `json:"max_age_s"` // 0: no maximum
	FeedAt   time.Time       `json:"feed_at,omitzero"`
	AgeS     float64         `json:"feed_age_s"`
	Blocked  string          `json:"redeem_blocked,omitempty"`
	TillUsed decimal.Decimal `json:"till_cap_used"`
	// TillLeft is what the till cap leaves all cards together (with a
	// till cap only).
	TillLeft *decimal.Decimal `json:"till_cap_left,omitempty"`
}

// OfflineStatus reads the offline rules in force at now on a till that
// syncs (syncs) or not, judged as OfflineCap judges them.
func (s *Store) OfflineStatus(ctx context.Context, now time.Time, syncs bool) (OfflineStatus, error) {
	var out OfflineStatus
	st, err := s.readOfflineState(ctx)
	if err != nil {
		return out, err
	}
	_, used, err := s.unfoldedRedeemed(ctx, "")
	if err != nil {
		return out, fmt.Errorf("store %s: offline status: %w", s.path, err)
	}
	out.TillUsed = used
	if !st.ok {
		if syncs {
			out.Blocked = OfflineFirstLoad
		}
		return out, nil
	}
	l := st.limits
	out.Rules, out.CardCap, out.TillCap, out.MaxAge, out.FeedAt = true, l.CardCap, l.TillCap, l.MaxAge, l.FeedAt
	out.MaxAgeS = l.MaxAge.Seconds()
	age := s.feedAge(st, now)
	out.AgeS = age.Truncate(time.Second).Seconds()
	if l.MaxAge > 0 && age > l.MaxAge {
		out.Blocked = OfflineTooLong
	}
	if l.TillCap.IsPositive() {
		left := decimal.Max(l.TillCap.Sub(used), decimal.Zero)
		out.TillLeft = &left
		if out.Blocked == "" && left.IsZero() {
			out.Blocked = OfflineTillCap // used up: no card may redeem until head office folds
		}
	}
	return out, nil
}

// HeadOfficeFeeds names what shows that head office feeds this store's
// replica ("" when nothing does): a feed cursor, a paged delta or first
// load under way, or the offline limits of a feed. The keys are the sync
// loop's (sync/client).
func (s *Store) HeadOfficeFeeds(ctx context.Context) (string, error) {
	for _, k := range []struct{ key, what string }{
		{"feed_cursor", "a replica feed cursor from head office"},
		{"feed_delta", "a paged delta from head office under way"},
		{offlineStateKey, "the offline limits of a feed from head office"},
		{rejectedStateKey, "feed records from head office held back"},
	} {
		v, err := s.SyncState(ctx, k.key)
		if err != nil {
			return "", err
		}
		if v != "" {
			return fmt.Sprintf("%s (sync_state %s)", k.what, k.key), nil
		}
	}
	return "", nil
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

// RejectedRecord is a replica record from head office's feed that the till
// could not take: it failed to decode or to validate, or it belongs to a
// card one of whose records did (a card and its lots are taken or left
// together). Record is the record as sent, kept to be tried again.
type RejectedRecord struct {
	Section string          `json:"section"` // "cards", "lots", "products", ...
	Key     string          `json:"key"`     // `code "2900000000018"`, `id "L-13-1" of card "2900000000018"`
	Error   string          `json:"error"`
	At      time.Time       `json:"at"`
	Record  json.RawMessage `json:"record,omitempty"`
}

const rejectedStateKey = "feed_rejected"

// Rejected returns the feed records the till holds back (saved by
// ImportFeed), oldest first.
func (s *Store) Rejected(ctx context.Context) ([]RejectedRecord, error) {
	raw, err := s.SyncState(ctx, rejectedStateKey)
	if err != nil || raw == "" {
		return nil, err
	}
	var out []RejectedRecord
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, fmt.Errorf("store %s: saved rejected feed records: %w", s.path, err)
	}
	return out, nil
}

// ImportFeed imports a replica feed like Import, but one bad record does
// not keep the rest out: records that fail the replica's validation (the
// same checks as Import, references looked up in the store) are left out
// with their errors, and so is every other record of a card one of whose
// records failed (the card keeps its previous state whole rather than mix
// two). undecoded are records the feed decoder could not read at all. The
// records left out are saved (Rejected) before the rest is imported; a
// record head office sends again replaces its saved copy, and with retry
// (the last page of a pull, when nothing newer can follow) the saved
// copies are tried again along with r, so a record whose reference came
// later goes in then. A problem that names no record (a wrong version, a
// bad watermark) refuses the whole feed.
func (s *Store) ImportFeed(ctx context.Context, r *Replica, undecoded []RejectedRecord, retry bool) (ImportStats, []RejectedRecord, error) {
	now := s.now()
	saved, err := s.Rejected(ctx)
	if err != nil {
		return ImportStats{}, nil, err
	}
	if len(saved) == 0 && len(undecoded) == 0 {
		// The usual case, nothing held back: one validation, inside Import.
		st, err := s.importReplica(ctx, r, true)
		var re *RecordError
		if err == nil || !errors.As(err, &re) {
			if err != nil {
				err = fmt.Errorf("import feed: %w", err)
			}
			return st, nil, err
		}
	}
	att := *r
	sent := feedIdents(&att)
	for _, u := range undecoded {
		sent[u.Section+"\x00"+rawIdent(u.Section, u.Record)] = true
	}
	var keep, again []RejectedRecord
	for _, x := range saved {
		id := rawIdent(x.Section, x.Record)
		if sent[x.Section+"\x00"+id] || (x.Section == "lots" && sent["cards\x00"+lotCard(x.Record)]) {
			continue // head office sent it again: its new state wins
		}
		if retry {
			again = append(again, x)
		} else {
			keep = append(keep, x)
		}
	}
	if len(again) > 0 {
		extra, bad := decodeRecords(again)
		keep = append(keep, bad...)
		att.Stores = append(slices.Clone(att.Stores), extra.Stores...)
		att.Groups = append(slices.Clone(att.Groups), extra.Groups...)
		att.Products = append(slices.Clone(att.Products), extra.Products...)
		att.Programs = append(slices.Clone(att.Programs), extra.Programs...)
		att.Promotions = append(slices.Clone(att.Promotions), extra.Promotions...)
		att.CardKinds = append(slices.Clone(att.CardKinds), extra.CardKinds...)
		att.Cards = append(slices.Clone(att.Cards), extra.Cards...)
		att.Lots = append(slices.Clone(att.Lots), extra.Lots...)
		att.CardKeys = append(slices.Clone(att.CardKeys), extra.CardKeys...)
	}
	exists := s.readExists(ctx)
	var dropped []RejectedRecord
	for round := 0; ; round++ {
		err := att.Validate(exists)
		if err == nil {
			break
		}
		var whole []error
		drop := map[string]map[int]string{} // section → index → error
		var joined interface{ Unwrap() []error }
		errs := []error{err}
		if errors.As(err, &joined) {
			errs = joined.Unwrap()
		}
		for _, e := range errs {
			var re *RecordError
			if !errors.As(e, &re) {
				whole = append(whole, e)
				continue
			}
			if drop[re.Section] == nil {
				drop[re.Section] = map[int]string{}
			}
			if prev := drop[re.Section][re.Index]; prev != "" {
				drop[re.Section][re.Index] = prev + "; " + re.Err.Error()
			} else {
				drop[re.Section][re.Index] = re.Error()
			}
		}
		if len(whole) > 0 || len(drop) == 0 || round > 1000 {
			return ImportStats{}, nil, fmt.Errorf("import feed: %w", err)
		}
		dropped = append(dropped, att.without(drop, now)...)
	}
	rejected := append(append(keep, undecoded...), dropped...)
	for i := range rejected {
		if rejected[i].At.IsZero() {
			rejected[i].At = now
		}
	}
	if len(rejected) > 0 || len(saved) > 0 {
		b, err := json.Marshal(rejected)
		if err != nil {
			return ImportStats{}, nil, err
		}
		if rejected == nil {
			b = []byte("")
		}
		if err := s.SetSyncState(ctx, rejectedStateKey, string(b)); err != nil {
			return ImportStats{}, nil, err
		}
	}
	for _, x := range dropped {
		s.log.Error("feed record rejected", "section", x.Section, "record", x.Key, "err", x.Error)
	}
	before, err := s.FoldedThrough(ctx)
	if err != nil {
		return ImportStats{}, rejected, err
	}
	st, err := s.importReplica(ctx, &att, true)
	if err != nil {
		return st, rejected, fmt.Errorf("import feed: %w", err)
	}
	s.warnStale(ctx, dropped, before, att.FoldedThrough[s.tillID])
	return st, rejected, nil
}

// warnStale logs the refused cards whose balance here now misses entries of
// this till: the new watermark covers them, and the card's lots that
// include them were refused.
func (s *Store) warnStale(ctx context.Context, dropped []RejectedRecord, before, after string) {
	if after == "" || after <= before {
		return
	}
	lo := before
	if lo == "" {
		lo = s.tillID + "-"
	}
	for _, x := range dropped {
		if x.Section != "cards" {
			continue
		}
		code := rawIdent("cards", x.Record)
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM journal WHERE card_code = ? AND id > ? AND id <= ?`,
			code, lo, after).Scan(&n); err == nil && n > 0 {
			s.log.Error("refused card misses this till's folded entries until head office sends it right",
				"card", code, "entries", n, "folded_through", after)
		}
	}
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// readExists answers Validate's look-ups from the committed store (the sync
// loop is the only importer, so Import's own check inside its transaction
// sees the same).
func (s *Store) readExists(ctx context.Context) Exists { return existsIn(ctx, s.r) }

// without removes the records drop names (section → index → error) from r,
// and with a card or lot every record of that card, and returns them.
func (r *Replica) without(drop map[string]map[int]string, at time.Time) []RejectedRecord {
	var out []RejectedRecord
	rec := func(section, key string, v any, why string) {
		b, _ := json.Marshal(v)
		out = append(out, RejectedRecord{Section: section, Key: key, Error: why, At: at, Record: b})
	}
	cardWhy := map[string]string{}
	for i, why := range drop["cards"] {
		if i < len(r.Cards) {
			cardWhy[r.Cards[i].Code] = why
		}
	}
	for i, why := range drop["lots"] {
		if i < len(r.Lots) {
			if _, ok := cardWhy[r.Lots[i].Card]; !ok {
				cardWhy[r.Lots[i].Card] = why
			}
		}
	}
	filter := func(section string, n int, key func(int) string, val func(int) any, keepAt func(int)) {
		for i := 0; i < n; i++ {
			if why, bad := drop[section][i]; bad {
				rec(section, key(i), val(i), why)
				continue
			}
			keepAt(i)
		}
	}
	var stores []ReplicaStore
	filter("stores", len(r.Stores), func(i int) string { return fmt.Sprintf("id %q", r.Stores[i].ID) },
		func(i int) any { return r.Stores[i] }, func(i int) { stores = append(stores, r.Stores[i]) })
	var groups []ReplicaGroup
	filter("groups", len(r.Groups), func(i int) string { return fmt.Sprintf("id %q", r.Groups[i].ID) },
		func(i int) any { return r.Groups[i] }, func(i int) { groups = append(groups, r.Groups[i]) })
	var products []ReplicaProduct
	filter("products", len(r.Products), func(i int) string { return fmt.Sprintf("id %q", r.Products[i].ID) },
		func(i int) any { return r.Products[i] }, func(i int) { products = append(products, r.Products[i]) })
	var programs []checkout.Program
	filter("programs", len(r.Programs), func(i int) string { return fmt.Sprintf("id %q", r.Programs[i].ID) },
		func(i int) any { return r.Programs[i] }, func(i int) { programs = append(programs, r.Programs[i]) })
	var promos []ReplicaPromotion
	filter("promotions", len(r.Promotions), func(i int) string { return fmt.Sprintf("id %q", r.Promotions[i].ID) },
		func(i int) any { return r.Promotions[i] }, func(i int) { promos = append(promos, r.Promotions[i]) })
	var kinds []ReplicaCardKind
	filter("card_kinds", len(r.CardKinds), func(i int) string { return fmt.Sprintf("id %q", r.CardKinds[i].ID) },
		func(i int) any { return r.CardKinds[i] }, func(i int) { kinds = append(kinds, r.CardKinds[i]) })
	var keys []ReplicaCardKey
	filter("card_keys", len(r.CardKeys), func(i int) string { return fmt.Sprintf("id %d", r.CardKeys[i].ID) },
		func(i int) any { return r.CardKeys[i] }, func(i int) { keys = append(keys, r.CardKeys[i]) })
	var cards []ReplicaCard
	for _, c := range r.Cards {
		if why, bad := cardWhy[c.Code]; bad {
			rec("cards", fmt.Sprintf("code %q", c.Code), c, why)
			continue
		}
		cards = append(cards, c)
	}
	var lots []ReplicaLot
	for i, l := range r.Lots {
		if why, bad := cardWhy[l.Card]; bad {
			if own, ok := drop["lots"][i]; ok {
				why = own
			} else {
				why = "left out with its card: " + why
			}
			rec("lots", fmt.Sprintf("id %q of card %q", l.ID, l.Card), l, why)
			continue
		}
		lots = append(lots, l)
	}
	r.Stores, r.Groups, r.Products, r.Programs, r.Promotions = stores, groups, products, programs, promos
	r.CardKinds, r.CardKeys, r.Cards, r.Lots = kinds, keys, cards, lots
	return out
}

// feedIdents are the records r carries, as "section\x00ident".
func feedIdents(r *Replica) map[string]bool {
	m := map[string]bool{}
	add := func(section, id string) { m[section+"\x00"+id] = true }
	for _, x := range r.Stores {
		add("stores", x.ID)
	}
	for _, x := range r.Groups {
		add("groups", x.ID)
	}
	for _, x := range r.Products {
		add("products", x.ID)
	}
	for _, x := range r.Programs {
		add("programs", x.ID)
	}
	for _, x := range r.Promotions {
		add("promotions", x.ID)
	}
	for _, x := range r.CardKinds {
		add("card_kinds", x.ID)
	}
	for _, x := range r.CardKeys {
		add("card_keys", fmt.Sprint(x.ID))
	}
	for _, x := range r.Cards {
		add("cards", x.Code)
	}
	for _, x := range r.Lots {
		add("lots", x.Card+"\x00"+x.ID)
	}
	return m
}

// rawIdent is a raw record's identity within its section, as feedIdents
// names it ("" when it cannot be read).
func rawIdent(section string, raw json.RawMessage) string {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return ""
	}
	str := func(k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return ""
	}
	switch section {
	case "cards":
		return str("code")
	case "lots":
		return str("card") + "\x00" + str("id")
	}
	return str("id")
}

// Card is the card a card or lot record names ("" for other sections, or
// a record that cannot be read).
func (r RejectedRecord) Card() string {
	switch r.Section {
	case "cards":
		return rawIdent("cards", r.Record)
	case "lots":
		return lotCard(r.Record)
	}
	return ""
}

func lotCard(raw json.RawMessage) string {
	id := rawIdent("lots", raw)
	c, _, _ := strings.Cut(id, "\x00")
	return c
}

// decodeRecords turns saved records back into a replica; those that still
// do not decode come back as rejected.
func decodeRecords(recs []RejectedRecord) (*Replica, []RejectedRecord) {
	var r Replica
	var bad []RejectedRecord
	for _, x := range recs {
		var err error
		switch x.Section {
		case "stores":
			err = decodeOne(x.Record, &r.Stores)
		case "groups":
			err = decodeOne(x.Record, &r.Groups)
		case "products":
			err = decodeOne(x.Record, &r.Products)
		case "programs":
			err = decodeOne(x.Record, &r.Programs)
		case "promotions":
			err = decodeOne(x.Record, &r.Promotions)
		case "card_kinds":
			err = decodeOne(x.Record, &r.CardKinds)
		case "card_keys":
			err = decodeOne(x.Record, &r.CardKeys)
		case "cards":
			err = decodeOne(x.Record, &r.Cards)
		case "lots":
			err = decodeOne(x.Record, &r.Lots)
		default:
			err = fmt.Errorf("unknown section %q", x.Section)
		}
		if err != nil {
			bad = append(bad, x)
		}
	}
	return &r, bad
}

// decodeOne decodes one record strictly and appends it to dst.
func decodeOne[T any](raw json.RawMessage, dst *[]T) error {
	var v T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*dst = append(*dst, v)
	return nil
}
