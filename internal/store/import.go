package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"tillagent/checkout"
)

// ImportStats counts what an import wrote.
type ImportStats struct {
	Stores, Groups, Products, Programs, Promotions, CardKinds, Cards, Lots, CardKeys int
}

func (s ImportStats) String() string {
	return fmt.Sprintf("%d stores, %d groups, %d products, %d programs, %d promotions, %d card kinds, %d cards, %d lots, %d card keys",
		s.Stores, s.Groups, s.Products, s.Programs, s.Promotions, s.CardKinds, s.Cards, s.Lots, s.CardKeys)
}

// ImportFile reads a replica file (.json, .yaml or .yml) and imports it.
func (s *Store) ImportFile(ctx context.Context, path string) (ImportStats, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ImportStats{}, fmt.Errorf("import replica: %w", err)
	}
	r, err := ParseReplicaFile(path, data)
	if err != nil {
		return ImportStats{}, fmt.Errorf("import %w", err)
	}
	st, err := s.Import(ctx, r)
	if err != nil {
		return st, fmt.Errorf("import replica %s: %w", path, err)
	}
	s.log.Info("replica imported", "file", path, "counts", st.String())
	return st, nil
}

// Import writes r into the store in one transaction: every record is
// inserted or replaced by its key (so importing the same file twice is a
// no-op), records the file does not mention stay as they are, and nothing is
// written if anything is invalid. References may point into the file or at
// records already in the store.
func (s *Store) Import(ctx context.Context, r *Replica) (ImportStats, error) {
	return s.importReplica(ctx, r, false)
}

// importReplica is Import; with wholeCards (a feed page, which carries
// every card with all its live lots) a card's lots the page does not carry
// are emptied: they hold nothing at head office (used up, or lost with a
// restore from a backup that predates them), and kept they would count in
// the card's balance here for ever. The row stays, at 0, so that a return of
// a sale that spent from it still gives its points back here, as head
// office takes such a return (a lot it does not have).
func (s *Store) importReplica(ctx context.Context, r *Replica, wholeCards bool) (ImportStats, error) {
	var st ImportStats
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := r.Validate(txExists(ctx, tx)); err != nil {
		return st, err
	}
	exec := func(what string, q string, args ...any) error {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	for i, x := range r.Stores {
		if err := exec(fmt.Sprintf("stores[%d] id %q", i, x.ID),
			`INSERT INTO stores(id, name, timezone, address) VALUES (?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET name = excluded.name, timezone = excluded.timezone, address = excluded.address`,
			x.ID, x.Name, x.TimeZone, x.Address); err != nil {
			return st, err
		}
		st.Stores++
	}
	for i, x := range r.Groups {
		if err := exec(fmt.Sprintf("groups[%d] id %q", i, x.ID),
			`INSERT INTO product_groups(id, name, parent_id, segment) VALUES (?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET name = excluded.name, parent_id = excluded.parent_id, segment = excluded.segment`,
			x.ID, x.Name, nullStr(x.Parent), x.Segment); err != nil {
			return st, err
		}
		st.Groups++
	}
	for i, x := range r.Products {
		what := fmt.Sprintf("products[%d] id %q", i, x.ID)
		var lpp sql.NullInt64
		if x.LastPurchasePrice != nil {
			lpp = sql.NullInt64{Int64: x.LastPurchasePrice.Kopecks(), Valid: true}
		}
		if err := exec(what,
			`INSERT INTO products(id, name, group_id, segment, vat, tobacco, alcohol, last_purchase_price_kop, unit)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET name = excluded.name, group_id = excluded.group_id, segment = excluded.segment,
			vat = excluded.vat, tobacco = excluded.tobacco, alcohol = excluded.alcohol,
			last_purchase_price_kop = excluded.last_purchase_price_kop, unit = excluded.unit`,
			x.ID, x.Name, x.Group, x.Segment, x.VAT, x.Tobacco, x.Alcohol, lpp, checkout.UnitOrDefault(x.Unit)); err != nil {
			return st, err
		}
		for _, b := range x.Barcodes {
			if err := exec(what, `INSERT INTO barcodes(code, product_id) VALUES (?, ?)
				ON CONFLICT(code) DO UPDATE SET product_id = excluded.product_id`, b, x.ID); err != nil {
				return st, err
			}
		}
		st.Products++
	}
	for i, x := range r.Programs {
		what := fmt.Sprintf("programs[%d] id %q", i, x.ID)
		// Promotions written inside a program go to the promotions table
		// like top-level ones; the program row keeps the rest.
		promos := x.Promotions
		x.Promotions = nil
		body, err := json.Marshal(x)
		if err != nil {
			return st, fmt.Errorf("%s: %w", what, err)
		}
		if err := exec(what, `INSERT INTO programs(id, name, body) VALUES (?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET name = excluded.name, body = excluded.body`, x.ID, x.Name, string(body)); err != nil {
			return st, err
		}
		for _, p := range promos {
			if err := upsertPromotion(ctx, tx, x.ID, p); err != nil {
				return st, fmt.Errorf("%s promotion %q: %w", what, p.ID, err)
			}
			st.Promotions++
		}
		st.Programs++
	}
	for i, x := range r.Promotions {
		if err := upsertPromotion(ctx, tx, x.Program, x.Promotion); err != nil {
			return st, fmt.Errorf("promotions[%d] id %q: %w", i, x.ID, err)
		}
		st.Promotions++
	}
	for i, x := range r.CardKinds {
		if err := exec(fmt.Sprintf("card_kinds[%d] id %q", i, x.ID),
			`INSERT INTO card_kinds(id, name, kind, program_id) VALUES (?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET name = excluded.name, kind = excluded.kind, program_id = excluded.program_id`,
			x.ID, x.Name, string(x.Kind), x.Program); err != nil {
			return st, err
		}
		st.CardKinds++
	}
	if err := importCards(ctx, tx, r.Cards, &st); err != nil {
		return st, err
	}
	whole := wholeCards && len(r.Cards) > 0
	ids, err := cardIDs(ctx, tx, r, whole)
	if err != nil {
		return st, err
	}
	var live []lotKey
	if whole {
		if live, err = liveLots(ctx, tx, r.Cards, ids); err != nil {
			return st, err
		}
	}
	if err := importLots(ctx, tx, r.Lots, ids, &st); err != nil {
		return st, err
	}
	if err := emptyLotsNotSent(ctx, tx, live, r.Lots, ids); err != nil {
		return st, err
	}
	for i, x := range r.CardKeys {
		key, _ := decodeKey(x.PublicKey) // Validate checked it
		var to sql.NullInt64
		if x.ValidTo != nil {
			to = sql.NullInt64{Int64: x.ValidTo.Unix(), Valid: true}
		}
		if err := exec(fmt.Sprintf("card_keys[%d] id %d", i, x.ID),
			`INSERT INTO card_keys(key_id, public_key, valid_from, valid_to) VALUES (?, ?, ?, ?)
			ON CONFLICT(key_id) DO UPDATE SET public_key = excluded.public_key, valid_from = excluded.valid_from, valid_to = excluded.valid_to`,
			x.ID, key, x.ValidFrom.Unix(), to); err != nil {
			return st, err
		}
		st.CardKeys++
	}
	asOf := ""
	if r.AsOf != nil {
		asOf = r.AsOf.UTC().Format(time.RFC3339)
	}
	if err := exec("replica meta", `INSERT INTO replica_meta(key, value) VALUES ('as_of', ?), ('imported_at', ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, asOf, s.now().UTC().Format(time.RFC3339)); err != nil {
		return st, err
	}
	for till, id := range r.FoldedThrough {
		// Set as sent, even if lower than before: the watermark describes
		// the lots this import wrote, and an older snapshot's lots include
		// fewer entries.
		if err := exec("folded_through "+till, `INSERT INTO replica_meta(key, value) VALUES (?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`, foldedKey(till), id); err != nil {
			return st, err
		}
	}
	if err := tx.Commit(); err != nil {
		return st, fmt.Errorf("commit: %w", err)
	}
	s.invalidateCatalog()
	return st, nil
}

func upsertPromotion(ctx context.Context, tx *sql.Tx, program string, p checkout.Promotion) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO promotions(id, program_id, body) VALUES (?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET program_id = excluded.program_id, body = excluded.body`, p.ID, program, string(body))
	return err
}

func importCards(ctx context.Context, tx *sql.Tx, cards []ReplicaCard, st *ImportStats) error {
	err := execChunked(ctx, tx, `INSERT INTO cards(code, kind_id, program_id, state, block_reason, holder, debt,
		stats_month, purchases_all_time_kop, purchases_month_kop, purchases_prev_month_kop, accrued_month, redeemed_month)`,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		`ON CONFLICT(code) DO UPDATE SET kind_id = excluded.kind_id, program_id = excluded.program_id,
		state = excluded.state, block_reason = excluded.block_reason, holder = excluded.holder, debt = excluded.debt,
		stats_month = excluded.stats_month, purchases_all_time_kop = excluded.purchases_all_time_kop,
		purchases_month_kop = excluded.purchases_month_kop, purchases_prev_month_kop = excluded.purchases_prev_month_kop,
		accrued_month = excluded.accrued_month, redeemed_month = excluded.redeemed_month`,
		len(cards), func(i int, args []any) []any {
			c := &cards[i]
			h := c.History
			return append(args, c.Code, c.Kind, nullStr(c.Program), string(c.State), c.BlockReason, c.Holder,
				c.Debt.String(), h.Month, h.PurchasesAllTime.Kopecks(), h.PurchasesMonth.Kopecks(),
				h.PurchasesPrevMonth.Kopecks(), h.AccruedMonth.String(), h.RedeemedMonth.String())
		}, func(i int, err error) error { return fmt.Errorf("cards[%d] code %q: %w", i, cards[i].Code, err) })
	if err != nil {
		return fmt.Errorf("cards: %w", err)
	}
	st.Cards += len(cards)
	return nil
}

type lotKey struct {
	card int64 // rowid
	lot  string
}

// liveLots reads the lots with points left of the cards, before a page
// that carries the cards whole is imported. On a first load it finds none,
// one index probe a card: the comparison with the lots sent is done only
// for the cards that had some.
func liveLots(ctx context.Context, tx *sql.Tx, cards []ReplicaCard, ids map[string]int64) ([]lotKey, error) {
	rowids := make([]int64, len(cards))
	for i, c := range cards {
		rowids[i] = ids[c.Code]
	}
	j, err := json.Marshal(rowids)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT card_id, lot_id FROM lots
		WHERE card_id IN (SELECT value FROM json_each(?)) AND remaining <> '0'`, string(j))
	if err != nil {
		return nil, fmt.Errorf("live lots of the cards sent: %w", err)
	}
	defer rows.Close()
	var live []lotKey
	for rows.Next() {
		var k lotKey
		if err := rows.Scan(&k.card, &k.lot); err != nil {
			return nil, fmt.Errorf("live lots of the cards sent: %w", err)
		}
		live = append(live, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("live lots of the cards sent: %w", err)
	}
	return live, nil
}

// emptyLotsNotSent sets to 0 the remaining points of the lots that were
// live before a page carrying their cards whole and are not in it: head
// office no longer holds them (a restore lost them).
func emptyLotsNotSent(ctx context.Context, tx *sql.Tx, live []lotKey, sent []ReplicaLot, ids map[string]int64) error {
	if len(live) == 0 {
		return nil
	}
	in := make(map[lotKey]bool, len(sent))
	for _, l := range sent {
		in[lotKey{ids[l.Card], l.ID}] = true
	}
	for _, k := range live {
		if in[k] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE lots SET remaining = '0' WHERE card_id = ? AND lot_id = ?`, k.card, k.lot); err != nil {
			return fmt.Errorf("lot %s of card #%d, which head office no longer holds: %w", k.lot, k.card, err)
		}
	}
	return nil
}

func importLots(ctx context.Context, tx *sql.Tx, lots []ReplicaLot, ids map[string]int64, st *ImportStats) error {
	// A delta sends a changed card with all its live lots, most of them
	// as the till holds them already: an unchanged row is not written
	// again (the 10,000-card delta's import 12 % faster).
	err := execChunked(ctx, tx, `INSERT INTO lots(card_id, lot_id, points, remaining, accrued_at, active_from, expires_at, check_id)`,
		`(?, ?, ?, ?, ?, ?, ?, ?)`,
		`ON CONFLICT(card_id, lot_id) DO UPDATE SET points = excluded.points, remaining = excluded.remaining,
		accrued_at = excluded.accrued_at, active_from = excluded.active_from, expires_at = excluded.expires_at,
		check_id = excluded.check_id
		WHERE (points, remaining, accrued_at, active_from, expires_at, check_id) IS NOT
			(excluded.points, excluded.remaining, excluded.accrued_at, excluded.active_from, excluded.expires_at, excluded.check_id)`,
		len(lots), func(i int, args []any) []any {
			l := &lots[i]
			rem, from := l.RemainingPoints(), l.ActiveSince()
			var exp sql.NullInt64
			if l.ExpiresAt != nil {
				exp = sql.NullInt64{Int64: l.ExpiresAt.Unix(), Valid: true}
			}
			var id any // none: the insert fails on the NOT NULL, naming the lot
			if v, ok := ids[l.Card]; ok {
				id = v
			}
			return append(args, id, l.ID, l.Points.String(), rem.String(), l.AccruedAt.Unix(), from.Unix(), exp, l.CheckID)
		}, func(i int, err error) error {
			return fmt.Errorf("lots[%d] id %q of card %q: %w", i, lots[i].ID, lots[i].Card, err)
		})
	if err != nil {
		return fmt.Errorf("lots: %w", err)
	}
	st.Lots += len(lots)
	return nil
}

// cardIDs looks up, in one statement, the rowids of the cards a replica's
// lots name and, for a page carrying its cards whole, of those cards: a
// page's 25,000 lots name 5,000 cards, and each lot's own look-up by code
// was a fifth of its insert. Run after the cards are written.
func cardIDs(ctx context.Context, tx *sql.Tx, r *Replica, whole bool) (map[string]int64, error) {
	if len(r.Lots) == 0 && !whole {
		return nil, nil
	}
	var codes []string
	seen := map[string]bool{}
	add := func(code string) {
		if !seen[code] {
			seen[code] = true
			codes = append(codes, code)
		}
	}
	if whole {
		for _, c := range r.Cards {
			add(c.Code)
		}
	}
	for _, l := range r.Lots {
		add(l.Card)
	}
	cj, err := json.Marshal(codes)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT c.code, c.id FROM json_each(?) j JOIN cards c ON c.code = j.value`, string(cj))
	if err != nil {
		return nil, fmt.Errorf("rowids of the cards: %w", err)
	}
	defer rows.Close()
	ids := make(map[string]int64, len(codes))
	for rows.Next() {
		var code string
		var id int64
		if err := rows.Scan(&code, &id); err != nil {
			return nil, fmt.Errorf("rowids of the cards: %w", err)
		}
		ids[code] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rowids of the cards: %w", err)
	}
	return ids, nil
}

// importChunk is how many rows one INSERT of an import carries: the
// driver's cost per statement is most of a single row's.
const importChunk = 64

// execChunked inserts n rows (args appends row i's values) with
// head VALUES row, row, … tail, importChunk rows a statement. A chunk that
// fails is inserted again row by row (SQLite undid the failed statement,
// and the transaction goes on), so the error, from rowErr, names the row.
func execChunked(ctx context.Context, tx *sql.Tx, head, row, tail string, n int,
	args func(i int, to []any) []any, rowErr func(i int, err error) error) error {
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	stmt := func(rows int) (*sql.Stmt, error) {
		if st, ok := stmts[rows]; ok {
			return st, nil
		}
		q := head + " VALUES " + row + strings.Repeat(", "+row, rows-1) + " " + tail
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return nil, err
		}
		stmts[rows] = st
		return st, nil
	}
	var vals []any
	for at := 0; at < n; at += importChunk {
		end := min(at+importChunk, n)
		st, err := stmt(end - at)
		if err != nil {
			return err
		}
		vals = vals[:0]
		for i := at; i < end; i++ {
			vals = args(i, vals)
		}
		if _, err := st.ExecContext(ctx, vals...); err == nil {
			continue
		} else if end-at == 1 {
			return rowErr(at, err)
		}
		one, err := stmt(1)
		if err != nil {
			return err
		}
		for i := at; i < end; i++ {
			if _, err := one.ExecContext(ctx, args(i, nil)...); err != nil {
				return rowErr(i, err)
			}
		}
	}
	return nil
}

// txExists looks references up in the store, inside the import transaction.
func txExists(ctx context.Context, tx *sql.Tx) Exists { return existsIn(ctx, tx) }

// existsIn looks replica references up through q: the import's
// transaction or the read pool.
func existsIn(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) Exists {
	queries := map[string]string{
		"stores":     `SELECT 1 FROM stores WHERE id = ?`,
		"groups":     `SELECT 1 FROM product_groups WHERE id = ?`,
		"products":   `SELECT 1 FROM products WHERE id = ?`,
		"programs":   `SELECT 1 FROM programs WHERE id = ?`,
		"card_kinds": `SELECT 1 FROM card_kinds WHERE id = ?`,
		"cards":      `SELECT 1 FROM cards WHERE code = ?`,
	}
	return func(table, id string) (bool, error) {
		query, ok := queries[table]
		if !ok {
			return false, fmt.Errorf("unknown table %q", table)
		}
		var one int
		err := q.QueryRowContext(ctx, query, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
}

// HasReplica reports whether any replica has been imported.
func (s *Store) HasReplica(ctx context.Context) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM replica_meta WHERE key = 'imported_at'`).Scan(&n); err != nil {
		return false, fmt.Errorf("store %s: %w", s.path, err)
	}
	return n > 0, nil
}

// EnsureDemo imports the replica file at path when the store holds no
// replica yet (config store.demo_replica, `make run`). It reports whether
// it imported.
func (s *Store) EnsureDemo(ctx context.Context, path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	has, err := s.HasReplica(ctx)
	if err != nil || has {
		return false, err
	}
	if _, err := s.ImportFile(ctx, path); err != nil {
		return false, err
	}
	return true, nil
}

func nullStr(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
