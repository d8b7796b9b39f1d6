package store

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"tillagent/driver/scanner/classify"
)

// PublicKey is an Ed25519 key that signs virtual-card QR tokens. The
// scanner's classifier verifies a token against the key whose id it carries.
type PublicKey struct {
	ID        uint16
	Key       ed25519.PublicKey
	ValidFrom time.Time
	ValidTo   time.Time // zero: open-ended
}

// ValidAt reports whether the key may verify a token presented at t.
func (k PublicKey) ValidAt(t time.Time) bool {
	return !t.Before(k.ValidFrom) && (k.ValidTo.IsZero() || t.Before(k.ValidTo))
}

// PublicKeys returns every card key in the replica, valid or not, ordered by id.
func (s *Store) PublicKeys(ctx context.Context) ([]PublicKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key_id, public_key, valid_from, valid_to FROM card_keys ORDER BY key_id`)
	if err != nil {
		return nil, fmt.Errorf("store %s: card keys: %w", s.path, err)
	}
	defer rows.Close()
	var out []PublicKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store %s: card keys: %w", s.path, err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

var _ classify.KeySource = (*Store)(nil)

// CardKey implements classify.KeySource: the key with this id, valid or
// not (the classifier judges the validity window), or an error wrapping
// classify.ErrUnknownKey.
func (s *Store) CardKey(ctx context.Context, keyID uint16) (classify.Key, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT key_id, public_key, valid_from, valid_to FROM card_keys WHERE key_id = ?`, keyID))
	if errors.Is(err, sql.ErrNoRows) {
		return classify.Key{}, fmt.Errorf("store %s: card key %d: %w", s.path, keyID, classify.ErrUnknownKey)
	}
	if err != nil {
		return classify.Key{}, fmt.Errorf("store %s: card key %d: %w", s.path, keyID, err)
	}
	return classify.Key{Public: k.Key, ValidFrom: k.ValidFrom, ValidTo: k.ValidTo}, nil
}

func scanKey(row interface{ Scan(...any) error }) (PublicKey, error) {
	var k PublicKey
	var key []byte
	var from int64
	var to sql.NullInt64
	if err := row.Scan(&k.ID, &key, &from, &to); err != nil {
		return PublicKey{}, err
	}
	k.Key = ed25519.PublicKey(key)
	k.ValidFrom, k.ValidTo = time.Unix(from, 0).UTC(), fromNullUnix(to)
	return k, nil
}
