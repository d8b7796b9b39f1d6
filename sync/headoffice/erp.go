package headoffice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"tillagent/checkout"
	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// ImportStats counts what an ERP import changed (records whose content was
// already stored are not counted).
type ImportStats struct {
	Catalog int `json:"catalog"`
	Cards   int `json:"cards"`
	Lots    int `json:"lots"`
	// LotsDiffer counts lots the import gave that head office already
	// holds with other points, activation or expiry: left alone (once
	// stored, a lot changes by folding and corrections only), and counted
	// so the ERP job sees its data differ.
	LotsDiffer int `json:"lots_differ,omitempty"`
	// DifferingLots names the first maxDifferingLots of them as
	// "card/lot", so the ERP job can find its data without a diff of its
	// own.
	DifferingLots []string `json:"differing_lots,omitempty"`
}

// maxDifferingLots bounds DifferingLots: an ERP job that re-sends a
// million stale lots gets the count and a sample, not a megabyte answer.
const maxDifferingLots = 100

// Import loads an ERP replica (the till's replica format, docs/replica.md)
// in one transaction: every record is checked, references may point at
// records already stored, and on any problem nothing is written and every
// problem is returned (store.RecordError names the record). Upserts are
// idempotent: a record that is already stored as sent logs no change. For a
// card already known only its attributes (kind, program, state, holder,
// block reason) are updated; its debt and history belong to head office. A
// lot already known is left alone: once it exists only the journal,
// corrections and expiry change it.
func (s *Server) Import(ctx context.Context, r *store.Replica) (ImportStats, error) {
	var st ImportStats
	if len(r.FoldedThrough) > 0 {
		return st, &RefusedImport{Err: errors.New("erp import: folded_through is head office's, not an ERP field")}
	}
	if err := checkImportText(r); err != nil {
		return st, fmt.Errorf("erp import: %w", &RefusedImport{Err: err})
	}
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		st, err = importTx(ctx, tx, r)
		return err
	})
	if err != nil {
		return ImportStats{}, fmt.Errorf("erp import: %w", err)
	}
	return st, nil
}

// importTx is Import inside tx (tests hold it open to commit late).
func importTx(ctx context.Context, tx pgx.Tx, r *store.Replica) (ImportStats, error) {
	var st ImportStats
	if len(r.Cards) > 0 {
		// A store's card scope widened meanwhile must see the cards this
		// creates, or be committed first (SetCardScope).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1, hashtext(current_schema()))`, cardsCreatedLock); err != nil {
			return st, fmt.Errorf("wait for a card scope being widened: %w", err)
		}
	}
	err := func() error {
		var lookupErr error
		exists := pgExists(ctx, tx)
		err := r.Validate(func(table, id string) (bool, error) {
			ok, err := exists(table, id)
			if err != nil && lookupErr == nil {
				lookupErr = err
			}
			return ok, err
		})
		switch {
		case lookupErr != nil:
			return fmt.Errorf("look up references: %w", lookupErr)
		case err != nil:
			return &RefusedImport{Err: err}
		}
		if err := checkImportPoints(ctx, tx, r); err != nil {
			return err
		}
		if err := checkCatalogChanges(ctx, tx, r); err != nil {
			return err
		}
		upsert := func(section, id string, v any) error {
			body, err := json.Marshal(v)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `WITH up AS (
				INSERT INTO catalog (section, id, body) VALUES ($1, $2, $3)
				ON CONFLICT (section, id) DO UPDATE SET body = excluded.body
				WHERE catalog.body::text IS DISTINCT FROM excluded.body::text RETURNING 1)
				INSERT INTO changes (section, key) SELECT $1, $2 FROM up`, section, id, string(body))
			if err != nil {
				return fmt.Errorf("%s id %q: %w", section, id, err)
			}
			st.Catalog += int(tag.RowsAffected())
			return nil
		}
		for _, x := range r.Stores {
			if err := upsert("stores", x.ID, x); err != nil {
				return err
			}
		}
		for _, x := range parentsFirst(r.Groups) {
			if err := upsert("groups", x.ID, x); err != nil {
				return err
			}
		}
		for _, x := range r.Products {
			if err := upsert("products", x.ID, x); err != nil {
				return err
			}
		}
		for _, p := range r.Programs {
			promos := p.Promotions
			p.Promotions = nil
			if err := upsert("programs", p.ID, p); err != nil {
				return err
			}
			for _, pr := range promos {
				if err := upsert("promotions", pr.ID, store.ReplicaPromotion{Program: p.ID, Promotion: pr}); err != nil {
					return err
				}
			}
		}
		for _, x := range r.Promotions {
			if err := upsert("promotions", x.ID, x); err != nil {
				return err
			}
		}
		for _, x := range r.CardKinds {
			if err := upsert("card_kinds", x.ID, x); err != nil {
				return err
			}
		}
		for _, x := range r.CardKeys {
			if err := upsert("card_keys", strconv.Itoa(int(x.ID)), x); err != nil {
				return err
			}
		}
		if err := importCards(ctx, tx, r, &st); err != nil {
			return err
		}
		return nil
	}()
	return st, err
}

// importChunk is how many card or lot rows an import sends to PostgreSQL
// in one round trip: a pgx batch of single-row statements, so each keeps
// the error naming its record while an import costs rows/importChunk round
// trips, not one a row.
const importChunk = 1000

// The cards whose record or lots an import changed are collected in a
// temporary table, not in Go, so an import of millions of cards does not
// hold their codes in memory; the change rows come out of it at the end.
// It is dropped at commit (or rollback); IF NOT EXISTS and the DELETE at
// the end let a transaction run more than one import.
const (
	sqlImportChangedTable = `CREATE TEMP TABLE IF NOT EXISTS erp_import_changed (code text PRIMARY KEY) ON COMMIT DROP`
	// An upsert of one card: 1 if it changed the card, else 0.
	sqlImportCard = `WITH up AS (
			INSERT INTO cards (code, kind, program, state, block_reason, holder, debt, history)
			VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8)
			ON CONFLICT (code) DO UPDATE SET kind = excluded.kind, program = excluded.program, state = excluded.state,
				block_reason = excluded.block_reason, holder = excluded.holder
			WHERE (cards.kind, cards.program, cards.state, cards.block_reason, cards.holder) IS DISTINCT FROM
				(excluded.kind, excluded.program, excluded.state, excluded.block_reason, excluded.holder)
			RETURNING code),
		mark AS (INSERT INTO erp_import_changed SELECT code FROM up ON CONFLICT DO NOTHING)
		SELECT count(*) FROM up`
	// An insert of one lot, left alone if stored: 1 if new, -1 if stored
	// with other points, activation or expiry (its remaining moves with
	// the tills' entries, so it is not compared), else 0. The subquery
	// reads the lot as it was before the statement.
	sqlImportLot = `WITH up AS (
			INSERT INTO lots (card, lot_id, points, remaining, accrued_at, active_from, expires_at, check_id)
			VALUES ($1, $2, $3::numeric, $4::numeric, $5, $6, $7, $8) ON CONFLICT DO NOTHING
			RETURNING card),
		mark AS (INSERT INTO erp_import_changed SELECT card FROM up ON CONFLICT DO NOTHING)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM up) THEN 1
			WHEN EXISTS (SELECT 1 FROM lots WHERE card = $1 AND lot_id = $2
				AND (points, active_from, expires_at) IS DISTINCT FROM ($3::numeric, $6::timestamptz, $7::timestamptz)) THEN -1
			ELSE 0 END`
	// One change row per changed card, in code order, in the import's
	// transaction (its xid, as every change row: the feed's cursor rule is
	// unchanged), section 'cards' (the store scope filters it as before).
	sqlImportChanges = `WITH d AS (DELETE FROM erp_import_changed RETURNING code)
		INSERT INTO changes (section, key) SELECT 'cards', code FROM d ORDER BY code`
)

// importCards writes the replica's cards (in code order: the same lock
// order as folding), then its lots, then one change row per card whose
// record it changed or to which it added a lot, after all of them: the
// feed sends a card with all its lots, so a row per lot would send the
// card again.
func importCards(ctx context.Context, tx pgx.Tx, r *store.Replica, st *ImportStats) error {
	if len(r.Cards) == 0 && len(r.Lots) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, sqlImportChangedTable); err != nil {
		return fmt.Errorf("create the table of changed cards: %w", err)
	}
	cards := r.Cards
	order := sortedOrder(len(cards), func(a, b int) int { return strings.Compare(cards[a].Code, cards[b].Code) })
	n, _, err := execChunked(ctx, tx, order, func(b *pgx.Batch, i int) error {
		c := cards[i]
		hist := store.AppendHistoryJSON(nil, &c.History)
		b.Queue(sqlImportCard, c.Code, c.Kind, c.Program, string(c.State), c.BlockReason, c.Holder, c.Debt.String(), string(hist))
		return nil
	}, func(i int) string { return fmt.Sprintf("cards code %q", cards[i].Code) })
	st.Cards += n
	if err != nil {
		return err
	}
	// Lots by card, then id: two imports touch the lots' unique index in
	// the same order. (Their foreign-key checks take FOR KEY SHARE on the
	// card, which the FOR NO KEY UPDATE of ingestion and lockCards does
	// not block.)
	lots := r.Lots
	order = sortedOrder(len(lots), func(a, b int) int {
		if c := strings.Compare(lots[a].Card, lots[b].Card); c != 0 {
			return c
		}
		return strings.Compare(lots[a].ID, lots[b].ID)
	})
	n, differ, err := execChunked(ctx, tx, order, func(b *pgx.Batch, i int) error {
		l := lots[i]
		rem, from := l.RemainingPoints(), l.ActiveSince()
		b.Queue(sqlImportLot, l.Card, l.ID, l.Points.String(), rem.String(), l.AccruedAt, from, l.ExpiresAt, l.CheckID)
		return nil
	}, func(i int) string { return fmt.Sprintf("lots id %q of card %q", lots[i].ID, lots[i].Card) })
	st.Lots, st.LotsDiffer = st.Lots+n, st.LotsDiffer+len(differ)
	for _, i := range differ {
		if len(st.DifferingLots) == maxDifferingLots {
			break
		}
		st.DifferingLots = append(st.DifferingLots, lots[i].Card+"/"+lots[i].ID)
	}
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqlImportChanges); err != nil {
		return fmt.Errorf("log the changes of the imported cards: %w", err)
	}
	return nil
}

// sortedOrder returns the indices 0..n-1 in the order cmp gives: sorting
// indices (4 bytes a record) instead of a copy of the records keeps an
// import of millions of cards from holding them twice, and leaves the
// caller's replica as it was.
func sortedOrder(n int, cmp func(a, b int) int) []int32 {
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp(int(a), int(b)) })
	return order
}

// execChunked sends one single-row statement per index of order, in pgx
// batches of importChunk (one round trip each); each statement selects 1
// (it changed something), 0 (nothing) or -1 (left alone, but the record
// differs), and execChunked counts the 1s and the -1s. queue queues record
// i's statement; name(i) names the record in an error (in a batch the
// first failing statement is the one whose error comes back first).
func execChunked(ctx context.Context, tx pgx.Tx, order []int32, queue func(b *pgx.Batch, i int) error, name func(i int) string) (changed int, differ []int32, err error) {
	for lo := 0; lo < len(order); lo += importChunk {
		chunk := order[lo:min(lo+importChunk, len(order))]
		b := &pgx.Batch{}
		for _, i := range chunk {
			if err := queue(b, int(i)); err != nil {
				return changed, differ, fmt.Errorf("%s: %w", name(int(i)), err)
			}
		}
		c, d, err := countBatch(tx.SendBatch(ctx, b), chunk, name)
		changed, differ = changed+c, append(differ, d...)
		if err != nil {
			return changed, differ, err
		}
	}
	return changed, differ, nil
}

// countBatch reads one outcome per statement of a sent batch (1, 0, -1)
// and closes it: the count of 1s and the records that gave -1.
func countBatch(br pgx.BatchResults, chunk []int32, name func(i int) string) (changed int, differ []int32, err error) {
	for _, i := range chunk {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil {
			br.Close()
			return changed, differ, fmt.Errorf("%s: %w", name(int(i)), err)
		}
		switch {
		case n > 0:
			changed++
		case n < 0:
			differ = append(differ, i)
		}
	}
	if err := br.Close(); err != nil {
		return changed, differ, fmt.Errorf("%s…%s: %w", name(int(chunk[0])), name(int(chunk[len(chunk)-1])), err)
	}
	return changed, differ, nil
}

// RefusedImport is an ERP import refused for its content (bad values,
// unknown references; Err joins one error per record): a client error,
// where any other import error is head office's (the database).
type RefusedImport struct{ Err error }

func (e *RefusedImport) Error() string { return e.Err.Error() }
func (e *RefusedImport) Unwrap() error { return e.Err }

// ErrRefused marks an ERP request refused for its values (HTTP 422), as
// opposed to head office failing to carry it out (the database: 5xx).
var ErrRefused = errors.New("refused")

type refusedError struct{ err error }

func (e refusedError) Error() string   { return e.err.Error() }
func (e refusedError) Unwrap() []error { return []error{e.err, ErrRefused} }

// refused marks err as the request's fault (errors.Is ErrRefused).
func refused(err error) error { return refusedError{err} }

// requestsFault tells an ERP write refused for what it sent (a marked
// refusal, or a value PostgreSQL refuses: SQLSTATE class 22 data
// exception, 23 integrity constraint) from a failure of head office (the
// connection, a deadlock, the request cancelled, any other database
// error), after which the transaction has rolled back.
func requestsFault(err error) bool {
	var ref *RefusedImport
	var pe *pgconn.PgError
	var ho headOfficeError
	if errors.As(err, &ho) {
		return false
	}
	return errors.Is(err, ErrRefused) || errors.As(err, &ref) ||
		errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

// parentsFirst orders groups so that a parent's change is logged before
// its children's: a paged delta then never brings a group before the
// parent it names (Validate has refused cycles).
func parentsFirst(gs []store.ReplicaGroup) []store.ReplicaGroup {
	pending := map[string]bool{}
	for _, g := range gs {
		pending[g.ID] = true
	}
	out := make([]store.ReplicaGroup, 0, len(gs))
	for len(out) < len(gs) {
		n := len(out)
		for _, g := range gs {
			if pending[g.ID] && !pending[g.Parent] {
				out = append(out, g)
				delete(pending, g.ID)
			}
		}
		if len(out) == n { // a cycle (Validate refuses it): keep file order
			for _, g := range gs {
				if pending[g.ID] {
					out = append(out, g)
				}
			}
			break
		}
	}
	return out
}

// pgExists answers Validate's reference look-ups from the database.
func pgExists(ctx context.Context, tx pgx.Tx) store.Exists {
	return func(table, id string) (bool, error) {
		var q string
		if table == "cards" {
			q = `SELECT EXISTS (SELECT 1 FROM cards WHERE code = $1)`
		} else {
			q = `SELECT EXISTS (SELECT 1 FROM catalog WHERE section = $2 AND id = $1)`
		}
		args := []any{id}
		if table != "cards" {
			args = append(args, table)
		}
		var ok bool
		err := tx.QueryRow(ctx, q, args...).Scan(&ok)
		return ok, err
	}
}

// Correction is a manual accrual (Points > 0) or deduction (< 0) by support.
type Correction struct {
	// ID makes the correction idempotent: the same ID twice applies once.
	ID     string          `json:"id"`
	Card   string          `json:"card"`
	Points decimal.Decimal `json:"points"`
	Reason string          `json:"reason"`
	// ExpiresAt of the lot an accrual creates (omitted: never).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CorrectionResult is the journal entry a correction wrote.
type CorrectionResult struct {
	EntryID   string `json:"entry_id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// ERPTill is the till id of head office's own journal entries (ERP's
// corrections), in the journal and its export.
const ERPTill = "ERP"

// Correct applies a correction as a journal entry of head office (till
// "ERP"): an accrual creates a lot active now; a deduction consumes active
// lots soonest-expiring first and what they cannot cover becomes debt.
func (s *Server) Correct(ctx context.Context, c Correction) (CorrectionResult, error) {
	if err := checkCorrectionText(c); err != nil {
		return CorrectionResult{}, err
	}
	switch {
	case c.ID == "" || utf8.RuneCountInString(c.ID) > 64 || strings.ContainsFunc(c.ID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return CorrectionResult{}, refused(fmt.Errorf("correction %q: id must be 1-64 characters without spaces or control characters", c.ID))
	case c.Card == "":
		return CorrectionResult{}, refused(fmt.Errorf("correction %s: empty card", c.ID))
	case c.Points.IsZero():
		return CorrectionResult{}, refused(fmt.Errorf("correction %s: zero points", c.ID))
	case strings.TrimSpace(c.Reason) == "":
		return CorrectionResult{}, refused(fmt.Errorf("correction %s: a reason is required", c.ID))
	case c.ExpiresAt != nil && c.Points.IsNegative():
		return CorrectionResult{}, refused(fmt.Errorf("correction %s: expires_at must be in the future, on an accrual", c.ID))
	case c.ExpiresAt != nil && !store.ReplicaTime(*c.ExpiresAt):
		// Past year 9999 in UTC no feed could carry the lot.
		return CorrectionResult{}, refused(fmt.Errorf("correction %s: expires_at %s: want before year 10000 in UTC", c.ID, c.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if err := wire.CheckPoints("points", c.Points, -1); err != nil {
		return CorrectionResult{}, refused(fmt.Errorf("correction %s of card %s: %w", c.ID, c.Card, err))
	}
	id := ERPTill + "-" + c.ID
	// The digest tells a retry from another correction under the same id:
	// expires_at in UTC, so a retry that writes it in another zone is the
	// same correction.
	canon := c
	if c.ExpiresAt != nil {
		utc := c.ExpiresAt.UTC()
		canon.ExpiresAt = &utc
	}
	req, _ := json.Marshal(canon)
	sum := sha256.Sum256(req)
	var out CorrectionResult
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Support's deduction is deliberate: the negative-balance policy
		// (migration 0002, debt_policy) does not write any of it off.
		if _, err := tx.Exec(ctx, `SELECT set_config('headoffice.debt_policy', 'off', true)`); err != nil {
			return err
		}
		lot := correctionLot(id)
		cards, err := lockCards(ctx, tx, []string{c.Card}, lot)
		if err != nil {
			return headOffice(fmt.Errorf("read the card: %w", err))
		}
		// A retry is told first, before what may have changed since the
		// correction was applied (its expiry passed, the card's program
		// moved to whole points): answered refused, ERP would take the
		// applied correction for one not written and send it again under
		// another id, the points given twice; the retake would count it
		// rejected. After the card's lock, so two sends are serialised.
		var digest []byte
		err = tx.QueryRow(ctx, `SELECT digest FROM journal WHERE id = $1`, id).Scan(&digest)
		if err == nil {
			if string(digest) != string(sum[:]) {
				return refused(fmt.Errorf("id %s already used for another correction", c.ID))
			}
			out = CorrectionResult{EntryID: id, Duplicate: true}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		card := cards[c.Card]
		if card == nil {
			return refused(fmt.Errorf("unknown card %s", c.Card))
		}
		now := s.now()
		if c.ExpiresAt != nil && !c.ExpiresAt.After(now) {
			return refused(fmt.Errorf("expires_at must be in the future, on an accrual"))
		}
		var programs cardPrograms
		rows, err := tx.Query(ctx, sqlPrograms)
		if err == nil {
			err = programs.scan(rows)
			rows.Close()
		}
		if err != nil {
			// Head office's catalog, not the correction, is at fault.
			return headOffice(fmt.Errorf("read the program's scale: %w", err))
		}
		// A program head office does not know has no scale to check; a
		// correction has no negative-balance policy (cardState.policy).
		if program, p, ok := programs.of(card); ok {
			if err := wire.CheckPoints("points", c.Points, p.scale); err != nil {
				return refused(fmt.Errorf("program %s: %w", program, err))
			}
		}
		e := wire.Entry{Entry: store.Entry{ID: id, CheckID: id, CardCode: c.Card, Kind: store.KindCorrection,
			Points: c.Points, Note: c.Reason, CreatedAt: now}}
		if _, taken := card.Lots[lot]; taken && c.Points.IsPositive() {
			return refused(lotTaken(c.Card, lot))
		}
		if c.Points.IsPositive() {
			lc := store.LotChange{LotID: lot, Delta: c.Points, Create: true, ActiveFrom: now}
			if c.ExpiresAt != nil {
				lc.ExpiresAt = *c.ExpiresAt
			}
			e.Lots = []store.LotChange{lc}
		} else {
			e.Lots = consume(card, c.Points.Neg(), now)
		}
		body, _ := json.Marshal(e)
		if _, err := tx.Exec(ctx, `INSERT INTO journal (id, till_id, card_code, kind, points, body, digest, folded, created_at)
			VALUES ($1, $2, $3, 'correction', $4::numeric, $5, $6, true, $7)`, id, ERPTill, c.Card, c.Points.String(), string(body), sum[:], e.CreatedAt); err != nil {
			return fmt.Errorf("write journal: %w", err)
		}
		card.apply(e, time.UTC)
		out = CorrectionResult{EntryID: id}
		if err := saveCards(ctx, tx, cards); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "lots_pkey" {
				// An import created the lot since the card was read (it
				// does not wait for the card's lock): the same answer as
				// when it came first, not head office's fault.
				return refused(lotTaken(c.Card, lot))
			}
			// The card's own rows and head office's triggers (the debt
			// policy reads the catalog): nothing of the request's.
			return headOffice(fmt.Errorf("save the card: %w", err))
		}
		return nil
	})
	if err != nil {
		return CorrectionResult{}, fmt.Errorf("correction %s of card %s: %w", c.ID, c.Card, err)
	}
	return out, nil
}

// correctionLot names the lot of correction entry id: the id itself when it
// is a replica id, which every till's feed must carry (ERP-<id> of 60
// letters, digits or _.:/- at most), else ERP- and the first 16 bytes of
// the id's SHA-256 in hex (a support ticket's "#", Cyrillic, a long id).
func lotTaken(card, lot string) error {
	return fmt.Errorf("card %s already has a lot %s (an ERP import named one so): give the correction another id", card, lot)
}

func correctionLot(id string) string {
	if store.ValidID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return ERPTill + "-" + hex.EncodeToString(sum[:16])
}

// consume picks lots for a deduction of pts: active, unexpired, soonest
// expiry first; the rest is a delta on "~debt" (becomes card debt).
func consume(c *cardState, pts decimal.Decimal, now time.Time) []store.LotChange {
	var out []store.LotChange
	for _, p := range c.picks(pts, now, false) {
		out = append(out, store.LotChange{LotID: p.lot.ID, Delta: p.take.Neg()})
		pts = pts.Sub(p.take)
	}
	if pts.IsPositive() {
		out = append(out, store.LotChange{LotID: "~debt", Delta: pts.Neg()})
	}
	return out
}

// pick is what a deduction takes from a lot.
type pick struct {
	lot  *lotState
	take decimal.Decimal
}

// picks chooses the lots a deduction of pts at t takes from: active and
// unexpired at t, soonest expiry first, each up to its remaining points
// and, with lapsed, what expiry took from it since (a late entry of a
// till, dated before the lot lapsed, spends as it would have before the
// expiry run).
func (c *cardState) picks(pts decimal.Decimal, t time.Time, lapsed bool) []pick {
	avail := func(l *lotState) decimal.Decimal {
		if lapsed {
			// Not what returns gave back after the lot lapsed: those
			// points were spent at t.
			return l.Remaining.Add(l.Expired).Sub(l.Relapsed)
		}
		return l.Remaining
	}
	var ls []*lotState
	for _, id := range c.order {
		l := c.Lots[id]
		if avail(l).IsPositive() && !t.Before(l.ActiveFrom) && (l.ExpiresAt == nil || t.Before(*l.ExpiresAt)) {
			ls = append(ls, l)
		}
	}
	sort.SliceStable(ls, func(i, j int) bool {
		a, b := ls[i].ExpiresAt, ls[j].ExpiresAt
		return a != nil && (b == nil || a.Before(*b))
	})
	var out []pick
	for _, l := range ls {
		if !pts.IsPositive() {
			break
		}
		take := decimal.Min(pts, avail(l))
		out = append(out, pick{l, take})
		pts = pts.Sub(take)
	}
	return out
}

// ExportedEntry is a journal entry as the ERP export gives it.
type ExportedEntry struct {
	TillID     string          `json:"till_id"`
	Entry      json.RawMessage `json:"entry"`
	Folded     bool            `json:"folded"`
	ReceivedAt time.Time       `json:"received_at"`
	// Rejected is why head office refused the entry: kept, applied to no
	// card (docs/sync.md, "Journal ingestion").
	Rejected string `json:"rejected,omitempty"`
}

// Export is a page of the journal export.
type Export struct {
	Entries []ExportedEntry `json:"entries"`
	// Cursor to ask with next; More is true when the page was full.
	Cursor string `json:"cursor"`
	More   bool   `json:"more"`
	// Reset is true when the cursor asked with was from before head
	// office's database was restored into another cluster: the export
	// starts again from the first entry (ERP keeps entries by id).
	Reset bool `json:"reset,omitempty"`
}

// The journal export's page size when none is asked, and the largest.
const (
	DefaultExportLimit = 1000
	MaxExportLimit     = 10000
)

// ExportJournal returns up to limit entries after cursor ("" = from the
// start), none skipped: the cursor is (xid, seq) and a page holds only
// entries of transactions older than the oldest one still running, so a
// late commit is exported later. An entry is given once, or again when it
// was stored behind a gap and is folded or rejected later (ingest.go
// sqlMarkFolded gives it a new xid and seq). After a
// restore into another cluster (renumberForeignXids) cursors carry the
// export's epoch, "e<epoch>:<xid>.<seq>"; one of another epoch starts
// again. A limit of 0 or less is the default (DefaultExportLimit), one
// above MaxExportLimit is cut to it.
func (s *Server) ExportJournal(ctx context.Context, cursor string, limit int) (*Export, error) {
	switch {
	case limit <= 0:
		limit = DefaultExportLimit
	case limit > MaxExportLimit:
		limit = MaxExportLimit
	}
	out := &Export{Cursor: cursor, Entries: []ExportedEntry{}}
	err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var epoch int
		var xmax uint64
		if err := tx.QueryRow(ctx, `SELECT epoch, pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM export_epoch`).Scan(&epoch, &xmax); err != nil {
			return fmt.Errorf("read the export epoch: %w", err)
		}
		prefix := ""
		if epoch != 0 {
			prefix = "e" + strconv.Itoa(epoch) + ":"
		}
		var xid uint64
		var seq int64
		if cursor != "" {
			ce, x, n, err := parseExportCursor(cursor)
			if err != nil {
				return err
			}
			switch {
			case ce != epoch:
				out.Reset, out.Cursor = true, ""
				s.log.Warn("journal export cursor from before a restore into another cluster: the export starts again", "cursor", cursor)
			case x >= xmax:
				// An xid this cluster has not given yet: head office was
				// restored from a physical backup (its xids start again
				// from the restore point) after ERP read this page. What
				// is written since has xids below the cursor: read from
				// it, the export would skip it.
				out.Reset, out.Cursor = true, ""
				s.log.Warn("journal export cursor ahead of the database (head office restored from a backup since): the export starts again", "cursor", cursor)
			default:
				xid, seq = x, n
			}
		}
		// ORDER BY names the table's columns: an unqualified xid would be
		// the output column xid::text, and text order puts 100000 before
		// 99999, so a page crossing a power of ten skipped entries and
		// gave others twice (TestExportOrdersXidsAsNumbers).
		rows, err := tx.Query(ctx, `SELECT j.xid::text, j.seq, j.till_id, j.body::text, j.folded, j.received_at, j.rejected FROM journal j
			WHERE (j.xid, j.seq) > ($1::text::xid8, $2) AND j.xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY j.xid, j.seq LIMIT $3`, strconv.FormatUint(xid, 10), seq, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var x, body string
			var n int64
			var e ExportedEntry
			if err := rows.Scan(&x, &n, &e.TillID, &body, &e.Folded, &e.ReceivedAt, &e.Rejected); err != nil {
				return err
			}
			e.Entry = json.RawMessage(body)
			out.Entries = append(out.Entries, e)
			out.Cursor = prefix + x + "." + strconv.FormatInt(n, 10)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("journal export since %q: %w", cursor, err)
	}
	out.More = len(out.Entries) == limit
	return out, nil
}

// parseExportCursor reads "[e<epoch>:]<xid>.<seq>".
func parseExportCursor(c string) (epoch int, xid uint64, seq int64, err error) {
	bad := badRequest(fmt.Errorf("journal export: bad cursor %q (want [eEPOCH:]XID.SEQ)", c))
	pos := c
	if rest, ok := strings.CutPrefix(c, "e"); ok {
		e, p, ok := strings.Cut(rest, ":")
		n, err := strconv.Atoi(e)
		if !ok || err != nil {
			return 0, 0, 0, bad
		}
		epoch, pos = n, p
	}
	a, b, ok := strings.Cut(pos, ".")
	x, e1 := strconv.ParseUint(a, 10, 64)
	n, e2 := strconv.ParseInt(b, 10, 64)
	if !ok || e1 != nil || e2 != nil {
		return 0, 0, 0, bad
	}
	return epoch, x, n, nil
}

// CardBalance is one line of the balances report.
type CardBalance struct {
	Card string `json:"card"`
	// Balance is Σ remaining of unexpired lots − debt.
	Balance checkout.Points `json:"balance"`
	Debt    checkout.Points `json:"debt"`
	// Expired is what points expiry (maintain) has taken from the card's
	// lots, all time: no journal entry records it.
	Expired checkout.Points `json:"expired"`
}

// The balances report's page size when none is asked, and the largest
// (a larger limit is cut to it).
const (
	DefaultBalanceLimit = 1000
	MaxBalanceLimit     = 10000
)

// BalancePage is a page of the balances report, cards in code order
// (byte order: codes are COLLATE "C").
type BalancePage struct {
	Balances []CardBalance `json:"balances"`
	// More is true when cards follow; Next (set only then) is the after
	// to ask with for them.
	More bool   `json:"more"`
	Next string `json:"next,omitempty"`
}

// ErrUnknownCard is a card head office does not hold.
var ErrUnknownCard = errors.New("unknown card")

// sqlBalances reads the balances of the cards $2 selects, at $1: the page
// of cards is picked first, so each card's lots are read by the lots'
// primary key (card, lot_id), never the whole table.
const sqlBalances = `SELECT p.code,
	(coalesce((SELECT sum(l.remaining) FROM lots l WHERE l.card = p.code AND (l.expires_at IS NULL OR l.expires_at > $1)), 0) - p.debt)::text,
	p.debt::text,
	coalesce((SELECT sum(l.expired) FROM lots l WHERE l.card = p.code), 0)::text
	FROM (%s) p ORDER BY p.code`

// Balances reports every card's balance at now, in one answer (tests and
// small chains; ERP pages with BalancesPage).
func (s *Server) Balances(ctx context.Context) ([]CardBalance, error) {
	out, err := s.balances(ctx, fmt.Sprintf(sqlBalances, `SELECT code, debt FROM cards`))
	if err != nil {
		return nil, fmt.Errorf("balances report: %w", err)
	}
	return out, nil
}

// BalancesPage reports the balances at now of up to limit cards (0: the
// default, above the maximum: the maximum) with codes after after ("":
// from the first).
func (s *Server) BalancesPage(ctx context.Context, after string, limit int) (*BalancePage, error) {
	switch {
	case limit < 0:
		return nil, badRequest(fmt.Errorf("balances report: limit %d is negative", limit))
	case limit == 0:
		limit = DefaultBalanceLimit
	case limit > MaxBalanceLimit:
		limit = MaxBalanceLimit
	}
	// One card more than the page tells whether more follow.
	bs, err := s.balances(ctx, fmt.Sprintf(sqlBalances, `SELECT code, debt FROM cards WHERE code > $2 ORDER BY code LIMIT $3`), after, limit+1)
	if err != nil {
		return nil, fmt.Errorf("balances report after %q: %w", after, err)
	}
	out := &BalancePage{Balances: bs}
	if len(bs) > limit {
		out.Balances, out.More, out.Next = bs[:limit], true, bs[limit-1].Card
	}
	return out, nil
}

// CardBalanceOf reports one card's balance at now (ErrUnknownCard when
// head office does not hold it).
func (s *Server) CardBalanceOf(ctx context.Context, code string) (CardBalance, error) {
	bs, err := s.balances(ctx, fmt.Sprintf(sqlBalances, `SELECT code, debt FROM cards WHERE code = $2`), code)
	if err != nil {
		return CardBalance{}, fmt.Errorf("balance of card %s: %w", code, err)
	}
	if len(bs) == 0 {
		return CardBalance{}, fmt.Errorf("balance of card %s: %w", code, ErrUnknownCard)
	}
	return bs[0], nil
}

// balances runs a sqlBalances query (args after now).
func (s *Server) balances(ctx context.Context, query string, args ...any) ([]CardBalance, error) {
	rows, err := s.db.Query(ctx, query, append([]any{s.now()}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []CardBalance{}
	for rows.Next() {
		var b CardBalance
		var bal, debt, expired string
		if err := rows.Scan(&b.Card, &bal, &debt, &expired); err != nil {
			return nil, err
		}
		d1, e1 := decimal.NewFromString(bal)
		d2, e2 := decimal.NewFromString(debt)
		d3, e3 := decimal.NewFromString(expired)
		if err := errors.Join(e1, e2, e3); err != nil {
			return nil, fmt.Errorf("card %s: %w", b.Card, err)
		}
		b.Balance, b.Debt, b.Expired = checkout.PointsOf(d1), checkout.PointsOf(d2), checkout.PointsOf(d3)
		out = append(out, b)
	}
	return out, rows.Err()
}

// Overdraft is a flagged balance driven below zero while folding a till's
// entries (offline spending on several tills).
type Overdraft struct {
	Card    string          `json:"card"`
	TillID  string          `json:"till_id"`
	EntryID string          `json:"entry_id"`
	Points  checkout.Points `json:"points"`
	At      time.Time       `json:"at"`
	// DebtNow is the card's debt now (0 once later accruals settled it).
	DebtNow checkout.Points `json:"debt_now"`
}

// The page size of the reports listed newest first (overdrafts,
// write-offs) when none is asked, and the largest.
const (
	DefaultNewestLimit = 1000
	MaxNewestLimit     = 10000
)

// OverdraftPage is a page of the overdraft report, newest first. More is
// true when older ones follow; Next (set only then) is the before to ask
// with for them.
type OverdraftPage struct {
	Overdrafts []Overdraft `json:"overdrafts"`
	More       bool        `json:"more"`
	Next       string      `json:"next,omitempty"`
}

// Overdrafts reports every flagged overdraft, newest first, in one answer
// (tests; ERP pages with OverdraftsPage).
func (s *Server) Overdrafts(ctx context.Context) ([]Overdraft, error) {
	out, _, err := s.overdrafts(ctx, 0, 0, false)
	return out, err
}

// OverdraftsPage reports up to limit overdrafts (0: the default, above the
// maximum: the maximum) older than the one before names ("": from the
// newest); open keeps those of cards still in debt.
func (s *Server) OverdraftsPage(ctx context.Context, before string, limit int, open bool) (*OverdraftPage, error) {
	id, limit, err := newestPage("overdrafts report", before, limit)
	if err != nil {
		return nil, err
	}
	ods, next, err := s.overdrafts(ctx, id, limit, open)
	if err != nil {
		return nil, err
	}
	return &OverdraftPage{Overdrafts: ods, More: next != "", Next: next}, nil
}

// overdrafts reads up to limit overdrafts (0: all) with ids below before
// (0: from the newest), and the next page's before ("" when none follow).
func (s *Server) overdrafts(ctx context.Context, before int64, limit int, open bool) ([]Overdraft, string, error) {
	rows, err := s.db.Query(ctx, `SELECT o.id, o.card, o.till_id, o.entry_id, o.points::text, o.at, coalesce(c.debt, 0)::text
		FROM overdrafts o LEFT JOIN cards c ON c.code = o.card
		WHERE ($1 = 0 OR o.id < $1) AND (NOT $2 OR c.debt > 0)
		ORDER BY o.id DESC LIMIT nullif($3, 0)`, before, open, pageRows(limit))
	if err != nil {
		return nil, "", fmt.Errorf("overdrafts report: %w", err)
	}
	defer rows.Close()
	out, ids := []Overdraft{}, []int64{}
	for rows.Next() {
		var o Overdraft
		var id int64
		var p, d string
		if err := rows.Scan(&id, &o.Card, &o.TillID, &o.EntryID, &p, &o.At, &d); err != nil {
			return nil, "", fmt.Errorf("overdrafts report: %w", err)
		}
		pd, e1 := decimal.NewFromString(p)
		dd, e2 := decimal.NewFromString(d)
		if err := errors.Join(e1, e2); err != nil {
			return nil, "", fmt.Errorf("overdrafts report: %w", err)
		}
		o.Points, o.DebtNow = checkout.PointsOf(pd), checkout.PointsOf(dd)
		out, ids = append(out, o), append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("overdrafts report: %w", err)
	}
	out, next := pageCut(out, limit, idKey(ids))
	return out, next, nil
}

// newestPage checks a newest-first report's before and limit: before is
// the id the previous page's Next gave ("" from the newest), limit as for
// OverdraftsPage.
func newestPage(op, before string, limit int) (int64, int, error) {
	limit, err := pageLimit(op, limit)
	if err != nil {
		return 0, 0, err
	}
	if before == "" {
		return 0, limit, nil
	}
	id, err := strconv.ParseInt(before, 10, 64)
	if err != nil || id < 1 {
		return 0, 0, badRequest(fmt.Errorf("%s: before %q is not a page's next (a positive integer)", op, before))
	}
	return id, limit, nil
}

// pageLimit checks the limit of a newest-first report or of another paged
// like it: 0 is the default, above the maximum the maximum.
func pageLimit(op string, limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, badRequest(fmt.Errorf("%s: limit %d is negative", op, limit))
	case limit == 0:
		return DefaultNewestLimit, nil
	}
	return min(limit, MaxNewestLimit), nil
}

// pageRows is how many rows a page of limit reads: one more tells whether
// more follow; 0 reads them all.
func pageRows(limit int) int {
	if limit == 0 {
		return 0
	}
	return limit + 1
}

// pageCut cuts rows read with pageRows(limit) to the page and gives the
// next page's key, key(i) of the page's last row i, "" when none follow.
func pageCut[T any](rows []T, limit int, key func(i int) string) ([]T, string) {
	if limit == 0 || len(rows) <= limit {
		return rows, ""
	}
	return rows[:limit], key(limit - 1)
}

// idKey is the key of row i of a list paged by a numeric id, ids[i].
func idKey(ids []int64) func(i int) string {
	return func(i int) string { return strconv.FormatInt(ids[i], 10) }
}

// MaintainStats counts what Maintain did.
type MaintainStats struct {
	Expired int `json:"expired_lots"`
	Settled int `json:"settled_cards"`
	// ChangesPruned are the change log's rows past Options.ChangeRetention
	// deleted.
	ChangesPruned int64 `json:"changes_pruned,omitempty"`
	// KeptTaken are the entries retake-journal kept for tills head office
	// did not know, taken now that they are enrolled.
	KeptTaken int `json:"retake_kept_taken,omitempty"`
}

// Maintain runs on a schedule (cmd/headoffice -expire-every): lots expired
// at now lose their remaining points, and a card's debt is settled from its
// active lots (soonest-expiring first), which leaves its balance and what it
// may spend unchanged and clears the debt from the overdraft report. Cards
// are locked in code order, like folding, maintainChunk of them a
// transaction: a campaign's lots expiring at once on half the cards must
// not hold those cards from the tills' batches until all are done. A chunk
// that fails leaves the ones before it done and returns the error with
// their counts; the next run goes on from the cards still due.
func (s *Server) Maintain(ctx context.Context) (st MaintainStats, err error) {
	defer func() { s.countMaintain(st, err) }()
	return s.maintain(ctx)
}

func (s *Server) maintain(ctx context.Context) (MaintainStats, error) {
	s.checkClock(ctx)
	now := s.now()
	var st MaintainStats
	// The cards due, found through the index of lots not yet used up
	// (migration 0008): lots only grow, one an accrual, and a run must not
	// read them all. A card's state is read again under its lock below.
	rows, err := s.db.Query(ctx, sqlMaintainDue, now)
	if err != nil {
		return st, fmt.Errorf("maintain lots: find the cards due: %w", err)
	}
	codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return st, fmt.Errorf("maintain lots: find the cards due: %w", err)
	}
	for lo := 0; lo < len(codes); lo += maintainChunk {
		chunk := codes[lo:min(lo+maintainChunk, len(codes))]
		var done MaintainStats
		err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
			cards, err := lockCards(ctx, tx, chunk, "")
			if err != nil {
				return err
			}
			for _, c := range cards {
				done.Expired += c.expire(now)
				if c.settle(now) {
					c.dirty = true
					done.Settled++
				}
			}
			return saveCards(ctx, tx, cards)
		})
		if err != nil {
			return st, fmt.Errorf("maintain lots: cards %s…%s: %w", chunk[0], chunk[len(chunk)-1], err)
		}
		st.Expired, st.Settled = st.Expired+done.Expired, st.Settled+done.Settled
	}
	if err := s.markJournals(ctx, now); err != nil {
		return st, err
	}
	n, err := s.pruneChanges(ctx, now)
	st.ChangesPruned = n
	k, kerr := s.takeAllKept(ctx)
	st.KeptTaken = k
	return st, errors.Join(err, kerr)
}

// maintainChunk is how many cards one Maintain transaction locks.
const maintainChunk = 500

// sqlMaintainDue are the cards Maintain has work on at $1, in code order:
// those with points in a lot expired by then, and those in debt with a
// lot active by then to settle it from. Cards in debt are few; their lots
// are read through the lots' key.
const sqlMaintainDue = `SELECT card FROM lots WHERE expires_at <= $1 AND remaining > 0
	UNION SELECT c.code FROM cards c WHERE c.debt > 0
		AND EXISTS (SELECT 1 FROM lots l WHERE l.card = c.code AND l.remaining > 0 AND l.active_from <= $1)
	ORDER BY 1`

// Expiring is one card's points that lapse within the report's window.
type Expiring struct {
	Card   string          `json:"card"`
	Points checkout.Points `json:"points"`
	First  time.Time       `json:"first_expiry"`
}

// ExpiringPage is a page of the expiring report, cards in code order.
// More is true when cards follow; Next (set only then) is the after to
// ask with for them.
type ExpiringPage struct {
	Expiring []Expiring `json:"expiring"`
	More     bool       `json:"more"`
	Next     string     `json:"next,omitempty"`
}

// ExpiringWithin reports, per card, the remaining points of lots that
// expire after now and no later than now + days, every card in one answer
// (tests; ERP pages with ExpiringPage).
func (s *Server) ExpiringWithin(ctx context.Context, days int) ([]Expiring, error) {
	return s.expiring(ctx, days, "", 0)
}

// ExpiringPage reports up to limit cards (0: the default, above the
// maximum: the maximum) with codes after after ("": from the first) of
// ExpiringWithin. Each page reads its window from its own now: a walk
// over a day lists every card once, as its page found it. A chain whose
// lots mostly lapse within a year gave a whole answer of one row a card.
func (s *Server) ExpiringPage(ctx context.Context, days int, after string, limit int) (*ExpiringPage, error) {
	limit, err := pageLimit("expiring report", limit)
	if err != nil {
		return nil, err
	}
	es, err := s.expiring(ctx, days, after, pageRows(limit))
	if err != nil {
		return nil, err
	}
	es, next := pageCut(es, limit, func(i int) string { return es[i].Card })
	return &ExpiringPage{Expiring: es, More: next != "", Next: next}, nil
}

// expiring reads up to limit cards (0: all) after after.
func (s *Server) expiring(ctx context.Context, days int, after string, limit int) ([]Expiring, error) {
	if days < 1 || days > 3650 {
		return nil, badRequest(fmt.Errorf("expiring report: days %d outside 1..3650", days))
	}
	now := s.now()
	rows, err := s.db.Query(ctx, `SELECT card, sum(remaining)::text, min(expires_at) FROM lots
		WHERE remaining > 0 AND expires_at > $1 AND expires_at <= $2 AND card > $3
		GROUP BY card ORDER BY card LIMIT nullif($4, 0)`, now, now.AddDate(0, 0, days), after, limit)
	if err != nil {
		return nil, fmt.Errorf("expiring report after %q: %w", after, err)
	}
	defer rows.Close()
	out := []Expiring{}
	for rows.Next() {
		var e Expiring
		var p string
		if err := rows.Scan(&e.Card, &p, &e.First); err != nil {
			return nil, fmt.Errorf("expiring report: %w", err)
		}
		d, err := decimal.NewFromString(p)
		if err != nil {
			return nil, fmt.Errorf("expiring report card %s: %w", e.Card, err)
		}
		e.Points = checkout.PointsOf(d)
		out = append(out, e)
	}
	return out, rows.Err()
}

// AccrualTotals is the accruals report over the journal entries written
// (created_at) in [from, to). Every total is net of the period's returns,
// so over entries on cards head office holds,
//
//	customer_accrued + agent_accrued − redeemed + corrections
//
// is exactly the change those entries made to Σ balances (the balances
// report). What moves balances outside the journal is not in it: lots
// expired by Maintain (an entry spending from a lot after its expiry ran
// takes its points from what expired, not from the balance) and debt the
// negative-balance policy wrote off or took back on a return
// (GET /v1/erp/reports/writeoffs). Only folded entries count: one stored
// behind a gap in its till's chain is in Unfolded until it is folded (it
// then counts in the period of its created_at, so a report of a past
// period can still grow). A return counts in the period it was made, not
// that of its sale, so a period's net totals can be below zero.
type AccrualTotals struct {
	// CustomerAccrued and AgentAccrued (cards of a card kind of kind
	// "referral") are the points of accrual entries minus what reversals
	// took back on such cards.
	CustomerAccrued checkout.Points `json:"customer_accrued"`
	AgentAccrued    checkout.Points `json:"agent_accrued"`
	// Redeemed is the points spent by redemption entries minus what
	// reversals gave back.
	Redeemed checkout.Points `json:"redeemed"`
	// Returned is what the period's reversals took off the three totals
	// above (already subtracted from them).
	Returned ReturnedTotals `json:"returned"`
	// Corrections is the net points of ERP corrections (till "ERP").
	Corrections checkout.Points `json:"corrections"`
	// UnknownCards are folded entries on cards head office did not hold
	// when they were folded (folded as nothing: no card has their points,
	// even once ERP imports the card), all kinds, not in any total above.
	UnknownCards EntryTotals `json:"unknown_cards"`
	// Unfolded are the period's entries stored but not folded yet.
	Unfolded EntryTotals `json:"unfolded"`
	// Rejected are the period's entries head office kept as rejected: on
	// their till's chain, applied to no card (GET /v1/erp/rejected).
	Rejected EntryTotals `json:"rejected"`
}

// ReturnedTotals is what reversals (kind "reversal", a return) took off
// the accruals report: a reversal's negative lot deltas take back an
// accrual (the "~debt" lot too: store.DebtLot, the part the balance could
// not cover), its positive deltas give back spent points; a reversal
// without lots counts by the sign of its points.
type ReturnedTotals struct {
	CustomerAccrued checkout.Points `json:"customer_accrued"`
	AgentAccrued    checkout.Points `json:"agent_accrued"`
	Redeemed        checkout.Points `json:"redeemed"`
}

// EntryTotals counts journal entries and sums their points (signed).
type EntryTotals struct {
	Entries int64           `json:"entries"`
	Points  checkout.Points `json:"points"`
}

// sqlAccruals sums the journal entries created in [$1, $2) on their tills
// (journal.created_at, indexed: the period's entries only are read). A body
// holding a U+0000 escape is read with it replaced by U+FFFD: PostgreSQL
// cannot read any field of a json value holding one, and one such note
// must not take the report down (the other bodies are read as stored,
// not parsed twice). Replacing the six characters "\u0000" always leaves
// valid JSON (in "\\u0000" it turns the escaped "u0000" into "ufffd").
// A reversal's lot deltas split into taken (−Σ negative) and given
// (Σ positive); without lots its points do.
const sqlAccruals = `WITH e AS (
	SELECT j.kind, j.points, j.folded AND j.rejected = '' AS folded, j.rejected <> '' AS rejected, c.code IS NOT NULL AND NOT j.no_card AS known,
		coalesce(replace(k.body::text, '\u0000', '\ufffd')::json->>'kind', '') = 'referral' AS agent,
		r.taken, r.given
	FROM journal j
	CROSS JOIN LATERAL (SELECT CASE WHEN strpos(j.body::text, '\u0000') = 0 THEN j.body
		ELSE replace(j.body::text, '\u0000', '\ufffd')::json END AS b) x
	CROSS JOIN LATERAL (
		SELECT coalesce(-sum(d) FILTER (WHERE d < 0), 0) AS taken, coalesce(sum(d) FILTER (WHERE d > 0), 0) AS given
		FROM (SELECT (l->>'delta')::numeric AS d
				FROM json_array_elements(CASE WHEN j.kind = 'reversal' AND json_typeof(x.b->'lots') = 'array' THEN x.b->'lots' END) l
			UNION ALL
			SELECT j.points WHERE j.kind = 'reversal' AND CASE WHEN json_typeof(x.b->'lots') = 'array' THEN json_array_length(x.b->'lots') = 0 ELSE true END
		) t) r
	LEFT JOIN cards c ON c.code = j.card_code
	LEFT JOIN catalog k ON k.section = 'card_kinds' AND k.id = c.kind
	WHERE j.created_at >= $1 AND j.created_at < $2
)
SELECT
	coalesce(sum(points) FILTER (WHERE folded AND known AND kind = 'accrual' AND NOT agent), 0)::text,
	coalesce(sum(points) FILTER (WHERE folded AND known AND kind = 'accrual' AND agent), 0)::text,
	coalesce(-sum(points) FILTER (WHERE folded AND known AND kind = 'redemption'), 0)::text,
	coalesce(sum(taken) FILTER (WHERE folded AND known AND kind = 'reversal' AND NOT agent), 0)::text,
	coalesce(sum(taken) FILTER (WHERE folded AND known AND kind = 'reversal' AND agent), 0)::text,
	coalesce(sum(given) FILTER (WHERE folded AND known AND kind = 'reversal'), 0)::text,
	coalesce(sum(points) FILTER (WHERE folded AND known AND kind = 'correction'), 0)::text,
	count(*) FILTER (WHERE folded AND NOT known),
	coalesce(sum(points) FILTER (WHERE folded AND NOT known), 0)::text,
	count(*) FILTER (WHERE NOT folded AND NOT rejected),
	coalesce(sum(points) FILTER (WHERE NOT folded AND NOT rejected), 0)::text,
	count(*) FILTER (WHERE rejected),
	coalesce(sum(points) FILTER (WHERE rejected), 0)::text
FROM e`

// Accruals reports the journal entries written in [from, to) (see
// AccrualTotals for what each total counts). from must be before to.
func (s *Server) Accruals(ctx context.Context, from, to time.Time) (AccrualTotals, error) {
	if !from.Before(to) {
		return AccrualTotals{}, badRequest(fmt.Errorf("accruals report: from %s is not before to %s: the period [from, to) is empty",
			from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)))
	}
	var acc, agent, red, retAcc, retAgent, retRed, corr, unkPts, unfPts, rejPts string
	var out AccrualTotals
	err := s.db.QueryRow(ctx, sqlAccruals, from, to).Scan(&acc, &agent, &red, &retAcc, &retAgent, &retRed, &corr,
		&out.UnknownCards.Entries, &unkPts, &out.Unfolded.Entries, &unfPts, &out.Rejected.Entries, &rejPts)
	if err != nil {
		return AccrualTotals{}, fmt.Errorf("accruals report [%s, %s): %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	num := func(s string) decimal.Decimal {
		d, e := decimal.NewFromString(s)
		err = errors.Join(err, e)
		return d
	}
	accrued, agentAccrued, redeemed := num(acc), num(agent), num(red)
	takenAcc, takenAgent, given := num(retAcc), num(retAgent), num(retRed)
	out.CustomerAccrued = checkout.PointsOf(accrued.Sub(takenAcc))
	out.AgentAccrued = checkout.PointsOf(agentAccrued.Sub(takenAgent))
	out.Redeemed = checkout.PointsOf(redeemed.Sub(given))
	out.Returned = ReturnedTotals{CustomerAccrued: checkout.PointsOf(takenAcc), AgentAccrued: checkout.PointsOf(takenAgent),
		Redeemed: checkout.PointsOf(given)}
	out.Corrections = checkout.PointsOf(num(corr))
	out.UnknownCards.Points, out.Unfolded.Points = checkout.PointsOf(num(unkPts)), checkout.PointsOf(num(unfPts))
	out.Rejected.Points = checkout.PointsOf(num(rejPts))
	if err != nil {
		return AccrualTotals{}, fmt.Errorf("accruals report: %w", err)
	}
	return out, nil
}

// WriteOff is debt the card's negative-balance policy did not let it keep
// (mode "returned", negative: a write-off a return of its check took back).
type WriteOff struct {
	Card    string          `json:"card"`
	Program string          `json:"program"`
	Mode    string          `json:"mode"`
	Points  checkout.Points `json:"points"`
	At      time.Time       `json:"at"`
	// CheckID and EntryID name the check and the entry whose fold wrote
	// the debt off (mode "returned": whose return took it back); empty for
	// a write-off from before migration 0006 or by the debt_policy trigger.
	CheckID string `json:"check_id,omitempty"`
	EntryID string `json:"entry_id,omitempty"`
}

// WriteOffPage is a page of the write-off report, newest first; More and
// Next as in OverdraftPage.
type WriteOffPage struct {
	WriteOffs []WriteOff `json:"writeoffs"`
	More      bool       `json:"more"`
	Next      string     `json:"next,omitempty"`
}

// WriteOffs reports every write-off of debt, newest first, in one answer
// (tests; ERP pages with WriteOffsPage).
func (s *Server) WriteOffs(ctx context.Context) ([]WriteOff, error) {
	out, _, err := s.writeOffs(ctx, 0, 0)
	return out, err
}

// WriteOffsPage reports up to limit write-offs older than the one before
// names, as OverdraftsPage.
func (s *Server) WriteOffsPage(ctx context.Context, before string, limit int) (*WriteOffPage, error) {
	id, limit, err := newestPage("write-offs report", before, limit)
	if err != nil {
		return nil, err
	}
	wos, next, err := s.writeOffs(ctx, id, limit)
	if err != nil {
		return nil, err
	}
	return &WriteOffPage{WriteOffs: wos, More: next != "", Next: next}, nil
}

func (s *Server) writeOffs(ctx context.Context, before int64, limit int) ([]WriteOff, string, error) {
	rows, err := s.db.Query(ctx, `SELECT id, card, program, mode, points::text, at, check_id, entry_id FROM debt_writeoffs
		WHERE $1 = 0 OR id < $1 ORDER BY id DESC LIMIT nullif($2, 0)`, before, pageRows(limit))
	if err != nil {
		return nil, "", fmt.Errorf("write-offs report: %w", err)
	}
	defer rows.Close()
	out, ids := []WriteOff{}, []int64{}
	for rows.Next() {
		var w WriteOff
		var id int64
		var p string
		if err := rows.Scan(&id, &w.Card, &w.Program, &w.Mode, &p, &w.At, &w.CheckID, &w.EntryID); err != nil {
			return nil, "", fmt.Errorf("write-offs report: %w", err)
		}
		d, err := decimal.NewFromString(p)
		if err != nil {
			return nil, "", fmt.Errorf("write-offs report card %s: %w", w.Card, err)
		}
		w.Points = checkout.PointsOf(d)
		out, ids = append(out, w), append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("write-offs report: %w", err)
	}
	out, next := pageCut(out, limit, idKey(ids))
	return out, next, nil
}
