package headoffice

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5"

	"tillagent/internal/store"
	"tillagent/sync/wire"
)

// FetchCards answers a till of storeID whose replica lacks the cards: a
// customer of another store shopping on a `home` store (a cashier waits
// for one card), a card newer than the till's last delta, or the cards a
// till fetched before head office was restored from a backup. On a `home`
// store each card head office holds becomes home to it (card_stores, and a
// change row of section home/<store>, as AssignCards writes), so every till
// of the store receives its changes from then on; on an `all` store nothing
// is written. The answer holds the cards with their live lots, read in the
// same transaction after the assignment: a change committed after that
// read has a change row the store's tills receive in a later delta, so a
// till that imports this answer before its next delta (sync/client holds
// its cycle for that) never takes a card back to an older state. Codes
// head office does not hold are listed in Unknown.
func (s *Server) FetchCards(ctx context.Context, tillID, storeID string, codes []string) (*wire.CardAnswer, error) {
	if len(codes) == 0 || len(codes) > wire.MaxFetchCards {
		return nil, badRequest(fmt.Errorf("fetch cards for till %s: %d codes, want 1-%d", tillID, len(codes), wire.MaxFetchCards))
	}
	for i, code := range codes {
		if !store.ValidID(code) {
			// As the import takes them: no card head office holds has
			// another code.
			return nil, badRequest(fmt.Errorf("fetch cards for till %s: card code %d is %q: want 1-64 of A-Z a-z 0-9 _ . : / -, not starting with a sign", tillID, i+1, code))
		}
	}
	codes = slices.Compact(slices.Sorted(slices.Values(codes)))
	a := &wire.CardAnswer{Replica: &store.Replica{Version: store.ReplicaFormatVersion}}
	made := int64(0)
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var scope string
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT scope FROM store_card_scope WHERE store_id = $1), 'all')`, storeID).Scan(&scope); err != nil {
			return fmt.Errorf("read the store's card scope: %w", err)
		}
		a.Scope = scope
		if scope == ScopeHome {
			tag, err := tx.Exec(ctx, sqlMakeHome, storeID, codes)
			if err != nil {
				return fmt.Errorf("make the cards home to store %s: %w", storeID, err)
			}
			made = tag.RowsAffected()
		}
		return s.feedCardCodes(ctx, tx, a.Replica, codes)
	})
	if err != nil {
		return nil, fmt.Errorf("fetch %d cards for till %s: %w", len(codes), tillID, err)
	}
	held := make(map[string]bool, len(a.Replica.Cards))
	for _, c := range a.Replica.Cards {
		held[c.Code] = true
	}
	for _, code := range codes {
		if !held[code] {
			a.Unknown = append(a.Unknown, code)
		}
	}
	now := s.now()
	a.Replica.AsOf = &now
	s.log.Info("cards fetched by a till", "till", tillID, "store", storeID, "asked", len(codes), "first", codes[0],
		"unknown", len(a.Unknown), "made_home", made)
	return a, nil
}

func (s *Server) handleFetchCards(w http.ResponseWriter, r *http.Request, tillID, storeID string) {
	if s.noCardFetches {
		httpError(w, http.StatusForbidden, "card fetches are turned off at head office (serve -card-fetch=false): a till gets only its own store's cards")
		return
	}
	var req struct {
		Codes []string `json:"codes"`
	}
	// MaxFetchCards codes of up to 64 characters and their quotes.
	if err := decodeStrict(w, r, 128<<10, &req); err != nil {
		decodeFailed(w, "fetch cards", err)
		return
	}
	var a *wire.CardAnswer
	err := s.retryLost(func() (err error) {
		a, err = s.FetchCards(r.Context(), tillID, storeID, req.Codes)
		return err
	})
	s.reply(w, r, a, err)
}
