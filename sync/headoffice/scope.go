package headoffice

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Card scopes of a store (docs/sync.md, "Which cards a store gets").
const (
	// ScopeAll: the store's tills receive every card (the default).
	ScopeAll = "all"
	// ScopeHome: they receive only the cards home to the store
	// (AssignCards): a small replica for a store whose customers are its own.
	ScopeHome = "home"
)

// ErrScopeConflict refuses a scope change that would leave tills stale.
var ErrScopeConflict = errors.New("card scope change refused")

// ErrUnknownCards refuses an assignment naming cards head office lacks.
var ErrUnknownCards = errors.New("unknown cards")

// ErrUnknownStore is a store id that is not in head office's catalog: its
// scope and home cards are refused (HTTP 404), as enrolling its tills is.
var ErrUnknownStore = errors.New("unknown store")

// rowQuerier is what knownStore reads with: the pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// storeIDForm refuses a store id no store can have (ErrBadRequest); what
// names the operation.
func storeIDForm(what, storeID string) error {
	if !tillIDRe.MatchString(storeID) {
		return badRequest(fmt.Errorf("%s: bad store id %q: want 1-37 of A-Z a-z 0-9 _ . : / -", what, storeID))
	}
	return nil
}

// knownStore refuses a store that is not in the catalog (ErrUnknownStore).
func knownStore(ctx context.Context, q rowQuerier, storeID string) error {
	var known bool
	if err := q.QueryRow(ctx, sqlStoreKnown, storeID).Scan(&known); err != nil {
		return fmt.Errorf("look up store %s: %w", storeID, err)
	}
	if !known {
		return fmt.Errorf("%w %q: not in head office's catalog (import it first)", ErrUnknownStore, storeID)
	}
	return nil
}

// CardScope is a store's card scope and how many cards are home to it.
type CardScope struct {
	StoreID   string `json:"store_id"`
	Scope     string `json:"scope"`
	HomeCards int    `json:"home_cards"`
}

// StoreCardScope returns the store's scope ("all" when never set).
func (s *Server) StoreCardScope(ctx context.Context, storeID string) (CardScope, error) {
	out := CardScope{StoreID: storeID}
	if err := storeIDForm("card scope", storeID); err != nil {
		return CardScope{}, err
	}
	if err := knownStore(ctx, s.db, storeID); err != nil {
		return CardScope{}, fmt.Errorf("card scope of store %s: %w", storeID, err)
	}
	err := s.db.QueryRow(ctx, `SELECT coalesce((SELECT scope FROM store_card_scope WHERE store_id = $1), 'all'),
		(SELECT count(*) FROM card_stores WHERE store_id = $1)`, storeID).Scan(&out.Scope, &out.HomeCards)
	if err != nil {
		return CardScope{}, fmt.Errorf("card scope of store %s: %w", storeID, err)
	}
	return out, nil
}

// SetCardScope sets which cards the store's tills receive. Widening to
// "all" makes every card not yet home to the store a change of the store
// (section "home/<store>"), so its tills receive each card with all its
// lots in their next deltas (paged). Narrowing to "home" is refused while
// the store has enrolled tills: they hold cards they would stop hearing
// about (an import never deletes), and a stale balance is an overdraft
// waiting to happen; set it before enrolling the store's tills.
func (s *Server) SetCardScope(ctx context.Context, storeID, scope string) error {
	if scope != ScopeAll && scope != ScopeHome {
		return badRequest(fmt.Errorf("card scope of store %s: %q: want all or home", storeID, scope))
	}
	if err := storeIDForm("card scope", storeID); err != nil {
		return err
	}
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// One scope change of a store at a time.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('card scope ' || $1))`, storeID); err != nil {
			return err
		}
		if err := knownStore(ctx, tx, storeID); err != nil {
			return err
		}
		var cur string
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT scope FROM store_card_scope WHERE store_id = $1), 'all')`, storeID).Scan(&cur); err != nil {
			return err
		}
		if cur == scope {
			return nil
		}
		if scope == ScopeHome {
			// Hold enrolment off until this commits: a till enrolled in
			// between would load every card and then hear of few.
			if _, err := tx.Exec(ctx, `LOCK TABLE tills IN SHARE MODE`); err != nil {
				return err
			}
			var tills int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM tills WHERE store_id = $1`, storeID).Scan(&tills); err != nil {
				return err
			}
			if tills > 0 {
				return fmt.Errorf("%w: store %s has %d enrolled tills holding every card; narrowing would leave the cards outside its home set stale there (set the scope before enrolling tills)",
					ErrScopeConflict, storeID, tills)
			}
		} else {
			// Every card must be seen by the statement below or created
			// after the scope is all. An import creating one that commits
			// while this runs has a lower xid: a feed between its commit
			// and this one reads the store as home, leaves the card out,
			// and moves its cursor past it, and no home row names it, so
			// the store's tills never got the card. Wait for imports in
			// flight, and hold new ones off until this commits.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, cardsCreatedLock); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO changes (section, key) SELECT 'home/' || $1, c.code FROM cards c
				WHERE NOT EXISTS (SELECT 1 FROM card_stores h WHERE h.store_id = $1 AND h.card = c.code)`, storeID); err != nil {
				return fmt.Errorf("announce the store's new cards: %w", err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO store_card_scope (store_id, scope) VALUES ($1, $2)
			ON CONFLICT (store_id) DO UPDATE SET scope = excluded.scope`, storeID, scope)
		return err
	})
	if err != nil {
		return fmt.Errorf("card scope of store %s: %w", storeID, err)
	}
	s.log.Info("store card scope set", "store", storeID, "scope", scope)
	return nil
}

// cardsCreatedLock is the advisory lock key ("crdc", paired with the
// schema's hash as pruneLock is) an import that creates cards holds
// shared, and widening a store's card scope exclusive.
const cardsCreatedLock = 0x63726463

// maxAssign is the most cards one AssignCards takes.
const maxAssign = 100000

// AssignCards makes cards home to a store (idempotent) and returns how
// many were new. Each new one is a change of the store: its tills receive
// the card with all its lots in their next delta, however long ago the
// card last changed. Unknown cards refuse the whole assignment, naming
// them. A card stays home once assigned (see SetCardScope on narrowing).
func (s *Server) AssignCards(ctx context.Context, storeID string, codes []string) (int, error) {
	if err := storeIDForm("assign cards", storeID); err != nil {
		return 0, err
	}
	if len(codes) == 0 || len(codes) > maxAssign {
		return 0, badRequest(fmt.Errorf("assign cards to store %s: %d cards, want 1-%d", storeID, len(codes), maxAssign))
	}
	for i, c := range codes {
		if c == "" || strings.IndexByte(c, 0) >= 0 {
			return 0, badRequest(fmt.Errorf("assign cards to store %s: card %d is %q: want a card code", storeID, i+1, c))
		}
	}
	var n int
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := knownStore(ctx, tx, storeID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT u.code FROM unnest($1::text[]) AS u(code)
			WHERE NOT EXISTS (SELECT 1 FROM cards c WHERE c.code = u.code) ORDER BY 1`, codes)
		if err != nil {
			return err
		}
		missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			more := ""
			if len(missing) > 20 {
				missing, more = missing[:20], fmt.Sprintf(" (and %d more)", len(missing)-20)
			}
			return fmt.Errorf("%w: %s%s", ErrUnknownCards, strings.Join(missing, ", "), more)
		}
		tag, err := tx.Exec(ctx, sqlMakeHome, storeID, codes)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("assign cards to store %s: %w", storeID, err)
	}
	return n, nil
}

// sqlMakeHome makes the cards ($2) head office holds home to the store
// ($1), each with a change row of the store's (a card home already: none),
// in code order, so two transactions making the same cards home wait for
// each other rather than deadlock. Its rows affected are the cards made
// home.
const sqlMakeHome = `WITH ins AS (
	INSERT INTO card_stores (store_id, card) SELECT $1, code FROM cards WHERE code = ANY($2) ORDER BY code
	ON CONFLICT DO NOTHING RETURNING card)
	INSERT INTO changes (section, key) SELECT 'home/' || $1, card FROM ins`

// ResetFeed makes a till drop its feed cursor and load the replica afresh
// at its next pull: for when head office was restored from a backup (the
// cursors tills hold are xids of the lost history, and a new write may get
// an xid below one of them and be skipped). It gives the till a new random
// feed epoch (random, not counted up: the backup may hold an older count
// that tills have already seen a higher value of);
// the till's next delta answers "reset", its first load starts the new
// epoch. It returns the new epoch.
func (s *Server) ResetFeed(ctx context.Context, tillID string) (int, error) {
	var epoch int
	err := s.db.QueryRow(ctx, `UPDATE tills SET feed_epoch = CASE WHEN e = feed_epoch THEN e % 2147483646 + 1 ELSE e END
		FROM (SELECT `+sqlNewEpoch+` AS e) r WHERE till_id = $1 RETURNING feed_epoch`, tillID).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("reset feed of till %s: %w", tillID, ErrUnknownTill)
	}
	if err != nil {
		return 0, fmt.Errorf("reset feed of till %s: %w", tillID, err)
	}
	s.log.Warn("till feed reset", "till", tillID, "epoch", epoch)
	return epoch, nil
}

// sqlNewEpoch is a random epoch, never 0 (0 is a till's or the export's
// first, written in no cursor): random, not counted up, because a backup
// may hold an older count than tills and ERP jobs have seen.
const sqlNewEpoch = `(1 + floor(random() * 2147483646)::int)`

// ErrUnknownTill is a till id head office has not enrolled.
var ErrUnknownTill = errors.New("unknown till")
