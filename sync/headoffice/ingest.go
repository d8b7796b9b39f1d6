package headoffice

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// Ingest stores a till's batch and folds into the lots every entry whose
// chain back to the till's watermark is complete, all in one transaction.
// The caller has authenticated b.TillID. Storing is idempotent by entry id
// (unique forever): a retried, duplicated or reordered batch leaves the
// same state. Locks are taken in a fixed order (the till's row, then its
// cards sorted by code), so concurrent tills never deadlock.
func (s *Server) Ingest(ctx context.Context, b *wire.Batch) (*wire.BatchResult, error) {
	// Entries the decoder refused but whose chain link is the till's are
	// stored as rejected (ingestOnce), the others only answered.
	refused := map[string]string{}
	all := b
	if len(b.Refused) > 0 {
		all = &wire.Batch{TillID: b.TillID, Entries: append(slices.Clip(b.Entries), b.Refused...)}
		for _, r := range b.Invalid {
			if slices.ContainsFunc(b.Refused, func(e wire.Entry) bool { return e.ID == r.ID }) {
				refused[r.ID] = r.Error
			}
		}
	}
	var res *wire.BatchResult
	var err error
	allLots, lost := false, false
	for attempt := 0; attempt < 4; attempt++ {
		res, err = s.ingestOnce(ctx, all, refused, allLots)
		if s.lostConn(err) {
			lost = true
			continue // idempotent: a commit whose answer was lost is a duplicate now
		}
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) {
			break
		}
		if pe.Code == "23505" && pe.ConstraintName == "lots_pkey" && !allLots {
			// A lot an entry creates (its lot id, or the id of an accrual
			// without lots) exists, used up: only the live lots were read,
			// and the fold took it for new. Read them all and fold again,
			// so the fold finds it (and never counts a lot twice).
			allLots = true
			s.rereads.Add(1)
			s.log.Warn("ingest retried reading every lot of the batch's cards", "till", b.TillID, "err", pe.Detail)
			continue
		}
		if pe.Code != "40001" && pe.Code != "40P01" {
			break
		}
		s.retries.Add(1)
		s.log.Warn("ingest retried", "till", b.TillID, "code", pe.Code)
	}
	if err != nil {
		if lost {
			err = lostBefore(err) // an earlier run may have committed: the till sends the batch again
		}
		return nil, fmt.Errorf("ingest batch of till %s (%d entries): %w", b.TillID, len(b.Entries), err)
	}
	for _, r := range b.Invalid {
		if _, ok := refused[r.ID]; !ok {
			s.log.Error("journal entry rejected", "till", b.TillID, "entry", r.ID, "err", r.Error)
			res.Results = append(res.Results, r)
		}
	}
	s.countResults(res)
	return res, nil
}

// The SQL of one ingest, in the order it runs. A batch is two round trips:
// the first begins the transaction, locks the till and its cards and reads
// what folding needs; the second writes everything and commits.
const (
	// The till's row first (the fixed lock order), with its store's
	// time zone for the history months.
	// A till retired since it authenticated is refused here, under the
	// row lock Retire takes too: nothing of its batch is written.
	sqlLockTill = `SELECT t.folded_through,
			coalesce((SELECT c.body->>'timezone' FROM catalog c WHERE c.section = 'stores' AND c.id = t.store_id), ''), t.retired_at
		FROM tills t WHERE t.till_id = $1 FOR UPDATE OF t`
	// Entries of the batch stored and folded before: a retry (same digest)
	// or a conflict. Only ids up to the watermark are looked up: ids rise
	// along a chain (CheckEntry: prev < id) and the watermark only moves
	// forward along it, so every folded entry of the till is at or below it;
	// the stored entries above it are the unfolded ones, read next with
	// their digests. Compared bytewise, as CheckEntry does.
	sqlStoredDigests = `SELECT j.id, j.digest FROM journal j WHERE j.id IN (SELECT k FROM unnest($1::text[]) AS k
		WHERE k COLLATE "C" <= (SELECT folded_through FROM tills WHERE till_id = $2) COLLATE "C")`
	// Stored entries not folded yet (a batch that came before its
	// predecessor): the chain may go through them. Only this till's ingest
	// writes them, and it holds the till's row.
	sqlUnfolded = `SELECT id, prev_id, body::text, digest, rejected <> '' FROM journal WHERE till_id = $1 AND NOT folded`
	// Every card the fold may touch — those of the batch and of the
	// unfolded entries, a superset of the chain's — locked in code order
	// (ORDER BY runs before the lock), then their lots. The set is read
	// under the till's lock, so both statements see the same one. FOR NO
	// KEY UPDATE (what an UPDATE of the card's debt and history takes
	// anyway) does not block the FOR KEY SHARE that a lot insert's
	// foreign-key check takes on its card, so an ERP import inserting lots
	// in its file's order never waits for a batch (nor a batch for it).
	sqlIngestCards     = `SELECT unnest($1::text[]) UNION SELECT card_code FROM journal WHERE till_id = $2 AND NOT folded`
	sqlLockIngestCards = `SELECT ` + sqlCardColumns + ` FROM cards c
		WHERE c.code IN (` + sqlIngestCards + `) ORDER BY c.code FOR NO KEY UPDATE OF c`
	// What scanCards reads of a card.
	sqlCardColumns = `c.code, c.debt::text, c.history::text, c.program, c.kind`
	// The lots the fold may touch: each card's live ones (remaining > 0,
	// through lots_live), read card by card (LATERAL, OFFSET 0 keeps it
	// from being flattened into a join: without statistics on lots.card the
	// planner otherwise guesses half the table matches and scans all of
	// it). A card keeps every lot of its history, nearly all used up; those
	// the chain names are read after it is built (loadNamedLots), and with
	// allLots (a lot an entry creates turned out to exist) every one.
	sqlIngestLots    = sqlLotColumns + `FROM (` + sqlIngestCards + sqlLotsOfCards + sqlLiveLotsEnd
	sqlIngestAllLots = sqlLotColumns + `FROM (` + sqlIngestCards + sqlLotsOfCards + sqlLotsEnd
	// A subquery of card codes, then these: the cards' lots (all of them
	// with sqlLotsEnd, the live ones with sqlLiveLotsEnd), card by card.
	sqlLotsOfCards = `) AS k(code), LATERAL (SELECT * FROM lots WHERE lots.card = k.code`
	sqlLiveLotsEnd = ` AND lots.remaining > 0` + sqlLotsEnd
	sqlLotsEnd     = ` OFFSET 0) AS l ORDER BY l.card, l.lot_id`
	// The lots that lapsed with points left (lots_lapsed), of the cards of
	// the batch's debits ($1, written at $2) and of the till's ($3)
	// entries not folded yet, those expiring after the earliest of them:
	// a debit dated before a lot lapsed spends what expiry took from it
	// (cardState.borrowFor).
	sqlLapsedLots = sqlLotColumns + `FROM (SELECT d.card, min(d.since) FROM (SELECT * FROM unnest($1::text[], $2::timestamptz[])
			UNION ALL SELECT card_code, created_at FROM journal WHERE till_id = $3 AND NOT folded) AS d(card, since)
			GROUP BY d.card) AS n(card, since),
			LATERAL (SELECT * FROM lots WHERE lots.card = n.card AND lots.remaining = 0 AND lots.expired > 0
				AND lots.expires_at > n.since OFFSET 0) AS l
		ORDER BY l.card, l.lot_id`
	// The used-up lots of the keys ($1 cards, $2 lot ids), key by key.
	sqlNamedLots = sqlLotColumns + `FROM unnest($1::text[], $2::text[]) AS n(card, lot_id),
			LATERAL (SELECT * FROM lots WHERE lots.card = n.card AND lots.lot_id = n.lot_id AND lots.remaining = 0 OFFSET 0) AS l
		ORDER BY l.card, l.lot_id`
	sqlLotColumns = `SELECT l.card, l.lot_id, l.points::text, l.remaining::text, l.expired::text, l.relapsed::text, l.accrued_at, l.active_from, l.expires_at, l.check_id `
	// The card kinds (false, with their program) and the programs (true,
	// with their points scale, decimal places, and negative-balance
	// policy) head office knows: a card's program is its own, else its
	// kind's, as migration 0002's debt_policy trigger reads it
	// (cardPrograms.resolve). Read once a batch, each body parsed once:
	// joining each card to them in SQL was a tenth of a batch's reads.
	// Read after the cards are locked: an import changing a card's program
	// waits.
	sqlPrograms = `SELECT false, id, coalesce(body->>'program', ''), 0, '', '' FROM catalog WHERE section = 'card_kinds'
		UNION ALL SELECT true, id, '', coalesce((body->'point_rounding'->>'scale')::int, 0),
			coalesce(body->'negative_balance'->>'mode', ''), coalesce(body->'negative_balance'->>'limit', '0')
		FROM catalog WHERE section = 'programs'`
	sqlWriteOffs = `INSERT INTO debt_writeoffs (card, program, mode, points, check_id, entry_id, lot_id)
		SELECT u.card, u.program, u.mode, u.points::numeric, u.check_id, u.entry_id, u.lot_id
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
			AS u(card, program, mode, points, check_id, entry_id, lot_id)`
	// The cards a return may refill: those of the batch's reversals ($1)
	// and of the till's ($2) stored reversals not folded yet.
	sqlReturnedCards = `SELECT unnest($1::text[]) UNION SELECT card_code` + sqlFromTillReversals
	// The till's ($2) stored reversals not folded yet, after a SELECT of
	// their column (also the checks a return may refer to: returns.go).
	sqlFromTillReversals = ` FROM journal WHERE till_id = $2 AND NOT folded AND kind = 'reversal'`
	// What write-offs forgave, per card and lot spent twice, that a return
	// may take back.
	sqlForgiven = `SELECT w.card, w.lot_id, sum(w.points)::text FROM debt_writeoffs w
		WHERE w.lot_id <> '' AND w.card IN (` + sqlReturnedCards + `)
		GROUP BY w.card, w.lot_id ORDER BY w.card, w.lot_id`
	// What lots spent twice borrowed (from other lots or from debt) and
	// have not paid back, of the cards the subquery between the two parts
	// names.
	sqlBorrowedOf  = `SELECT b.card, b.lot_id, b.from_lot, sum(b.points)::text FROM lot_borrows b WHERE b.card IN (`
	sqlBorrowedEnd = `) GROUP BY b.card, b.lot_id, b.from_lot HAVING sum(b.points) > 0 ORDER BY b.card, b.lot_id, b.from_lot`
	// Ingestion's: the cards a return may refill; then, after the cards
	// are read, those in debt ($3: settling debt moves what a lot owes,
	// paidBy) but for the first ones. Cards are rarely in debt, so the
	// second query seldom runs (probing every card of the batch for debt
	// here cost a tenth of the batch's reads).
	sqlBorrowed     = sqlBorrowedOf + sqlReturnedCards + sqlBorrowedEnd
	sqlDebtBorrowed = sqlBorrowedOf + `SELECT unnest($3::text[]) EXCEPT (` + sqlReturnedCards + `)` + sqlBorrowedEnd
	sqlBorrows      = `INSERT INTO lot_borrows (card, lot_id, from_lot, points, entry_id)
		SELECT u.card, u.lot_id, u.from_lot, u.points::numeric, u.entry_id
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(card, lot_id, from_lot, points, entry_id)`
	// Fresh entries are written once, already marked folded when they are
	// on the chain (no second write of the row).
	sqlStoreEntries = `INSERT INTO journal (id, till_id, prev_id, card_code, kind, points, body, digest, folded, rejected, check_id, no_card, created_at)
		SELECT u.id, $1, u.prev, u.card, u.kind, u.points::numeric, u.body::json, u.digest, u.folded, u.rejected, u.chk, u.no_card, u.created
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::bool[], $10::text[], $11::text[], $12::bool[], $13::timestamptz[])
			AS u(id, prev, card, kind, points, body, digest, folded, rejected, chk, no_card, created)
		ORDER BY u.id`
	// An entry stored behind a gap and folded now takes this transaction's
	// xid and a new seq: the ERP export, ordered by (xid, seq), gives it
	// again, folded (or rejected), instead of leaving ERP with the copy it
	// read unfolded (ERP keeps entries by id, so the later copy wins).
	sqlExportAgain = `xid = pg_current_xact_id(), seq = nextval(pg_get_serial_sequence('journal', 'seq'))`
	sqlMarkFolded  = `UPDATE journal j SET folded = true, no_card = u.no_card, ` + sqlExportAgain + `
		FROM unnest($1::text[], $2::bool[]) AS u(id, no_card) WHERE j.id = u.id`
	// Stored entries the fold found refused (a return over its check).
	sqlMarkRejected = `UPDATE journal j SET rejected = u.why, ` + sqlExportAgain + `
		FROM unnest($1::text[], $2::text[]) AS u(id, why) WHERE j.id = u.id`
	sqlOverdrafts = `INSERT INTO overdrafts (card, till_id, entry_id, points)
		SELECT u.card, $1, u.entry, u.points::numeric FROM unnest($2::text[], $3::text[], $4::text[]) AS u(card, entry, points)
		ON CONFLICT DO NOTHING`
	sqlAdvanceTill = `UPDATE tills SET folded_through = $2 WHERE till_id = $1`
	// A conflicting copy is kept for support, the latest the till sent; a
	// settled conflict whose till copy changed again is open again.
	sqlKeepConflicts = `INSERT INTO journal_conflicts (id, till_id, body, digest)
		SELECT u.id, $1, u.body::json, u.digest FROM unnest($2::text[], $3::text[], $4::bytea[]) AS u(id, body, digest)
		ON CONFLICT (id) DO UPDATE SET body = excluded.body, digest = excluded.digest, last_seen = now(),
			settled_at = CASE WHEN journal_conflicts.digest = excluded.digest THEN journal_conflicts.settled_at END,
			reason = CASE WHEN journal_conflicts.digest = excluded.digest THEN journal_conflicts.reason ELSE '' END`
)

// ingestOnce is one attempt at a batch, in one transaction over two round
// trips (pgx batches, pipelined): begin, lock the till, read what is stored
// and lock the cards with their lots; then fold in memory; then store the
// entries, write cards, lots, change rows, overdrafts, write-offs and the
// watermark, and commit.
//
// refused names the entries of b the decoder refused (id → why): they are
// stored as rejected and never applied, like those whose points are finer
// than their card's program counts. On the chain, they let the entries
// after them fold. allLots reads every lot of the cards, not only the
// live ones and those the chain names.
func (s *Server) ingestOnce(ctx context.Context, b *wire.Batch, refused map[string]string, allLots bool) (*wire.BatchResult, error) {
	n := len(b.Entries)
	out := &wire.BatchResult{Results: make([]wire.Result, n)}
	ids := make([]string, n)
	bodies := make([]string, n)
	digests := make([][]byte, n)
	codes := make([]string, n)
	for i := range b.Entries {
		e := &b.Entries[i]
		body, sum, err := canonicalEntry(*e)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", e.ID, err)
		}
		ids[i], bodies[i], digests[i], codes[i] = e.ID, string(body), sum[:], e.CardCode
		out.Results[i] = wire.Result{ID: e.ID, Status: wire.Applied}
	}

	conn, err := s.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	// The transaction is begun and committed inside the two pipelines. On
	// any failure it is rolled back here; if even that fails, Release
	// destroys a connection left in a transaction.
	defer conn.Release()
	defer func() {
		if pc := conn.Conn().PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
			conn.Exec(ctx, "rollback")
		}
	}()

	// Round trip 1: begin, lock and read.
	var folded, tz string
	stored := map[string][]byte{}
	byPrev := map[string]string{}   // prev id → id
	unfolded := map[string]string{} // id → body, of stored entries not folded yet
	skip := map[string]bool{}       // ids of entries kept as rejected: on the chain, not applied
	cards := map[string]*cardState{}
	var pa pgx.Batch
	pa.Queue("begin")
	// Every statement below looks rows up by key. A new head office has no
	// statistics on the journal and lots yet, and a plan cached while they
	// were small stays a sequential scan of the whole table for every batch
	// (seen: the journal and lots read in full 300 times in 300 batches).
	// The same, with its plan cached: the plan of the spends of returned
	// checks (sqlCheckSpends), left to choose, was made afresh for every
	// batch (50 µs of the database's time each).
	pa.Queue("set local enable_seqscan = off")
	pa.Queue("set local plan_cache_mode = force_generic_plan")
	// Folding applies the negative-balance policy itself (addDebt), with
	// the card's lots; the trigger, which knows only the policy's keep,
	// would write off debt that the card's points not yet active cover.
	pa.Queue("set local headoffice.debt_policy = off")
	pa.Queue(sqlLockTill, b.TillID).QueryRow(func(r pgx.Row) error {
		var retired *time.Time
		if err := r.Scan(&folded, &tz, &retired); err != nil {
			return fmt.Errorf("lock till: %w", err)
		}
		if retired != nil {
			return retiredError(b.TillID, *retired)
		}
		return nil
	})
	pa.Queue(sqlStoredDigests, ids, b.TillID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var d []byte
			if err := rows.Scan(&id, &d); err != nil {
				return fmt.Errorf("look up stored entries: %w", err)
			}
			stored[id] = d
		}
		return rows.Err()
	})
	pa.Queue(sqlUnfolded, b.TillID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id, prev, body string
			var d []byte
			var rejected bool
			if err := rows.Scan(&id, &prev, &body, &d, &rejected); err != nil {
				return fmt.Errorf("load unfolded entries: %w", err)
			}
			linkPrev(byPrev, prev, id)
			unfolded[id], stored[id] = body, d
			if rejected {
				skip[id] = true
			}
		}
		return rows.Err()
	})
	pa.Queue(sqlLockIngestCards, codes, b.TillID).Query(func(rows pgx.Rows) error { return scanCards(rows, cards) })
	lotsSQL := sqlIngestLots
	if allLots {
		lotsSQL = sqlIngestAllLots
	}
	pa.Queue(lotsSQL, codes, b.TillID).Query(func(rows pgx.Rows) error { return scanLots(rows, cards) })
	if !allLots {
		var debited []string
		var since []time.Time
		for i := range b.Entries {
			if e := &b.Entries[i]; debits(e) {
				debited, since = append(debited, codes[i]), append(since, e.CreatedAt)
			}
		}
		pa.Queue(sqlLapsedLots, debited, since, b.TillID).Query(func(rows pgx.Rows) error { return scanLots(rows, cards) })
	}
	var programs cardPrograms
	pa.Queue(sqlPrograms).Query(func(rows pgx.Rows) error { return programs.scan(rows) })
	var returned, checks []string // the cards and checks of the batch's returns
	for i := range b.Entries {
		if e := &b.Entries[i]; e.Kind == store.KindReversal {
			returned, checks = append(returned, codes[i]), append(checks, e.CheckID)
		}
	}
	spends := returnCap{}
	pa.Queue(sqlCheckSpends, checks, b.TillID).Query(func(rows pgx.Rows) error { return scanCheckSpends(rows, spends) })
	pa.Queue(sqlForgiven, returned, b.TillID).Query(func(rows pgx.Rows) error { return scanForgiven(rows, cards) })
	pa.Queue(sqlBorrowed, returned, b.TillID).Query(func(rows pgx.Rows) error { return scanBorrowed(rows, cards) })
	if err := conn.SendBatch(ctx, &pa).Close(); err != nil {
		return nil, err
	}
	if err := programs.resolve(cards); err != nil {
		return nil, err
	}
	if inDebt := codesWhere(cards, func(c *cardState) bool { return c.Debt.IsPositive() }); len(inDebt) > 0 {
		rows, err := conn.Query(ctx, sqlDebtBorrowed, returned, b.TillID, inDebt)
		if err != nil {
			return nil, fmt.Errorf("read what lots of cards in debt borrowed: %w", err)
		}
		err = scanBorrowed(rows, cards)
		rows.Close()
		if err != nil {
			return nil, err
		}
	}

	// A digest that differs may still be the same entry: one stored before
	// digests were canonical, with created_at in another UTC offset. Those
	// few are compared by their stored bodies, made canonical (one more
	// round trip, only when there are any).
	var differ []string
	for i := range out.Results {
		if d, ok := stored[ids[i]]; ok && string(d) != string(digests[i]) {
			differ = append(differ, ids[i])
		}
	}
	same, err := sameStoredContent(ctx, conn.Conn(), differ, unfolded)
	if err != nil {
		return nil, err
	}
	// Those still different may be conflicts support settled by keeping
	// head office's copy (one more query, only when there are any).
	var still []string
	for _, id := range differ {
		if i := slices.Index(ids, id); string(same[id]) != string(digests[i]) {
			still = append(still, id)
		}
	}
	settled, err := settledConflicts(ctx, conn.Conn(), still)
	if err != nil {
		return nil, err
	}
	var fresh, conflicts []int
	rejected := map[string]string{} // of the fresh entries: id → why
	for i := range out.Results {
		d, ok := stored[ids[i]]
		why := "" // of a fresh entry, why it is refused
		if !ok {
			why = refused[ids[i]]
			if err := scaleError(b.Entries[i], cards[codes[i]]); why == "" && err != nil {
				// The till priced the check with the program it had then;
				// ERP may since have made its points coarser or moved the
				// card to another program. Refusing the entry would lose
				// a printed accrual, or make a spent redemption spendable
				// again: the fold takes it as it is.
				s.log.Warn("journal entry finer than its card's program counts points", "till", b.TillID, "entry", ids[i], "err", err)
			}
		}
		switch {
		case !ok && folded != "" && ids[i] <= folded:
			// Every entry at or before the watermark is folded, so one not
			// stored can never join the chain: answering it applied would
			// lose it. The till keeps it unacknowledged and shows this.
			out.Results[i] = wire.Result{ID: ids[i], Status: wire.Rejected, Error: fmt.Sprintf(
				"id at or before this till's watermark %s, so it can never be folded (a replaced till store with its clock behind?): enrol the replaced till under a new id", folded)}
			s.log.Error("journal entry before the watermark", "till", b.TillID, "entry", ids[i], "folded_through", folded)
		case !ok && why != "":
			// Refused by the decoder, or finer than the card's program
			// counts points (a bug on the till, or a program whose scale
			// ERP lowered; folding it would give the card points it cannot
			// show): kept as rejected, on the chain but not applied, and
			// answered rejected. Sent again, it is a duplicate: the till
			// acknowledges it, and support settles the card.
			rejected[ids[i]] = why
			out.Results[i] = wire.Result{ID: ids[i], Status: wire.Rejected, Error: why + rejectedKept}
			s.log.Error("journal entry rejected", "till", b.TillID, "entry", ids[i], "err", why)
			fresh = append(fresh, i)
		case !ok:
			fresh = append(fresh, i)
		case string(d) == string(digests[i]) || string(same[ids[i]]) == string(digests[i]):
			out.Results[i].Status = wire.Duplicate
		case settled[ids[i]] != nil && string(settled[ids[i]]) == string(digests[i]):
			// Support kept head office's copy: the till's counts as a
			// duplicate, and the till acknowledges it.
			out.Results[i].Status = wire.Duplicate
		default:
			out.Results[i] = wire.Result{ID: ids[i], Status: wire.Conflict,
				Error: "an entry with this id and other content is already stored (support compares both: GET /v1/erp/conflicts)"}
			s.log.Error("journal entry conflict", "till", b.TillID, "entry", ids[i])
			conflicts = append(conflicts, i)
		}
	}
	// The chain to fold: stored entries not folded yet and the fresh ones,
	// from the watermark on, each the successor of the one before.
	freshByID := map[string]*wire.Entry{}
	for _, i := range fresh {
		linkPrev(byPrev, b.Entries[i].Prev, ids[i])
		freshByID[ids[i]] = &b.Entries[i]
		if _, ok := rejected[ids[i]]; ok {
			skip[ids[i]] = true
		}
	}
	if err := relinkForks(ctx, conn.Conn(), s.log, b.TillID, folded, byPrev, unfolded, freshByID); err != nil {
		return nil, err
	}
	var chain []string
	restarted := false
	for cur := folded; ; {
		next, ok := byPrev[cur]
		if !ok && len(chain) == 0 && folded != "" && byPrev[""] > folded {
			// A first entry ("" before it) after the watermark: the till's
			// store was replaced and its journal starts again. Its old
			// unsent entries are gone with the old file; go on from here.
			next, ok, restarted = byPrev[""], true, true
			s.log.Warn("till journal restarted", "till", b.TillID, "folded_through", folded, "first", next)
		}
		if !ok {
			break
		}
		chain = append(chain, next)
		cur = next
	}
	// The old store's entries stored behind a gap (a batch that overtook
	// the one before it) can never be folded once a new store's first
	// entry starts the chain (after the watermark, or with none): their
	// predecessor went with the old file. They are kept as rejected, for
	// support (GET /v1/erp/rejected), not left waiting for ever. (With no
	// watermark the chain always starts at a first entry.)
	var orphans, orphanWhy []string
	if restarted || len(chain) > 0 && folded == "" {
		for id := range unfolded {
			if id < chain[0] && !skip[id] {
				orphans = append(orphans, id)
			}
		}
		slices.Sort(orphans)
		for _, id := range orphans {
			orphanWhy = append(orphanWhy, "the till's store was replaced before the entry before this one arrived: it can never be folded (support corrects the card if it should count)")
			s.log.Error("journal entry rejected", "till", b.TillID, "entry", id, "err", "left behind a gap by a replaced till store")
		}
	}
	inChain := make(map[string]bool, len(chain))
	entries := make([]wire.Entry, 0, len(chain)) // to apply: the chain without those kept as rejected
	var older []string                           // stored entries that the batch completed the chain for
	for _, id := range chain {
		inChain[id] = true
		e, ok := freshByID[id]
		if !ok {
			older = append(older, id)
			if skip[id] {
				continue
			}
			e = &wire.Entry{}
			if err := json.Unmarshal([]byte(unfolded[id]), e); err != nil {
				return nil, fmt.Errorf("stored entry %s: %w", id, err)
			}
		}
		if !skip[id] {
			entries = append(entries, *e)
		}
	}

	if err := loadNamedLots(ctx, conn.Conn(), cards, entries); err != nil {
		return nil, err
	}
	// Entries creating a lot their card holds (created.go) and returns
	// giving back more than their check spent (returns.go) are kept as
	// rejected, like those the decoder refused.
	entries, refusedNow := createdTwice(entries, cards)
	entries, overReturned := spends.capReturns(entries, func(card string) bool { return cards[card] != nil })
	if refusedNow == nil {
		refusedNow = overReturned
	} else {
		maps.Copy(refusedNow, overReturned)
	}
	var laterRejected, laterWhy []string // stored before, refused now
	for _, id := range chain {
		why, ok := refusedNow[id]
		if !ok {
			continue
		}
		s.log.Error("journal entry rejected", "till", b.TillID, "entry", id, "err", why)
		if _, isFresh := freshByID[id]; !isFresh {
			laterRejected, laterWhy = append(laterRejected, id), append(laterWhy, why)
			continue
		}
		rejected[id] = why
		out.Results[slices.Index(ids, id)] = wire.Result{ID: id, Status: wire.Rejected, Error: why + rejectedKept}
	}

	// Entries of cards head office does not hold are folded as nothing,
	// and marked so for the accruals report.
	noCard := map[string]bool{}
	for _, e := range entries {
		if cards[e.CardCode] == nil {
			noCard[e.ID] = true
		}
	}

	// Round trip 2: write and commit.
	var pc pgx.Batch
	if len(fresh) > 0 {
		cols := struct {
			id, prev, card, kind, points, body, rejected, check []string
			digest                                              [][]byte
			folded, noCard                                      []bool
			created                                             []time.Time
		}{}
		for _, i := range fresh {
			e := &b.Entries[i]
			cols.id = append(cols.id, e.ID)
			cols.prev = append(cols.prev, e.Prev)
			cols.card = append(cols.card, e.CardCode)
			cols.kind = append(cols.kind, string(e.Kind))
			cols.points = append(cols.points, e.Points.String())
			cols.body = append(cols.body, bodies[i])
			cols.digest = append(cols.digest, digests[i])
			cols.folded = append(cols.folded, inChain[e.ID])
			cols.rejected = append(cols.rejected, rejected[e.ID])
			cols.check = append(cols.check, e.CheckID)
			cols.noCard = append(cols.noCard, noCard[e.ID])
			cols.created = append(cols.created, e.CreatedAt)
		}
		pc.Queue(sqlStoreEntries, b.TillID, cols.id, cols.prev, cols.card, cols.kind, cols.points, cols.body, cols.digest, cols.folded, cols.rejected, cols.check, cols.noCard, cols.created)
	}
	if len(older) > 0 {
		nc := make([]bool, len(older))
		for i, id := range older {
			nc[i] = noCard[id]
		}
		pc.Queue(sqlMarkFolded, older, nc)
	}
	if len(laterRejected) > 0 {
		pc.Queue(sqlMarkRejected, laterRejected, laterWhy)
	}
	if len(orphans) > 0 {
		pc.Queue(sqlMarkFolded, orphans, make([]bool, len(orphans)))
		pc.Queue(sqlMarkRejected, orphans, orphanWhy)
	}
	if len(conflicts) > 0 {
		var cid, cbody []string
		var cdig [][]byte
		for _, i := range conflicts {
			cid, cbody, cdig = append(cid, ids[i]), append(cbody, bodies[i]), append(cdig, digests[i])
		}
		pc.Queue(sqlKeepConflicts, b.TillID, cid, cbody, cdig)
	}
	out.FoldedThrough = folded
	if len(chain) > 0 {
		over := s.fold(b.TillID, s.location(tz), cards, entries)
		if err := queueSaveCards(&pc, cards); err != nil {
			return nil, err
		}
		queueWriteOffs(&pc, cards)
		if len(over) > 0 {
			var oc, oe, op []string
			for _, o := range over {
				oc, oe, op = append(oc, o.card), append(oe, o.entry), append(op, o.points.String())
				s.log.Warn("offline overdraft", "card", o.card, "till", b.TillID, "entry", o.entry, "points", o.points.String())
			}
			pc.Queue(sqlOverdrafts, b.TillID, oc, oe, op)
		}
		out.FoldedThrough = chain[len(chain)-1]
		pc.Queue(sqlAdvanceTill, b.TillID, out.FoldedThrough)
	}
	pc.Queue("commit").Exec(func(ct pgconn.CommandTag) error {
		if ct.String() != "COMMIT" {
			return fmt.Errorf("commit: transaction rolled back (%s)", ct)
		}
		return nil
	})
	if err := conn.SendBatch(ctx, &pc).Close(); err != nil {
		return nil, fmt.Errorf("store and fold: %w", err)
	}
	return out, nil
}

// rejectedKept ends the error of an entry head office keeps as rejected.
const rejectedKept = "; kept at head office as rejected, not applied (support: GET /v1/erp/rejected); the till's later entries fold"

// scaleError checks an entry's points, and the lots it creates, against
// the scale of its card's program now (a card or program head office does
// not know: nothing to check), for the log. Deltas on existing lots are
// not checked: they follow those lots, which an ERP import may have given
// finer points.
func scaleError(e wire.Entry, c *cardState) error {
	if c == nil || c.program == "" {
		return nil
	}
	if err := wire.CheckPoints("points", e.Points, c.scale); err != nil {
		return fmt.Errorf("card %s, program %s: %w", e.CardCode, c.program, err)
	}
	for _, l := range e.Lots {
		if !l.Create {
			continue
		}
		if err := wire.CheckPoints("created lot "+l.LotID+" delta", l.Delta, c.scale); err != nil {
			return fmt.Errorf("card %s, program %s: %w", e.CardCode, c.program, err)
		}
	}
	return nil
}

// canonicalEntry is the body head office stores for an entry and its
// content digest (SHA-256 of the body). Every time is written in UTC: a
// till reads created_at back in its process's local zone, so the same
// entry re-sent after the till's zone changed must digest the same, or it
// would be a conflict forever. The till-local acked flag is left out.
// Entries pushed in UTC (every till so far runs in UTC) keep the digest
// they were stored with; stored entries with another offset are matched by
// sameStoredContent.
func canonicalEntry(e wire.Entry) ([]byte, [sha256.Size]byte, error) {
	e.Entry = e.Entry.InUTC()
	body, ok := wire.AppendEntry(make([]byte, 0, 512), e)
	if !ok {
		var err error
		if body, err = json.Marshal(e); err != nil {
			return nil, [sha256.Size]byte{}, err
		}
	}
	return body, sha256.Sum256(body), nil
}

// settledConflicts returns, of ids, those support settled by keeping head
// office's copy, with the digest of the till's copy they settled.
func settledConflicts(ctx context.Context, conn *pgx.Conn, ids []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := conn.Query(ctx, `SELECT id, digest FROM journal_conflicts
		WHERE id IN (SELECT unnest($1::text[])) AND settled_at IS NOT NULL`, ids)
	if err != nil {
		return nil, fmt.Errorf("read settled conflicts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var d []byte
		if err := rows.Scan(&id, &d); err != nil {
			return nil, fmt.Errorf("read settled conflicts: %w", err)
		}
		out[id] = d
	}
	return out, rows.Err()
}

// sameStoredContent reads the stored bodies of ids (from known when it has
// them) and returns their canonical digests, so an entry stored with its
// times in another UTC offset (before digests were canonical) still
// matches its re-sent copy as a duplicate. Recomputing every stored digest
// in a migration instead would rewrite the whole journal in one
// transaction; entries whose digests differ are rare (a re-send), so they
// are compared here.
func sameStoredContent(ctx context.Context, conn *pgx.Conn, ids []string, known map[string]string) (map[string][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	bodies := map[string]string{}
	var ask []string
	for _, id := range ids {
		if b, ok := known[id]; ok {
			bodies[id] = b
		} else {
			ask = append(ask, id)
		}
	}
	if len(ask) > 0 {
		rows, err := conn.Query(ctx, `SELECT id, body::text FROM journal WHERE id IN (SELECT unnest($1::text[]))`, ask)
		if err != nil {
			return nil, fmt.Errorf("read stored entries to compare: %w", err)
		}
		for rows.Next() {
			var id, body string
			if err := rows.Scan(&id, &body); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read stored entries to compare: %w", err)
			}
			bodies[id] = body
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read stored entries to compare: %w", err)
		}
	}
	out := map[string][]byte{}
	for id, body := range bodies {
		var e wire.Entry
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return nil, fmt.Errorf("stored entry %s: %w", id, err)
		}
		_, sum, err := canonicalEntry(e)
		if err != nil {
			return nil, fmt.Errorf("stored entry %s: %w", id, err)
		}
		out[id] = sum[:]
	}
	return out, nil
}

// fold applies the chain of the till's entries (in chain order, following
// its watermark without a gap) to the locked cards' lots, debt and history
// in memory, and returns the overdrafts to record.
func (s *Server) fold(till string, loc *time.Location, cards map[string]*cardState, chain []wire.Entry) []overdraft {
	var over []overdraft
	now := s.now() // one moment for the whole batch
	for _, e := range chain {
		c := cards[e.CardCode]
		if c == nil {
			// Kept in the journal, but there is nothing to fold it into.
			s.log.Warn("folded entry of a card head office does not know", "till", till, "entry", e.ID, "card", e.CardCode)
			continue
		}
		at := e.CreatedAt
		if at.After(now.Add(maxAhead)) {
			// A till clock far ahead (a year, say) would move the card's
			// history into that month and wipe the months that decide its
			// tier; the history counts the entry now instead.
			s.log.Warn("entry dated ahead of head office's clock: its history counted now", "till", till, "entry", e.ID, "created_at", e.CreatedAt)
			at = now
		}
		if p := c.applyAt(e, loc, at); p.IsPositive() {
			over = append(over, overdraft{card: e.CardCode, entry: e.ID, points: p})
		}
		// Points a return gave back to a lot already expired lapse now, as
		// maintain would have them. Debt is settled from the lots active
		// now, not at the entry's time: a late entry's debt is paid from a
		// lot accrued since, before that lot can expire with the debt left
		// beside it.
		c.expire(now)
		c.settle(now)
	}
	return over
}

// maxAhead is how far ahead of head office's clock an entry's time is
// taken as it is (the till clocks the tests run at ±24 h).
const maxAhead = 25 * time.Hour

type overdraft struct {
	card, entry string
	points      decimal.Decimal
}

// locations caches time.LoadLocation, which reads the zone file every call.
var locations sync.Map // name → *time.Location

// location is the store's time zone (UTC when unset or unknown). The name
// is read with every batch, so an ERP change applies at once.
func (s *Server) location(tz string) *time.Location {
	if tz == "" {
		return time.UTC
	}
	if l, ok := locations.Load(tz); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(tz)
	if err != nil {
		s.log.Warn("store time zone unknown, using UTC", "timezone", tz, "err", err)
		return time.UTC
	}
	locations.Store(tz, l)
	return l
}

// debtPolicy is a card's program's negative-balance policy as folding
// applies it: the card keeps debt up to keep, and the rest of a rise is
// written off (docs/sync.md, "Debt and the negative-balance policy").
type debtPolicy struct {
	program, mode string // mode as the write-off records it
	keep          decimal.Decimal
}

// cardPrograms is what sqlPrograms reads: each card kind's program, and
// each program's scale and negative-balance policy.
type cardPrograms struct {
	kind     map[string]string
	programs map[string]programRow
}

type programRow struct {
	scale       int32
	mode, limit string
}

func (cp *cardPrograms) scan(rows pgx.Rows) error {
	cp.kind, cp.programs = map[string]string{}, map[string]programRow{}
	for rows.Next() {
		var program bool
		var id, kindProgram string
		var p programRow
		if err := rows.Scan(&program, &id, &kindProgram, &p.scale, &p.mode, &p.limit); err != nil {
			return fmt.Errorf("read the programs: %w", err)
		}
		if program {
			cp.programs[id] = p
		} else {
			cp.kind[id] = kindProgram
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the programs: %w", err)
	}
	return nil
}

// of is c's program (its own, else its kind's) when head office knows
// it, as migration 0002's debt_policy trigger reads it.
func (cp *cardPrograms) of(c *cardState) (string, programRow, bool) {
	id := c.ownProgram
	if id == "" {
		id = cp.kind[c.kind]
	}
	p, ok := cp.programs[id]
	return id, p, ok
}

// resolve gives each card folding a till's entries its program, scale and
// negative-balance policy.
func (cp *cardPrograms) resolve(cards map[string]*cardState) error {
	for _, c := range cards {
		if id, p, ok := cp.of(c); ok {
			if err := c.setProgram(id, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// setProgram gives c its program, the program's scale and its debt
// policy (none for allow: the card keeps all its debt).
func (c *cardState) setProgram(program string, p programRow) error {
	c.program, c.scale = program, p.scale
	if p.mode == string(checkout.NegativeAllow) {
		return nil
	}
	pol := &debtPolicy{program: program, mode: p.mode, keep: decimal.Zero}
	if p.mode == "" {
		pol.mode = string(checkout.NegativeForbid)
	}
	if p.mode == string(checkout.NegativeLimit) {
		l, err := decimal.NewFromString(p.limit)
		if err != nil {
			return fmt.Errorf("program %s: negative_balance limit %q: %w", program, p.limit, err)
		}
		pol.keep = l
	}
	c.policy = pol
	return nil
}

// codesWhere is the codes of the cards for which keep is true, sorted:
// rows are written in a fixed order.
func codesWhere(cards map[string]*cardState, keep func(*cardState) bool) []string {
	var codes []string
	for code, c := range cards {
		if keep(c) {
			codes = append(codes, code)
		}
	}
	sort.Strings(codes)
	return codes
}

// queueWriteOffs queues the write-offs the fold made, card by card in
// code order, each card's in chain order.
func queueWriteOffs(pb *pgx.Batch, cards map[string]*cardState) {
	codes := codesWhere(cards, func(c *cardState) bool { return len(c.writeOffs) > 0 })
	if len(codes) == 0 {
		return
	}
	var card, program, mode, points, check, entry, lot []string
	for _, code := range codes {
		for _, w := range cards[code].writeOffs {
			card, program, mode = append(card, code), append(program, w.program), append(mode, w.mode)
			points, check, entry = append(points, w.points.String()), append(check, w.check), append(entry, w.entry)
			lot = append(lot, w.lot)
		}
	}
	pb.Queue(sqlWriteOffs, card, program, mode, points, check, entry, lot)
}

// writeOff is debt a fold wrote off (or, mode "returned" and negative
// points, took back when a return refilled the lot), with the entry and
// check it came from and the lot spent twice whose shortfall it was ("":
// debt of a return or of an entry without lots).
type writeOff struct {
	points            decimal.Decimal
	program, mode     string
	check, entry, lot string
}

// queueBorrows queues the borrowings (and paying back) the fold recorded,
// card by card in code order.
func queueBorrows(pb *pgx.Batch, cards map[string]*cardState) {
	codes := codesWhere(cards, func(c *cardState) bool { return len(c.newBorrows) > 0 })
	if len(codes) == 0 {
		return
	}
	var card, lot, from, points, entry []string
	for _, code := range codes {
		for _, b := range cards[code].newBorrows {
			card, lot, from = append(card, code), append(lot, b.lot), append(from, b.from)
			points, entry = append(points, b.points.String()), append(entry, b.entry)
		}
	}
	pb.Queue(sqlBorrows, card, lot, from, points, entry)
}

// scanBorrowed reads rows of (card, lot, from lot, points) into the cards'
// borrowed.
func scanBorrowed(rows pgx.Rows, out map[string]*cardState) error {
	for rows.Next() {
		var card, lot, from, pts string
		if err := rows.Scan(&card, &lot, &from, &pts); err != nil {
			return fmt.Errorf("read what lots borrowed: %w", err)
		}
		d, err := decimal.NewFromString(pts)
		if err != nil {
			return fmt.Errorf("card %s lot %s borrowed from %s %q: %w", card, lot, from, pts, err)
		}
		if c := out[card]; c != nil {
			if c.borrowed == nil {
				c.borrowed = map[string][]lotBorrow{}
			}
			c.borrowed[lot] = append(c.borrowed[lot], lotBorrow{lot: lot, from: from, points: d})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read what lots borrowed: %w", err)
	}
	return nil
}

// scanForgiven reads rows of (card, lot, points) into the cards' forgiven.
func scanForgiven(rows pgx.Rows, out map[string]*cardState) error {
	for rows.Next() {
		var card, lot, pts string
		if err := rows.Scan(&card, &lot, &pts); err != nil {
			return fmt.Errorf("read the write-offs returns may take back: %w", err)
		}
		d, err := decimal.NewFromString(pts)
		if err != nil {
			return fmt.Errorf("card %s lot %s write-offs %q: %w", card, lot, pts, err)
		}
		if c := out[card]; c != nil {
			c.forgive(lot, d)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the write-offs returns may take back: %w", err)
	}
	return nil
}

// lotState is a lot as folding changes it.
type lotState struct {
	ID                string
	Points, Remaining decimal.Decimal
	// Expired is what points expiry took from the lot (Maintain), and
	// Relapsed the part of it returns dated at or after the lot's expiry
	// gave back (lapsed at once); relapsing is such points given back in
	// this fold, not expired yet.
	Expired, Relapsed decimal.Decimal
	relapsing         decimal.Decimal
	AccruedAt         time.Time
	ActiveFrom        time.Time
	ExpiresAt         *time.Time
	CheckID           string
	dirty             bool
	stored            bool // read from the database (else inserted on save)
}

// cardState is a locked card with its lots, changed in memory and written
// back once.
type cardState struct {
	Code    string
	Debt    decimal.Decimal
	History store.CardHistory
	Lots    map[string]*lotState
	order   []string
	dirty   bool
	// ownProgram and kind are the card's columns; program is the card's
	// program as head office knows it ("" when it does not) and scale its
	// points' decimal places.
	ownProgram, kind string
	program          string
	scale            int32
	// policy is the card's negative-balance policy while folding a till's
	// entries (nil: the card keeps all its debt — allow, a program head
	// office does not know, a correction); writeOffs what it wrote off.
	policy    *debtPolicy
	writeOffs []writeOff
	// forgiven is, per lot spent twice, the points write-offs forgave the
	// card for its shortfall and no return has taken back yet.
	forgiven map[string]decimal.Decimal
	// borrowed is, per lot spent twice, what it borrowed from the card's
	// other lots and has not paid back; newBorrows the rows to write.
	borrowed   map[string][]lotBorrow
	newBorrows []lotBorrow
}

// addDebt raises the card's debt by pts where the debt arises, entry by
// entry, and writes off what the policy does not let the card keep. The
// policy bounds the balance, Σ lots − debt ≥ −keep, so debt up to the
// card's unexpired lots (those not active yet settle it when they
// activate) plus the policy's keep stays; of a rise above that, and above
// the debt the card had just before (a debt already above it is never
// written off), the rest is written off. lot is the lot spent twice whose
// shortfall this is ("" for other debt): a return refilling it takes the
// write-off back. Applied here, not to a batch's net debt, an accrual
// later in the same batch cannot pay an overdraft the policy writes off:
// one batch ends as the same entries in several do. (Ingestion switches
// the debt_policy trigger of migration 0002, which knows only keep, off.)
func (c *cardState) addDebt(pts decimal.Decimal, e *wire.Entry, lot string) {
	before := c.Debt
	c.Debt = c.Debt.Add(pts)
	kept := pts
	if c.policy != nil {
		floor := decimal.Max(c.policy.keep.Add(c.unexpired(e.CreatedAt)), before)
		if extra := c.Debt.Sub(floor); extra.IsPositive() {
			c.Debt, kept = c.Debt.Sub(extra), pts.Sub(extra)
			c.writeOffs = append(c.writeOffs, writeOff{points: extra, program: c.policy.program, mode: c.policy.mode, check: e.CheckID, entry: e.ID, lot: lot})
			if lot != "" {
				c.forgive(lot, extra)
			}
		}
	}
	if lot != "" && kept.IsPositive() {
		c.borrow(lot, store.DebtLot, e.ID, kept) // a return refilling the lot pays it off
	}
}

// unexpired is Σ remaining of the card's lots unexpired at t, active or
// not: what its balance counts.
func (c *cardState) unexpired(t time.Time) decimal.Decimal {
	sum := decimal.Zero
	for _, l := range c.Lots {
		if l.ExpiresAt == nil || t.Before(*l.ExpiresAt) {
			sum = sum.Add(l.Remaining)
		}
	}
	return sum
}

func (c *cardState) forgive(lot string, pts decimal.Decimal) {
	if c.forgiven == nil {
		c.forgiven = map[string]decimal.Decimal{}
	}
	c.forgiven[lot] = c.forgiven[lot].Add(pts)
}

// unwindReturn unwinds, when a return gives points back to a lot whose
// shortfall (spent on two tills) was covered, how it was covered (unwind).
func (c *cardState) unwindReturn(e *wire.Entry) {
	for _, lc := range e.Lots {
		if l, ok := c.Lots[lc.LotID]; ok && lc.Delta.IsPositive() && !lc.Create {
			c.unwind(l, lc.Delta, e, 0)
		}
	}
}

// maxUnwind bounds how far paying back a lot that itself borrowed goes.
const maxUnwind = 4

// unwind takes the points just given back to lot l (amount, already in its
// remaining) to where its shortfall came from, in the order the shortfall
// was covered, before the rest stays in l: first what a write-off forgave
// — whichever of the two sales is returned, the other alone no longer
// overdraws the card, and giving the forgiven points back too would make
// points; a "returned" write-off of minus that is recorded — then what l
// borrowed: from the card's other lots, paid back to them with their own
// expiry (and unwound in turn: a lot paid back may have been spent twice
// itself), and from debt, which it pays off. A partial return unwinds in
// that order, debt before the other lots.
func (c *cardState) unwind(l *lotState, amount decimal.Decimal, e *wire.Entry, depth int) {
	left := amount
	if t := decimal.Min(c.forgiven[l.ID], left, l.Remaining); t.IsPositive() {
		program := c.program
		if c.policy != nil {
			program = c.policy.program
		}
		l.Remaining, l.dirty, left = l.Remaining.Sub(t), true, left.Sub(t)
		c.writeOffs = append(c.writeOffs, writeOff{points: t.Neg(), program: program, mode: "returned", check: e.CheckID, entry: e.ID, lot: l.ID})
		c.forgive(l.ID, t.Neg())
	}
	// Debt first: paid off by the return, it is not left for settle to
	// take from the very lots the rest of the return pays back.
	var borrowed []lotBorrow // a copy: borrow changes c.borrowed
	for _, debt := range []bool{true, false} {
		for _, b := range c.borrowed[l.ID] {
			if (b.from == store.DebtLot) == debt {
				borrowed = append(borrowed, b)
			}
		}
	}
	for _, b := range borrowed {
		// What l still owes b.from now: a nested unwind (a lot l paid back
		// that had borrowed from l in turn) may have paid some of it back
		// since the copy was taken.
		t := decimal.Min(c.owed(l.ID, b.from), left, l.Remaining)
		if b.from == store.DebtLot {
			t = decimal.Min(t, c.Debt)
		}
		from, known := c.Lots[b.from]
		if !t.IsPositive() || !known && b.from != store.DebtLot {
			continue
		}
		l.Remaining, l.dirty, left = l.Remaining.Sub(t), true, left.Sub(t)
		c.borrow(l.ID, b.from, e.ID, t.Neg())
		if b.from == store.DebtLot {
			c.Debt = c.Debt.Sub(t)
			continue
		}
		from.Remaining, from.dirty = from.Remaining.Add(t), true
		if depth < maxUnwind {
			c.unwind(from, t, e, depth+1)
		}
	}
}

// expire moves what is left in the card's lots expired at t to what
// expiry took (lots.expired); it returns how many lots it expired.
func (c *cardState) expire(t time.Time) int {
	n := 0
	for _, id := range c.order {
		l := c.Lots[id]
		if l.ExpiresAt != nil && !t.Before(*l.ExpiresAt) && l.Remaining.IsPositive() {
			l.Relapsed = l.Relapsed.Add(decimal.Min(l.relapsing, l.Remaining))
			l.Expired, l.Remaining, l.relapsing = l.Expired.Add(l.Remaining), decimal.Zero, decimal.Zero
			l.dirty, c.dirty = true, true
			n++
		}
	}
	return n
}

// settle pays the card's debt from its lots active and unexpired at t,
// soonest-expiring first; the balance does not change. Debt left next to
// spendable points would otherwise outlive them: a lot that expired
// before settling took the card below zero.
func (c *cardState) settle(t time.Time) bool {
	if !c.Debt.IsPositive() {
		return false
	}
	before := c.Debt
	for _, lc := range consume(c, c.Debt, t) {
		if l, ok := c.Lots[lc.LotID]; ok {
			l.Remaining, l.dirty = l.Remaining.Add(lc.Delta), true
			c.Debt = c.Debt.Add(lc.Delta)
			c.paidBy(l.ID, lc.Delta.Neg())
		}
	}
	return !c.Debt.Equal(before)
}

// paidBy records that lot paid pts of the card's debt: the debt lots spent
// twice left (borrowed from debt) is then owed to that lot, so a return
// refilling them pays the lot back, with its own expiry, instead of
// keeping its points in the refilled lot.
func (c *cardState) paidBy(lot string, pts decimal.Decimal) {
	owing := make([]string, 0, len(c.borrowed))
	for id := range c.borrowed {
		owing = append(owing, id)
	}
	sort.Strings(owing)
	for _, id := range owing {
		for _, b := range slices.Clone(c.borrowed[id]) {
			if b.from != store.DebtLot || !pts.IsPositive() {
				continue
			}
			if q := decimal.Min(b.points, pts); q.IsPositive() {
				c.borrow(id, store.DebtLot, "", q.Neg())
				c.borrow(id, lot, "", q)
				pts = pts.Sub(q)
			}
		}
	}
}

// lockCards locks the cards (codes sorted: the fixed lock order; FOR NO
// KEY UPDATE, as ingestion, so lot inserts' foreign-key checks are not
// blocked) and loads their live lots, and lot (if not "") whatever it
// holds, in one round trip: what a correction (which creates lot or
// spends live ones) and Maintain (which expires and settles from live
// ones) may touch.
func lockCards(ctx context.Context, tx pgx.Tx, sorted []string, lot string) (map[string]*cardState, error) {
	out := map[string]*cardState{}
	var pb pgx.Batch
	pb.Queue(`SELECT `+sqlCardColumns+` FROM cards c
		WHERE c.code IN (SELECT unnest($1::text[])) ORDER BY c.code FOR NO KEY UPDATE OF c`, sorted).Query(func(rows pgx.Rows) error {
		return scanCards(rows, out)
	})
	pb.Queue(sqlLotColumns+`FROM (SELECT unnest($1::text[])`+sqlLotsOfCards+sqlLiveLotsEnd, sorted).Query(func(rows pgx.Rows) error {
		return scanLots(rows, out)
	})
	if lot != "" {
		pb.Queue(sqlNamedLots, sorted, slices.Repeat([]string{lot}, len(sorted))).Query(func(rows pgx.Rows) error {
			return scanLots(rows, out)
		})
	}
	// What lots spent twice still owe (settling debt moves it to the lot
	// that paid: cardState.paidBy).
	pb.Queue(sqlBorrowedOf+`SELECT unnest($1::text[])`+sqlBorrowedEnd, sorted).Query(func(rows pgx.Rows) error {
		return scanBorrowed(rows, out)
	})
	if err := tx.SendBatch(ctx, &pb).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// loadNamedLots reads the lots the fold may touch that the live ones read
// with the cards left out, one more query only when there are any: used
// up, but named by an entry of the chain (spent, or given back to by a
// return) or by what a lot spent twice borrowed (lent from, paid back).
// A lot the fold does not hold is one head office never had. Lots that
// entries create are not looked for: one that exists makes the insert
// fail, and Ingest folds again reading every lot of the cards.
func loadNamedLots(ctx context.Context, conn *pgx.Conn, cards map[string]*cardState, entries []wire.Entry) error {
	var cs, ls []string
	seen := map[[2]string]bool{}
	want := func(card, lot string) {
		c := cards[card]
		if c == nil || lot == store.DebtLot || seen[[2]string{card, lot}] {
			return
		}
		if _, ok := c.Lots[lot]; !ok {
			seen[[2]string{card, lot}] = true
			cs, ls = append(cs, card), append(ls, lot)
		}
	}
	for _, e := range entries {
		for _, lc := range e.Lots {
			if !lc.Create {
				want(e.CardCode, lc.LotID)
			}
		}
	}
	for code, c := range cards {
		for lot, bs := range c.borrowed {
			want(code, lot)
			for _, b := range bs {
				want(code, b.from)
			}
		}
	}
	if len(cs) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, sqlNamedLots, cs, ls)
	if err != nil {
		return fmt.Errorf("load the used-up lots the chain names: %w", err)
	}
	defer rows.Close()
	return scanLots(rows, cards)
}

// scanCards reads rows of (code, debt, history) into out.
func scanCards(rows pgx.Rows, out map[string]*cardState) error {
	for rows.Next() {
		var c cardState
		var debt string
		var hist []byte
		if err := rows.Scan(&c.Code, &debt, &hist, &c.ownProgram, &c.kind); err != nil {
			return fmt.Errorf("lock cards: %w", err)
		}
		var err error
		if c.Debt, err = decimal.NewFromString(debt); err != nil {
			return fmt.Errorf("card %s debt %q: %w", c.Code, debt, err)
		}
		if c.History, err = store.DecodeHistory(hist); err != nil {
			return fmt.Errorf("card %s history: %w", c.Code, err)
		}
		c.Lots = map[string]*lotState{}
		out[c.Code] = &c
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock cards: %w", err)
	}
	return nil
}

// scanLots reads lot rows (ordered by card, lot id) into the cards of out.
func scanLots(rows pgx.Rows, out map[string]*cardState) error {
	for rows.Next() {
		var card, pts, rem, exp, rel string
		var l lotState
		if err := rows.Scan(&card, &l.ID, &pts, &rem, &exp, &rel, &l.AccruedAt, &l.ActiveFrom, &l.ExpiresAt, &l.CheckID); err != nil {
			return fmt.Errorf("load lots: %w", err)
		}
		var e1, e2, e3, e4 error
		l.Points, e1 = decimal.NewFromString(pts)
		l.Remaining, e2 = decimal.NewFromString(rem)
		l.Expired, e3 = decimal.NewFromString(exp)
		l.Relapsed, e4 = decimal.NewFromString(rel)
		if err := errors.Join(e1, e2, e3, e4); err != nil {
			return fmt.Errorf("lot %s of card %s: %w", l.ID, card, err)
		}
		c := out[card]
		if c == nil {
			return fmt.Errorf("load lots: lot %s of card %s, which is not locked", l.ID, card)
		}
		l.stored = true
		c.Lots[l.ID] = &l
		// In lot id order, as the fold has always walked them: live and
		// used-up lots come in two reads.
		at, _ := slices.BinarySearch(c.order, l.ID)
		c.order = slices.Insert(c.order, at, l.ID)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load lots: %w", err)
	}
	return nil
}

// debits says whether e takes points from its card: a spend, a return's
// take-back, what a lot it names cannot cover.
func debits(e *wire.Entry) bool {
	if e.Points.IsNegative() {
		return true
	}
	for _, lc := range e.Lots {
		if lc.Delta.IsNegative() {
			return true
		}
	}
	return false
}

func (c *cardState) addLot(l *lotState) {
	l.dirty = true
	if old, ok := c.Lots[l.ID]; ok {
		l.stored = old.stored // replaced: written once, in place
	} else {
		c.order = append(c.order, l.ID)
	}
	c.Lots[l.ID] = l
}

// apply folds one entry into the card exactly as the till's balance formula
// reads it (docs/replica.md), keeping every lot within 0..points: a lot
// driven below zero is set to 0 and the shortfall is taken from the card's
// other active lots, and what they cannot cover becomes card debt (the
// returned overdraft); then debt is settled from the active lots (later
// active lots settle it in Maintain). Balance = Σ lots − debt is the same
// either way. It returns the points the entry overdrew.
func (c *cardState) apply(e wire.Entry, loc *time.Location) decimal.Decimal {
	return c.applyAt(e, loc, e.CreatedAt)
}

// applyAt is apply counting the entry into the card's purchase history at
// historyAt.
func (c *cardState) applyAt(e wire.Entry, loc *time.Location, historyAt time.Time) decimal.Decimal {
	c.dirty = true
	over := decimal.Zero
	var unknown []*lotState // given points back, not known to head office
	refilled := false       // points given back to a lot head office has
	if len(e.Lots) == 0 {
		switch {
		case e.Points.IsNegative():
			// From the card's active lots first, as a till would have
			// taken it; only what they cannot cover is debt.
			short := c.reallocate(e.Points.Neg(), e.CreatedAt)
			c.addDebt(short, &e, "")
			if e.Kind == store.KindRedemption {
				over = short
			}
		case e.Points.IsPositive():
			c.addLot(&lotState{ID: e.ID, Points: e.Points, Remaining: e.Points, AccruedAt: e.CreatedAt, ActiveFrom: e.CreatedAt, CheckID: e.CheckID})
		}
	}
	for _, lc := range e.Lots {
		l, ok := c.Lots[lc.LotID]
		switch {
		case lc.Create && ok:
			// Never count a lot twice. (An entry creating a lot the card
			// held before the fold is kept as rejected: createdTwice.)
		case lc.Create:
			nl := &lotState{ID: lc.LotID, Points: lc.Delta, Remaining: lc.Delta, AccruedAt: e.CreatedAt,
				ActiveFrom: lc.ActiveFrom, CheckID: e.CheckID}
			if !lc.ExpiresAt.IsZero() {
				t := lc.ExpiresAt
				nl.ExpiresAt = &t
			}
			if nl.ActiveFrom.Before(nl.AccruedAt) {
				nl.AccruedAt = nl.ActiveFrom
			}
			if nl.ExpiresAt != nil && !nl.ExpiresAt.Truncate(time.Millisecond).After(nl.ActiveFrom.Truncate(time.Millisecond)) {
				// A lot that lapses before it activates is worth nothing, but
				// a replica lot must expire after it activates (in the
				// milliseconds the till keeps), or every till's feed import
				// would be refused over it.
				t := nl.ActiveFrom.Add(time.Second)
				nl.ExpiresAt = &t
			}
			if !nl.ActiveFrom.After(e.CreatedAt) {
				// Settle debt only from points spendable now: taking it
				// from a lot not yet active would let the card spend the
				// settled amount early.
				take := decimal.Min(c.Debt, nl.Remaining)
				nl.Remaining, c.Debt = nl.Remaining.Sub(take), c.Debt.Sub(take)
				c.paidBy(nl.ID, take)
			}
			c.addLot(nl)
		case ok:
			r := l.Remaining.Add(lc.Delta)
			l.Remaining, l.dirty = decimal.Max(r, decimal.Zero), true
			refilled = refilled || lc.Delta.IsPositive()
			if lc.Delta.IsPositive() && l.ExpiresAt != nil && !e.CreatedAt.Before(*l.ExpiresAt) {
				l.relapsing = l.relapsing.Add(lc.Delta) // given back after the lot lapsed: lapses at once
			}
			if r.IsNegative() && l.Expired.IsPositive() && (l.ExpiresAt == nil || e.CreatedAt.Before(*l.ExpiresAt) || e.Kind == store.KindReversal) {
				// Points expiry took them first: spent before the lot
				// expired (the entry came after the expiry ran), or taken
				// back by a return after it. They left the balance once,
				// with the expiry; taking them from the card's other lots
				// as well would take them twice.
				take := decimal.Min(l.Expired, r.Neg())
				l.Expired, r = l.Expired.Sub(take), r.Add(take)
				l.Relapsed = decimal.Min(l.Relapsed, l.Expired)
			}
			if r.IsNegative() {
				// The lot was already spent (on another till, offline): take
				// the rest from the card's other active lots, as the till
				// would have had it known, and only what they cannot cover
				// is an overdraft.
				short := c.borrowFor(lc.LotID, e.ID, r.Neg(), e.CreatedAt)
				c.addDebt(short, &e, lc.LotID)
				over = over.Add(short)
			}
		case lc.Delta.IsNegative() && lc.LotID == store.DebtLot:
			// The ~debt lot of a return the till's balance could not
			// cover: head office may know of points it did not (a
			// correction, another till's accrual); only what the card's
			// active lots cannot cover is debt.
			c.addDebt(c.reallocate(lc.Delta.Neg(), e.CreatedAt), &e, "")
		case lc.Delta.IsNegative():
			// A lot head office never had (its accrual was rejected, say):
			// spent as a lot found empty, its shortfall borrowed from the
			// card's other lots, then debt, all recorded against it, so a
			// return to it unwinds them.
			short := c.borrowFor(lc.LotID, e.ID, lc.Delta.Neg(), e.CreatedAt)
			c.addDebt(short, &e, lc.LotID)
			over = over.Add(short)
		case lc.Delta.IsPositive():
			unknown = append(unknown, &lotState{ID: lc.LotID, Points: lc.Delta, Remaining: lc.Delta,
				AccruedAt: e.CreatedAt, ActiveFrom: e.CreatedAt, CheckID: e.CheckID})
		}
	}
	if e.Kind == store.KindReversal {
		c.unwindReturn(&e)
	}
	for _, l := range unknown {
		// Points given back to a lot head office never had undo its
		// shortfall first; only the rest is a lot.
		c.unwind(l, l.Remaining, &e, 0)
		if l.Remaining.IsPositive() {
			l.Points = l.Remaining
			c.addLot(l)
		}
	}
	// A lot never holds more than it was issued, but a return may fill it
	// past that on the way: given back to a lot spent on two tills, the
	// points pass through it to the lots its shortfall borrowed from, and
	// points paid back to one of those pass on to what it owes in turn.
	// Only what stays when the entry is done may raise what it was issued.
	// Only points given back move a lot up (the rest of a batch's entries,
	// nearly all, skip the walk over the card's lots).
	if refilled || len(unknown) > 0 {
		for _, l := range c.Lots {
			if l.Remaining.GreaterThan(l.Points) {
				l.Points, l.dirty = l.Remaining, true
			}
		}
	}
	c.History = addHistory(c.History, e, historyAt, loc)
	return over
}

// reallocate takes pts from the card's lots active and unexpired at t,
// soonest-expiring first, and returns what they could not cover.
func (c *cardState) reallocate(pts decimal.Decimal, t time.Time) decimal.Decimal {
	return c.borrowFor("", "", pts, t)
}

// borrowFor is reallocate for the shortfall of lot (spent twice; "": not a
// lot's), recording what the lot borrowed from each other lot (entry: the
// one that overdrew it), so that a return refilling it pays them back.
//
// A lot that lapsed after t gives what expiry took from it too
// (sqlLapsedLots read it), but not what returns gave back after the
// lapse (Relapsed): the points the entry spent were there when it
// was written, and left the balance with the expiry, so the entry ends
// as it would have, folded before the expiry run.
func (c *cardState) borrowFor(lot, entry string, pts decimal.Decimal, t time.Time) decimal.Decimal {
	for _, p := range c.picks(pts, t, true) {
		l := p.lot
		fromRemaining := decimal.Min(p.take, l.Remaining)
		l.Remaining, l.Expired = l.Remaining.Sub(fromRemaining), l.Expired.Sub(p.take.Sub(fromRemaining))
		l.dirty = true
		pts = pts.Sub(p.take)
		if lot != "" {
			c.borrow(lot, l.ID, entry, p.take)
		}
	}
	return pts
}

// borrow records that lot borrowed pts from lot from (negative: paid
// back), to be written, and in the card's running balance of borrowings.
func (c *cardState) borrow(lot, from, entry string, pts decimal.Decimal) {
	c.newBorrows = append(c.newBorrows, lotBorrow{lot: lot, from: from, entry: entry, points: pts})
	if c.borrowed == nil {
		c.borrowed = map[string][]lotBorrow{}
	}
	for i, b := range c.borrowed[lot] {
		if b.from == from {
			c.borrowed[lot][i].points = b.points.Add(pts)
			return
		}
	}
	c.borrowed[lot] = append(c.borrowed[lot], lotBorrow{lot: lot, from: from, points: pts})
}

// owed is what lot still owes from (its borrows from it, net).
func (c *cardState) owed(lot, from string) decimal.Decimal {
	for _, b := range c.borrowed[lot] {
		if b.from == from {
			return b.points
		}
	}
	return decimal.Zero
}

// lotBorrow is points lot borrowed from lot from (a row of lot_borrows).
type lotBorrow struct {
	lot, from, entry string
	points           decimal.Decimal
}

// addHistory counts an entry into the card's purchase history: the month
// is the store-local month of at (the entry's time, or now for one dated
// ahead of head office's clock); counters of an older month roll over as
// the till reads them (docs/replica.md, "History for tiers and caps").
func addHistory(h store.CardHistory, e wire.Entry, at time.Time, loc *time.Location) store.CardHistory {
	m := at.In(loc).Format("2006-01")
	p := checkout.Kopecks(e.PurchaseKop)
	h.PurchasesAllTime = h.PurchasesAllTime.Add(p)
	acc, red := checkout.Points{}, checkout.Points{}
	switch e.Kind {
	case store.KindAccrual:
		acc = checkout.PointsOf(e.Points)
	case store.KindRedemption:
		red = checkout.PointsOf(e.Points.Neg())
	}
	next := func(month string) string {
		t, err := time.Parse("2006-01", month)
		if err != nil {
			return ""
		}
		return t.AddDate(0, 1, 0).Format("2006-01")
	}
	switch {
	case h.Month == "" || m > h.Month:
		prev := checkout.Money{}
		if h.Month != "" && next(h.Month) == m {
			prev = h.PurchasesMonth
		}
		h.Month, h.PurchasesPrevMonth, h.PurchasesMonth = m, prev, p
		h.AccruedMonth, h.RedeemedMonth = acc, red
	case m == h.Month:
		h.PurchasesMonth = h.PurchasesMonth.Add(p)
		h.AccruedMonth = h.AccruedMonth.Add(acc)
		h.RedeemedMonth = h.RedeemedMonth.Add(red)
	case next(m) == h.Month:
		h.PurchasesPrevMonth = h.PurchasesPrevMonth.Add(p)
	}
	// A return can take a month's counters below zero only if the sale was
	// counted in a month head office has rolled over; keep them valid. A
	// counter stops at store.MaxHistory (10 trillion roubles, beyond any
	// card): past it, no till could import the card.
	for _, m := range []*checkout.Money{&h.PurchasesAllTime, &h.PurchasesMonth, &h.PurchasesPrevMonth} {
		if m.IsNegative() {
			*m = checkout.Money{}
		}
		if m.Cmp(store.MaxHistory) > 0 {
			*m = store.MaxHistory
		}
	}
	for _, p := range []*checkout.Points{&h.AccruedMonth, &h.RedeemedMonth} {
		if p.IsNegative() {
			*p = checkout.Points{}
		}
	}
	return h
}

// saveCards writes back the changed cards and lots in one round trip and
// logs a change per card.
func saveCards(ctx context.Context, tx pgx.Tx, cards map[string]*cardState) error {
	var pb pgx.Batch
	if err := queueSaveCards(&pb, cards); err != nil {
		return err
	}
	if pb.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, &pb).Close(); err != nil {
		return fmt.Errorf("save cards: %w", err)
	}
	return nil
}

// queueSaveCards queues the writes of the changed cards and lots (three
// statements) and a change row per card.
func queueSaveCards(pb *pgx.Batch, cards map[string]*cardState) error {
	codes := codesWhere(cards, func(c *cardState) bool { return c.dirty })
	if len(codes) == 0 {
		return nil
	}
	var debts, hists []string
	var ins lotColumns // lots new to the database
	var upd lotColumns // lots read from it
	for _, code := range codes {
		c := cards[code]
		debts, hists = append(debts, c.Debt.String()), append(hists, string(store.AppendHistoryJSON(nil, &c.History)))
		for _, id := range c.order {
			switch l := c.Lots[id]; {
			case !l.dirty:
			case l.stored:
				upd.add(code, l)
			default:
				ins.add(code, l)
			}
		}
	}
	pb.Queue(`UPDATE cards c SET debt = u.debt::numeric, history = u.history::json
		FROM unnest($1::text[], $2::text[], $3::text[]) AS u(code, debt, history) WHERE c.code = u.code`, codes, debts, hists)
	// The cards are locked, so their lots are exactly those read: new ones
	// are inserted, the others updated (no ON CONFLICT needed).
	if len(ins.card) > 0 {
		// expired too: a late accrual's lot may have lapsed before it came
		// (the fold expires it at once), and its return takes from that.
		pb.Queue(`INSERT INTO lots (card, lot_id, points, remaining, expired, relapsed, accrued_at, active_from, expires_at, check_id)
			SELECT u.card, u.lot_id, u.points::numeric, u.remaining::numeric, u.expired::numeric, u.relapsed::numeric, u.acc, u.act, u.exp, u.chk
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[])
				AS u(card, lot_id, points, remaining, expired, relapsed, acc, act, exp, chk)`,
			ins.card, ins.id, ins.points, ins.remaining, ins.expired, ins.relapsed, ins.accrued, ins.from, ins.expires, ins.check)
	}
	if len(upd.card) > 0 {
		pb.Queue(`UPDATE lots l SET points = u.points::numeric, remaining = u.remaining::numeric, expired = u.expired::numeric,
				relapsed = u.relapsed::numeric
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(card, lot_id, points, remaining, expired, relapsed)
			WHERE l.card = u.card AND l.lot_id = u.lot_id`, upd.card, upd.id, upd.points, upd.remaining, upd.expired, upd.relapsed)
	}
	pb.Queue(`INSERT INTO changes (section, key) SELECT 'cards', unnest($1::text[])`, codes)
	queueBorrows(pb, cards)
	return nil
}

// lotColumns are lots as the columns of an unnest.
type lotColumns struct {
	card, id, points, remaining, expired, relapsed, check []string
	accrued, from                                         []time.Time
	expires                                               []*time.Time
}

func (c *lotColumns) add(card string, l *lotState) {
	c.card, c.id, c.check = append(c.card, card), append(c.id, l.ID), append(c.check, l.CheckID)
	c.points, c.remaining = append(c.points, l.Points.String()), append(c.remaining, l.Remaining.String())
	c.expired, c.relapsed = append(c.expired, l.Expired.String()), append(c.relapsed, l.Relapsed.String())
	c.accrued, c.from, c.expires = append(c.accrued, l.AccruedAt), append(c.from, l.ActiveFrom), append(c.expires, l.ExpiresAt)
}

// relinkForks makes an entry whose predecessor is an entry folded before
// the watermark a first entry (its chain restarts there, as a replaced
// store's first entry restarts it). Such an entry forks the chain: its
// till went on from an older copy of its store (a disk image put back),
// so the entries head office folded after the predecessor are not on the
// till any more, and no push can ever fill the gap: it waited for ever,
// answered applied, and the till counted it as head office would not
// (its balance is head office's lots and its own entries after the
// watermark). One query, only for the predecessors not found in the
// batch, among the entries waiting, or as the watermark (a gap, or a
// fork).
func relinkForks(ctx context.Context, conn *pgx.Conn, log *slog.Logger, till, folded string, byPrev map[string]string,
	unfolded map[string]string, fresh map[string]*wire.Entry) error {
	if folded == "" {
		return nil // nothing folded: no fork
	}
	var ask []string
	for prev := range byPrev {
		if _, waiting := unfolded[prev]; !waiting && prev != "" && prev != folded && fresh[prev] == nil {
			ask = append(ask, prev)
		}
	}
	if len(ask) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT id FROM journal WHERE id = ANY($1) AND till_id = $2 AND folded`, ask, till)
	if err != nil {
		return fmt.Errorf("look up the predecessors not on the chain: %w", err)
	}
	forkedAt, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("look up the predecessors not on the chain: %w", err)
	}
	for _, prev := range forkedAt {
		id := byPrev[prev]
		if id <= folded {
			continue // could never restart the chain: it waits, as before
		}
		delete(byPrev, prev)
		linkPrev(byPrev, "", id)
		log.Warn("till journal forked: an entry follows one folded before the watermark (its store put back from an older copy?); its chain restarts there",
			"till", till, "entry", id, "prev", prev, "folded_through", folded)
	}
	return nil
}

// linkPrev notes id as the successor of prev. Of several first entries
// (no predecessor: the journals of a till store replaced more than once,
// as a retake or a late batch may bring them together) the earliest is
// kept: the chain restarts there, and a later store's journal restarts it
// again at a push after that one ends, in the order they were written,
// rather than the last one read orphaning those before it.
func linkPrev(byPrev map[string]string, prev, id string) {
	if first, ok := byPrev[prev]; ok && first < id {
		// Of two successors of one entry (a fork, brought together by a
		// retake) the earlier stays on the chain; the later waits, and
		// relinkForks restarts the chain at it once its predecessor is
		// folded.
		return
	}
	byPrev[prev] = id
}
