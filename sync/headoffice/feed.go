package headoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// Feed returns every change a till has not seen since cursor in one
// answer ("" = a whole snapshot): FeedPage without a page limit.
func (s *Server) Feed(ctx context.Context, tillID, cursor string) (*wire.Feed, error) {
	return s.FeedPage(ctx, tillID, FeedRequest{Cursor: cursor})
}

// FeedRequest is what a till asks the feed for.
type FeedRequest struct {
	// Cursor is where the delta starts ("" = a whole snapshot).
	Cursor string
	// After is the change the page starts after ("" = the delta's start);
	// Limit the most change records a page holds (0: all, one answer).
	After string
	Limit int
	// Folded is the watermark the till holds now ("" = none), nil when
	// the till did not say: see FeedPage.
	Folded *string
	// Held: the till reads wire.Feed.JournalHeld (journalheld.go); a till
	// that does not would refuse a feed carrying it.
	Held bool
}

// feedTill is what a feed needs to know about the till asking.
type feedTill struct {
	store, folded string
	epoch         int
	allCards      bool   // the store's card scope is "all"
	cursor        string // the next cursor: the snapshot's xmin in the till's epoch
	xmin          uint64 // the snapshot's xmin
	xmax          uint64 // and its xmax: no cursor of this cluster is above it
	// horizon is the feed's (retention.go): a cursor below it may miss
	// pruned changes; 0 while nothing was pruned.
	horizon uint64
}

// readFeedTill reads the till and, in the same statement, the bound of the
// feed transaction's snapshot: every change below it is visible to it.
func readFeedTill(ctx context.Context, tx pgx.Tx, tillID string) (feedTill, error) {
	var t feedTill
	var scope, xmin, xmax, horizon string
	err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text, pg_snapshot_xmax(pg_current_snapshot())::text,
		t.store_id, t.folded_through, t.feed_epoch, coalesce(sc.scope, 'all'),
		coalesce((SELECT oldest::text FROM feed_horizon), '0')
		FROM tills t LEFT JOIN store_card_scope sc ON sc.store_id = t.store_id WHERE t.till_id = $1`, tillID).
		Scan(&xmin, &xmax, &t.store, &t.folded, &t.epoch, &scope, &horizon)
	if err != nil {
		return t, fmt.Errorf("read till: %w", err)
	}
	if t.xmax, err = strconv.ParseUint(xmax, 10, 64); err != nil {
		return t, fmt.Errorf("read the snapshot's xmax %q: %w", xmax, err)
	}
	if t.horizon, err = strconv.ParseUint(horizon, 10, 64); err != nil {
		return t, fmt.Errorf("read the feed's horizon %q: %w", horizon, err)
	}
	if t.xmin, err = strconv.ParseUint(xmin, 10, 64); err != nil {
		return t, fmt.Errorf("read the snapshot's xmin %q: %w", xmin, err)
	}
	t.allCards = scope == ScopeAll
	t.cursor = formatCursor(t.epoch, xmin)
	return t, nil
}

// Cursors are the xid8 bound, prefixed with the till's feed epoch once ERP
// has reset the till's feed ("e2:1234"); epoch 0 is the bare number.
func formatCursor(epoch int, xmin string) string {
	if epoch == 0 {
		return xmin
	}
	return "e" + strconv.Itoa(epoch) + ":" + xmin
}

func parseCursor(c string) (epoch int, xid uint64, err error) {
	num := c
	if rest, ok := strings.CutPrefix(c, "e"); ok {
		e, n, ok := strings.Cut(rest, ":")
		if !ok {
			return 0, 0, fmt.Errorf("bad cursor %q", c)
		}
		if epoch, err = strconv.Atoi(e); err != nil || epoch < 1 {
			return 0, 0, fmt.Errorf("bad cursor %q", c)
		}
		num = n
	}
	if xid, err = strconv.ParseUint(num, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bad cursor %q", c)
	}
	return epoch, xid, nil
}

// The delta's SQL. Both read only the changes from the cursor on, however
// long the change log grows (TestDeltaReadsOnlyTheChangesSinceTheCursor).
const (
	// sqlDeltaStart is where a delta starts: just before its first
	// change ($1: the cursor's xid). The xids are found through their
	// index; min(seq) over the table itself would be planned as a walk
	// along seq from the first change ever, skipping every older one
	// (88 ms a poll at a million changes).
	sqlDeltaStart = `SELECT coalesce(min(seq) - 1, (SELECT coalesce(max(seq), 0) FROM changes))
		FROM (SELECT seq FROM changes WHERE xid >= $1::text::xid8 ORDER BY xid OFFSET 0) AS d`
	// sqlDeltaChanges are the changes after $1 of transactions from the
	// cursor's xid ($2) on that the store ($4; $3: it gets every card)
	// sees, at most $5 (NULL: all).
	sqlDeltaChanges = `SELECT c.seq, c.section, c.key FROM changes c
		WHERE c.seq > $1 AND c.xid >= $2::text::xid8
		AND (c.section = 'cards' AND ($3 OR EXISTS (SELECT 1 FROM card_stores h WHERE h.store_id = $4 AND h.card = c.key))
			OR c.section = 'home/' || $4
			OR (c.section <> 'cards' AND c.section NOT LIKE 'home/%'))
		ORDER BY c.seq LIMIT $5::bigint`
)

// FeedPage returns the changes a till has not seen since cursor as a
// replica delta, with the till's folded_through watermark, at most limit
// change records of them (0: all) after the change after ("" = from the
// start); More and Next say where the next page starts.
//
// Correctness of the cursor: every change row carries the xid8 of the
// transaction that wrote it. A page reads in one REPEATABLE READ snapshot
// and returns the current state of every record with a change of xid >=
// cursor that the snapshot sees; its Cursor is the snapshot's xmin, the
// oldest transaction still running. Every transaction with an xid below
// xmin had finished when the snapshot was taken, so everything it wrote is
// in this feed or an earlier one; a transaction at or above xmin (a long
// one that commits late) is looked at again next time. Nothing is skipped;
// a change may come twice, and applying a record's current state twice is a
// no-op.
//
// Pages: the changes are walked in change-row order (seq), each page in
// its own snapshot, every page asked with the same cursor. The till saves
// the FIRST page's Cursor once the last page is in: a change committed
// after the first page's snapshot belongs to a transaction that was
// running or not yet started then, so its xid is at or above that cursor
// and the next delta reads it, whether or not a later page saw it. A change
// committed before has an xid below it and is visible to every page, so a
// page whose range holds it sends it. The watermark is read in each page's
// snapshot, and each page also carries every card of the till's entries
// after the watermark the till says it holds (req.Folded) up to that one,
// read in the same snapshot: importing the page then leaves every card's
// lots and the watermark describing the same entries — a card those
// entries touched comes with them, any other card holds none of them —
// though the card's own change may lie pages ahead.
//
// Which cards: all of them when the till's store has the card scope "all";
// with "home" only the cards home to the store, and a card becoming home
// later comes with its whole state (change section "home/<store>").
func (s *Server) FeedPage(ctx context.Context, tillID string, req FeedRequest) (*wire.Feed, error) {
	cursor, after, limit := req.Cursor, req.After, req.Limit
	var since uint64
	epoch := 0
	if cursor != "" {
		var err error
		if epoch, since, err = parseCursor(cursor); err != nil {
			return nil, fmt.Errorf("feed for till %s: %w", tillID, err)
		}
	}
	var from int64 = -1
	if after != "" {
		v, err := strconv.ParseInt(after, 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("feed for till %s: bad page position %q", tillID, after)
		}
		from = v
	}
	if cursor == "" && (limit > 0 || after != "") {
		return nil, fmt.Errorf("feed for till %s: a paged delta needs a cursor (the first load is snapshot=1)", tillID)
	}
	off := s.offline
	f := &wire.Feed{Full: cursor == "", Replica: &store.Replica{Version: store.ReplicaFormatVersion}, Offline: &off}
	err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		t, err := readFeedTill(ctx, tx, tillID)
		if err != nil {
			return err
		}
		f.Cursor = t.cursor
		if t.folded != "" {
			f.Replica.FoldedThrough = map[string]string{tillID: t.folded}
		}
		if cursor != "" && epoch != t.epoch {
			// ERP reset this till's feed: its cursor means nothing now.
			// The watermark comes along: after a restore from a backup it
			// is where head office's copy of the till's journal ends, and
			// the till pushes everything after it again.
			f.Reset = true
			return nil
		}
		if cursor != "" && since > t.xmax {
			// A cursor this cluster never gave: head office was restored
			// from a physical backup (its xids start again from the
			// restore point) after the till last synced. The changes
			// written since have xids below it: read from it, the delta
			// would skip them until the counter passed it.
			s.log.Warn("till's feed cursor is ahead of the database (head office restored from a backup since): the till loads its replica afresh", "till", tillID, "cursor", cursor)
			f.Reset = true
			return nil
		}
		if cursor != "" && since < t.horizon {
			// A cursor older than the change log kept (a till silent
			// longer than Options.ChangeRetention): the changes it needs
			// may be gone, and only a fresh load is whole.
			s.log.Warn("till's feed cursor is older than the change log kept: the till loads its replica afresh", "till", tillID, "cursor", cursor)
			f.Reset = true
			return nil
		}
		if req.Held && !f.Full {
			if f.JournalHeld, err = s.journalHeld(ctx, tx, tillID, t.folded); err != nil {
				return err
			}
		}
		if f.Full {
			if err := s.feedCatalog(ctx, tx, f.Replica, `SELECT section, body::text FROM catalog ORDER BY section, id`, nil); err != nil {
				return err
			}
			return s.feedCards(ctx, tx, f.Replica, `SELECT code FROM cards c WHERE $1 OR EXISTS
				(SELECT 1 FROM card_stores h WHERE h.store_id = $2 AND h.card = c.code) ORDER BY code`, []any{t.allCards, t.store})
		}
		sinceText := strconv.FormatUint(since, 10)
		if from < 0 {
			// Start just before the first change of the delta (the xid
			// index finds it), not at the first change ever.
			if err := tx.QueryRow(ctx, sqlDeltaStart, sinceText).Scan(&from); err != nil {
				return fmt.Errorf("find the delta's start: %w", err)
			}
		}
		var lim any
		if limit > 0 {
			lim = limit
		}
		rows, err := tx.Query(ctx, sqlDeltaChanges, from, sinceText, t.allCards, t.store, lim)
		if err != nil {
			return fmt.Errorf("read changes: %w", err)
		}
		var n int
		var last int64
		var secs, ids, codes []string
		seen := map[string]bool{}
		for rows.Next() {
			var section, key string
			if err := rows.Scan(&last, &section, &key); err != nil {
				rows.Close()
				return err
			}
			n++
			if section == "cards" || strings.HasPrefix(section, "home/") {
				section = "cards"
			}
			if seen[section+"\x00"+key] {
				continue
			}
			seen[section+"\x00"+key] = true
			if section == "cards" {
				codes = append(codes, key)
			} else {
				secs, ids = append(secs, section), append(ids, key)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read changes: %w", err)
		}
		if limit > 0 && n == limit {
			f.More, f.Next = true, strconv.FormatInt(last, 10)
		}
		folded, err := foldedCards(ctx, tx, tillID, req.Folded, t.folded)
		if err != nil {
			return err
		}
		for _, c := range folded {
			if !seen["cards\x00"+c] {
				seen["cards\x00"+c] = true
				codes = append(codes, c)
			}
		}
		if len(ids) > 0 {
			if err := s.feedCatalog(ctx, tx, f.Replica, `SELECT section, body::text FROM catalog
				WHERE (section, id) IN (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY section, id`, []any{secs, ids}); err != nil {
				return err
			}
		}
		return s.feedCardCodes(ctx, tx, f.Replica, codes)
	})
	if err != nil {
		return nil, fmt.Errorf("feed for till %s since %q after change %q: %w", tillID, cursor, after, err)
	}
	now := s.now()
	f.Replica.AsOf = &now
	return f, nil
}

// foldedCards are the cards of the till's entries after the watermark the
// till holds (held; nil: the till did not say) up to head office's
// (folded), read in tx: a page carrying folded must carry these cards too,
// or the till would count those entries nowhere (their lots here, the
// watermark past them there) or twice.
func foldedCards(ctx context.Context, tx pgx.Tx, tillID string, held *string, folded string) ([]string, error) {
	if held == nil || folded <= *held {
		return nil, nil
	}
	lo := *held
	if lo == "" {
		lo = tillID + "-"
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT card_code FROM journal WHERE id > $1 AND id <= $2 AND till_id = $3`, lo, folded, tillID)
	if err != nil {
		return nil, fmt.Errorf("read the cards of entries folded since the till's watermark: %w", err)
	}
	codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the cards of entries folded since the till's watermark: %w", err)
	}
	return codes, nil
}

// Snapshot is a whole replica in pages, for a till's first load: the cards
// the till's store may see (with their lots) after the code after, at most
// limit of them, and the whole catalog on the first page. Pages carry no
// watermark (SnapshotPage with Folded does). The first page's cursor is
// the xmin of its snapshot: once every page is imported, a Feed from that
// cursor re-sends every card any later transaction changed (or made home
// to the store), with the watermark, in one snapshot — so pages read at
// different moments end consistent. A card no transaction from the cursor
// on has touched reads the same in every page's snapshot.
func (s *Server) Snapshot(ctx context.Context, tillID, after string, limit int) (*wire.Feed, error) {
	return s.SnapshotPage(ctx, tillID, SnapshotRequest{After: after, Limit: limit})
}

// SnapshotRequest is what a till asks a first-load page for.
type SnapshotRequest struct {
	After string // the card code the page starts after ("" = the first page)
	Limit int    // cards a page holds (0: 5000, at most 20000)
	// Folded is the watermark the till holds ("" = none), nil when the
	// till did not say: see SnapshotPage.
	Folded *string
}

// SnapshotPage is a page of Snapshot. With req.Folded the page also
// carries the till's watermark read in its snapshot and the cards of the
// till's entries after req.Folded up to it: a till that already has a
// journal (its feed reset after a restore, say) then holds, after every
// page, lots and a watermark that describe the same entries of its own —
// without them a page's lots would include entries the till still counts
// from its journal, twice.
//
// An "all"-scope store's page may come from the pages other tills were
// given (pagecache.go), as this page's snapshot reads it; its cards and
// lots are then shared with theirs, to be read only.
func (s *Server) SnapshotPage(ctx context.Context, tillID string, req SnapshotRequest) (*wire.Feed, error) {
	f, _, err := s.snapshotPage(ctx, tillID, req)
	return f, err
}

// snapshotPage is SnapshotPage, with the cached page whose cards and lots
// the feed's replica starts with, whole (nil for none): replyPage sends
// those packed.
func (s *Server) snapshotPage(ctx context.Context, tillID string, req SnapshotRequest) (_ *wire.Feed, shared *cachedPage, _ error) {
	after, limit := req.After, req.Limit
	if limit <= 0 || limit > 20000 {
		limit = 5000
	}
	off := s.offline
	f := &wire.Feed{Full: true, Replica: &store.Replica{Version: store.ReplicaFormatVersion}, Offline: &off}
	key := pageKey{after, limit}
	cached, read := s.pages.lookup(ctx, key) // before the snapshot: see pageCache
	defer func() { s.pages.done(key, read) }()
	err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		t, err := readFeedTill(ctx, tx, tillID)
		if err != nil {
			return err
		}
		f.Cursor = t.cursor
		if after == "" {
			if err := s.feedCatalog(ctx, tx, f.Replica, `SELECT section, body::text FROM catalog ORDER BY section, id`, nil); err != nil {
				return err
			}
		}
		if req.Folded != nil && t.folded != "" {
			f.Replica.FoldedThrough = map[string]string{tillID: t.folded}
		}
		folded, err := foldedCards(ctx, tx, tillID, req.Folded, t.folded)
		if err != nil {
			return err
		}
		var codes []string
		if t.allCards {
			if p := cached; s.pages.usable(p, t.xmin, t.horizon) {
				if p.last != "" {
					f.Next, f.More = p.last, true
				}
				whole, err := s.cachedCardPage(ctx, tx, f.Replica, p, t.xmin, folded)
				if whole {
					shared = p
				}
				return err
			}
			c0, l0 := len(f.Replica.Cards), len(f.Replica.Lots)
			if codes, err = s.feedCardPage(ctx, tx, f.Replica, after, limit); err != nil {
				return err
			}
			var last string
			if len(codes) == limit {
				last = codes[len(codes)-1]
			}
			s.pages.put(key, read, t.xmin, slices.Clip(f.Replica.Cards[c0:]), slices.Clip(f.Replica.Lots[l0:]), last)
		} else {
			// Not a page to share: the tills waiting for it read their own.
			s.pages.done(key, read)
			read = nil
			// The store's home cards, in code order along their key.
			rows, err := tx.Query(ctx, `SELECT card FROM card_stores WHERE store_id = $3 AND card > $1 ORDER BY card LIMIT $2`, after, limit, t.store)
			if err != nil {
				return fmt.Errorf("read cards: %w", err)
			}
			if codes, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return fmt.Errorf("read cards: %w", err)
			}
		}
		if n := len(codes); n == limit {
			f.Next, f.More = codes[n-1], true
		}
		// The cards of the till's entries not on this page are read by code,
		// with a home store's page (an all store's page is in already).
		inPage := make(map[string]bool, len(codes))
		for _, c := range codes {
			inPage[c] = true
		}
		var byCode []string
		if !t.allCards {
			byCode = codes
		}
		for _, c := range folded {
			if !inPage[c] {
				inPage[c] = true
				byCode = append(byCode, c)
			}
		}
		return s.feedCardCodes(ctx, tx, f.Replica, byCode)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot for till %s after card %q: %w", tillID, after, err)
	}
	now := s.now()
	f.Replica.AsOf = &now
	return f, shared, nil
}

func (s *Server) feedCatalog(ctx context.Context, tx pgx.Tx, r *store.Replica, q string, args []any) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read catalog changes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var section, body string
		if err := rows.Scan(&section, &body); err != nil {
			return err
		}
		if err := appendRecord(r, section, []byte(body)); err != nil {
			return fmt.Errorf("catalog %s record %s: %w", section, body, err)
		}
	}
	return rows.Err()
}

func appendRecord(r *store.Replica, section string, body []byte) error {
	switch section {
	case "stores":
		return appendJSON(&r.Stores, body)
	case "groups":
		return appendJSON(&r.Groups, body)
	case "products":
		return appendJSON(&r.Products, body)
	case "programs":
		return appendJSON(&r.Programs, body)
	case "promotions":
		return appendJSON(&r.Promotions, body)
	case "card_kinds":
		return appendJSON(&r.CardKinds, body)
	case "card_keys":
		return appendJSON(&r.CardKeys, body)
	}
	return fmt.Errorf("unknown section %q", section)
}

func appendJSON[T any](dst *[]T, body []byte) error {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	*dst = append(*dst, v)
	return nil
}

// feedCards adds the cards the query names, with all their lots.
func (s *Server) feedCards(ctx context.Context, tx pgx.Tx, r *store.Replica, q string, args []any) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read card changes: %w", err)
	}
	codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read card changes: %w", err)
	}
	return s.feedCardCodes(ctx, tx, r, codes)
}

// The columns feedCardCodes and feedCardPage read of a card and of a lot.
const (
	feedCardColumns = `code, kind, program, state, block_reason, holder, debt::text, history::text`
	feedLotColumns  = `card, lot_id, points::text, remaining::text, accrued_at, active_from, expires_at, check_id`
)

// feedCardCodes adds the cards, with their live lots, in code order.
func (s *Server) feedCardCodes(ctx context.Context, tx pgx.Tx, r *store.Replica, codes []string) error {
	if len(codes) == 0 {
		return nil
	}
	// Probed by key whatever the number of codes. Planned for a delta's
	// 5,000 or 10,000 codes, the cards were read whole (a sequential scan
	// of a million cards, 0.5 s a delta) unless a generic plan, cached
	// while the first load read its pages this way, happened to be there.
	//
	// Nor in parallel: a few thousand probes of an index, planned with
	// workers when the lots are not analyzed yet, waited 120 ms for them
	// to start and merge (EXPLAIN ANALYZE, 5,000 cards of a million).
	if _, err := tx.Exec(ctx, `set local enable_seqscan = off; set local max_parallel_workers_per_gather = 0`); err != nil {
		return fmt.Errorf("read cards: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT `+feedCardColumns+` FROM cards WHERE code = ANY($1) ORDER BY code`, codes)
	if err != nil {
		return fmt.Errorf("read cards: %w", err)
	}
	if _, err := scanFeedCards(rows, r, len(codes)); err != nil {
		return err
	}
	// Only the live lots: a card keeps every lot of its history, nearly all
	// used up, and a page or delta carries each of its cards whole, so the
	// till sets the lots it holds and is not sent to 0 (emptyLotsNotSent),
	// which is what they hold here.
	rows, err = tx.Query(ctx, `SELECT `+feedLotColumns+` FROM lots WHERE card = ANY($1) AND remaining > 0 ORDER BY card, lot_id`, codes)
	if err != nil {
		return fmt.Errorf("read lots: %w", err)
	}
	return scanFeedLots(rows, r, 4*len(codes))
}

// feedCardPage adds the first limit cards after the code after, in code
// order, with their live lots, and returns their codes: a first-load page
// of every card, read along the cards' key and the live lots' index as
// two ranges. Looked up code by code (feedCardCodes), a page of 5,000
// cards took 5,000 probes of each index, most of its database time.
func (s *Server) feedCardPage(ctx context.Context, tx pgx.Tx, r *store.Replica, after string, limit int) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT `+feedCardColumns+` FROM cards WHERE code > $1 ORDER BY code LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read cards: %w", err)
	}
	codes, err := scanFeedCards(rows, r, limit)
	if err != nil || len(codes) == 0 {
		return codes, err
	}
	rows, err = tx.Query(ctx, `SELECT `+feedLotColumns+` FROM lots WHERE card > $1 AND card <= $2 AND remaining > 0 ORDER BY card, lot_id`,
		after, codes[len(codes)-1])
	if err != nil {
		return nil, fmt.Errorf("read lots: %w", err)
	}
	return codes, scanFeedLots(rows, r, 4*len(codes))
}

// scanFeedCards adds the cards of rows (feedCardColumns) to r and returns their
// codes; n is about how many come.
func scanFeedCards(rows pgx.Rows, r *store.Replica, n int) ([]string, error) {
	defer rows.Close()
	r.Cards = slices.Grow(r.Cards, n) // a page's 5,000 cards grew the slice a dozen times
	codes := make([]string, 0, n)
	for rows.Next() {
		var c store.ReplicaCard
		var debt, hist string
		if err := rows.Scan(&c.Code, &c.Kind, &c.Program, &c.State, &c.BlockReason, &c.Holder, &debt, &hist); err != nil {
			return nil, err
		}
		d, err := decimal.NewFromString(debt)
		if err != nil {
			return nil, fmt.Errorf("card %s debt: %w", c.Code, err)
		}
		c.Debt = checkout.PointsOf(d)
		if c.History, err = store.DecodeHistory([]byte(hist)); err != nil {
			return nil, fmt.Errorf("card %s history: %w", c.Code, err)
		}
		r.Cards = append(r.Cards, c)
		codes = append(codes, c.Code)
	}
	return codes, rows.Err()
}

// scanFeedLots adds the lots of rows (feedLotColumns) to r; n is about how many
// come.
func scanFeedLots(rows pgx.Rows, r *store.Replica, n int) error {
	defer rows.Close()
	r.Lots = slices.Grow(r.Lots, n) // a card has a few
	for rows.Next() {
		var l store.ReplicaLot
		var pts, rem string
		var from time.Time
		if err := rows.Scan(&l.Card, &l.ID, &pts, &rem, &l.AccruedAt, &from, &l.ExpiresAt, &l.CheckID); err != nil {
			return err
		}
		p, err1 := decimal.NewFromString(pts)
		m, err2 := decimal.NewFromString(rem)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("lot %s of card %s: bad numbers %q %q", l.ID, l.Card, pts, rem)
		}
		l.Points = checkout.PointsOf(p)
		mp := checkout.PointsOf(m)
		l.Remaining, l.ActiveFrom = &mp, &from
		r.Lots = append(r.Lots, l)
	}
	return rows.Err()
}
