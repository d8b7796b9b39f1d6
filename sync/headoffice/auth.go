package headoffice

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

var tillIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,36}$`)

// ErrBadRequest marks errors caused by the request's values (the HTTP
// answer is 400, not 500).
var ErrBadRequest = errors.New("bad request")

type badRequestError struct{ err error }

func (e badRequestError) Error() string   { return e.err.Error() }
func (e badRequestError) Unwrap() []error { return []error{e.err, ErrBadRequest} }

// badRequest marks err as the request's fault (errors.Is ErrBadRequest).
func badRequest(err error) error { return badRequestError{err} }

// ErrUnauthorized is a till or ERP request with wrong credentials.
var ErrUnauthorized = errors.New("unauthorized")

// Enrol registers a till of a store and returns its secret, shown once:
// head office keeps only its SHA-256 (the secret is 32 random bytes, so a
// slow hash buys nothing). Enrolling a till again issues a new secret and
// keeps its journal and watermark.
func (s *Server) Enrol(ctx context.Context, tillID, storeID string) (string, error) {
	if !tillIDRe.MatchString(tillID) || !tillIDRe.MatchString(storeID) {
		return "", badRequest(fmt.Errorf("enrol till %q of store %q: ids must be 1-37 of A-Z a-z 0-9 _ . : / -", tillID, storeID))
	}
	if up := strings.ToUpper(tillID); up == erpTill || strings.HasPrefix(up, erpTill+"-") {
		// Head office's own journal (corrections) has ids ERP-…: a till's
		// entry ids (TILL-ULID) must never meet them.
		return "", badRequest(fmt.Errorf("enrol till %q: %s and %s-… are reserved for head office's own journal", tillID, erpTill, erpTill))
	}
	var known bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM catalog WHERE section = 'stores' AND id = $1)`, storeID).Scan(&known); err != nil {
		return "", fmt.Errorf("enrol till %s: look up store %s: %w", tillID, storeID, err)
	}
	if !known {
		// Its feed would be empty and its history months in UTC.
		return "", badRequest(fmt.Errorf("enrol till %s: store %q is not in head office's catalog (import it first)", tillID, storeID))
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("enrol till %s: %w", tillID, err)
	}
	secret := hex.EncodeToString(raw)
	sum := sha256.Sum256([]byte(secret))
	_, err := s.db.Exec(ctx, `INSERT INTO tills (till_id, store_id, secret_sha256) VALUES ($1, $2, $3)
		ON CONFLICT (till_id) DO UPDATE SET store_id = excluded.store_id, secret_sha256 = excluded.secret_sha256`,
		tillID, storeID, sum[:])
	if err != nil {
		return "", fmt.Errorf("enrol till %s: %w", tillID, err)
	}
	return secret, nil
}

// authTill checks a till's secret and returns its store.
func (s *Server) authTill(ctx context.Context, tillID, secret string) (string, error) {
	var store string
	var want []byte
	err := s.db.QueryRow(ctx, `SELECT store_id, secret_sha256 FROM tills WHERE till_id = $1`, tillID).Scan(&store, &want)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrUnauthorized
	}
	if err != nil {
		return "", fmt.Errorf("authenticate till %s: %w", tillID, err)
	}
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return "", ErrUnauthorized
	}
	return store, nil
}

func (s *Server) authERP(token string) bool {
	if s.erpToken == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(s.erpToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
