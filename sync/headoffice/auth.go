package headoffice

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

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

// Retire takes a till out of service (stolen, broken, replaced): from now
// on neither its secret nor its certificate is admitted, and a secret
// signed with the enrolment key from before now is not readmitted after a
// restore. Its journal and watermark stay; enrolling it again brings it
// back with a new secret, and only certificates issued after now (a push
// in flight is refused under the till's row lock, see sqlLockTill).
// Retiring a retired till answers when it was retired.
func (s *Server) Retire(ctx context.Context, tillID string) (time.Time, error) {
	// Wall time, as Enrol stamps enrolments: the two are compared.
	now := time.UnixMilli(time.Now().UnixMilli())
	var at time.Time
	err := s.db.QueryRow(ctx, `UPDATE tills SET retired_at = coalesce(retired_at, $2), certs_after = coalesce(retired_at, $2)
		WHERE till_id = $1 RETURNING retired_at`, tillID, now).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, fmt.Errorf("retire till %s: %w", tillID, ErrUnknownTill)
	case err != nil:
		return time.Time{}, fmt.Errorf("retire till %s: %w", tillID, err)
	}
	return at, nil
}

// retiredError says a till is retired, for head office's log.
func retiredError(tillID string, at time.Time) error {
	return fmt.Errorf("%w: till %s was retired at %s (enrol it again to bring it back)", ErrUnauthorized, tillID, at.UTC().Format(time.RFC3339))
}

// Enrol registers a till of a store and returns its secret, shown once:
// head office keeps only its SHA-256 (the secret carries 32 random bytes
// or, with an enrolment key, 16 random bytes and a 32-byte HMAC, so a slow
// hash buys nothing). Enrolling a till again issues a new secret and
// keeps its journal and watermark.
func (s *Server) Enrol(ctx context.Context, tillID, storeID string) (string, error) {
	if !tillIDRe.MatchString(tillID) || !tillIDRe.MatchString(storeID) {
		return "", badRequest(fmt.Errorf("enrol till %q of store %q: ids must be 1-37 of A-Z a-z 0-9 _ . : / -", tillID, storeID))
	}
	if strings.Contains(tillID, ":") {
		// HTTP Basic splits the user from the password at the first colon:
		// such a till could never authenticate.
		return "", badRequest(fmt.Errorf("enrol till %q: a till id cannot hold ':' (HTTP Basic authentication splits at it)", tillID))
	}
	if up := strings.ToUpper(tillID); up == ERPTill || strings.HasPrefix(up, ERPTill+"-") {
		// Head office's own journal (corrections) has ids ERP-…: a till's
		// entry ids (TILL-ULID) must never meet them.
		return "", badRequest(fmt.Errorf("enrol till %q: %s and %s-… are reserved for head office's own journal", tillID, ERPTill, ERPTill))
	}
	var known bool
	if err := s.db.QueryRow(ctx, sqlStoreKnown, storeID).Scan(&known); err != nil {
		return "", fmt.Errorf("enrol till %s: look up store %s: %w", tillID, storeID, err)
	}
	if !known {
		// Its feed would be empty and its history months in UTC.
		return "", badRequest(fmt.Errorf("enrol till %s: store %q is not in head office's catalog (import it first)", tillID, storeID))
	}
	// Wall time, not the server's clock: it orders enrolments of a till
	// (readmit), whatever clock lot expiry runs on.
	issued := time.UnixMilli(time.Now().UnixMilli())
	secret, err := s.issueSecret(tillID, storeID, issued)
	if err != nil {
		return "", fmt.Errorf("enrol till %s: %w", tillID, err)
	}
	sum := sha256.Sum256([]byte(secret))
	// Enrolled again after it was retired: a new box under the old id,
	// never heard from yet (what was known of the old one goes, in the
	// same statement).
	s.forgetSeenNote(tillID)
	// Moved to another store, the till's feed is reset: its cursor is
	// past changes of the new store's card scope it never got (the cards
	// home to it, on a home store; every card not home to the old one,
	// on an all store), which it would never receive.
	var moved *string
	err = s.db.QueryRow(ctx, `WITH old AS (SELECT store_id FROM tills WHERE till_id = $1),
		new_box AS (DELETE FROM till_seen WHERE till_id = $1
			AND EXISTS (SELECT 1 FROM tills WHERE till_id = $1 AND retired_at IS NOT NULL))
		INSERT INTO tills (till_id, store_id, secret_sha256, enrolled_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (till_id) DO UPDATE SET store_id = excluded.store_id, secret_sha256 = excluded.secret_sha256,
			enrolled_at = excluded.enrolled_at, retired_at = NULL,
			feed_epoch = CASE WHEN tills.store_id = excluded.store_id THEN tills.feed_epoch
				ELSE (SELECT CASE WHEN e = tills.feed_epoch THEN e % 2147483646 + 1 ELSE e END FROM (SELECT `+sqlNewEpoch+` AS e) r) END
		RETURNING (SELECT store_id FROM old WHERE store_id <> $2)`,
		tillID, storeID, sum[:], issued).Scan(&moved)
	if err != nil {
		return "", fmt.Errorf("enrol till %s: %w", tillID, err)
	}
	if moved != nil {
		s.log.Warn("till enrolled in another store: its feed is reset, it loads its replica afresh at its next sync",
			"till", tillID, "from_store", *moved, "store", storeID)
	}
	// Entries retake-journal kept while head office did not know the till
	// (restored from a backup taken before its enrolment) are taken now; a
	// failure is logged, and the next maintenance run tries again.
	s.takeKept(ctx, tillID) //nolint:errcheck
	return secret, nil
}

const sqlStoreKnown = `SELECT EXISTS (SELECT 1 FROM catalog WHERE section = 'stores' AND id = $1)`

// Secrets issued with an enrolment key (Options.EnrolKey) read
//
//	e1.<issued, Unix ms>.<nonce, 32 hex>.<HMAC-SHA256, 64 hex>.<store id>
//
// The HMAC, under a key head office keeps outside its database, binds the
// till id, the store, the time and the nonce. A head office restored from
// a backup taken before a till was enrolled (or enrolled again) has no row
// (or an older one) for it; such a secret lets it admit the till again
// without a visit to the store (readmit).
const secretVersion = "e1"

func (s *Server) issueSecret(tillID, storeID string, issued time.Time) (string, error) {
	nonce := make([]byte, 16)
	if len(s.enrolKey) == 0 {
		nonce = make([]byte, 32)
	}
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	if len(s.enrolKey) == 0 {
		return hex.EncodeToString(nonce), nil
	}
	ms := strconv.FormatInt(issued.UnixMilli(), 10)
	n := hex.EncodeToString(nonce)
	return strings.Join([]string{secretVersion, ms, n, hex.EncodeToString(s.secretMAC(tillID, storeID, ms, n)), storeID}, "."), nil
}

func (s *Server) secretMAC(tillID, storeID, ms, nonce string) []byte {
	m := hmac.New(sha256.New, s.enrolKey)
	for _, part := range []string{"tillagent till secret " + secretVersion, tillID, storeID, ms, nonce} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// keyedSecret is what a secret issued with the enrolment key says, once
// its HMAC is checked; ok is false for any other secret.
func (s *Server) keyedSecret(tillID, secret string) (storeID string, issued time.Time, ok bool) {
	if len(s.enrolKey) == 0 {
		return "", time.Time{}, false
	}
	p := strings.SplitN(secret, ".", 5)
	if len(p) != 5 || p[0] != secretVersion || len(p[2]) != 32 || !tillIDRe.MatchString(p[4]) {
		return "", time.Time{}, false
	}
	ms, err := strconv.ParseInt(p[1], 10, 64)
	mac, herr := hex.DecodeString(p[3])
	if err != nil || herr != nil || !hmac.Equal(mac, s.secretMAC(tillID, p[4], p[1], p[2])) {
		return "", time.Time{}, false
	}
	return p[4], time.UnixMilli(ms), true
}

// authTill checks a till's secret and returns its store.
func (s *Server) authTill(ctx context.Context, tillID, secret string) (string, error) {
	var store string
	var want []byte
	var retired *time.Time
	err := s.db.QueryRow(ctx, `SELECT store_id, secret_sha256, retired_at FROM tills WHERE till_id = $1`, tillID).Scan(&store, &want, &retired)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("authenticate till %s: %w", tillID, err)
	}
	known := err == nil
	if known && retired != nil {
		if _, issued, ok := s.keyedSecret(tillID, secret); !ok || !issued.After(*retired) {
			return "", retiredError(tillID, *retired)
		}
	}
	got := sha256.Sum256([]byte(secret))
	if known && subtle.ConstantTimeCompare(got[:], want) == 1 {
		return store, nil
	}
	if storeID, issued, ok := s.keyedSecret(tillID, secret); ok {
		return s.readmit(ctx, tillID, storeID, issued, got[:])
	}
	// Why, for head office's log (the till is told only that it is
	// refused): what the operator does next differs.
	switch {
	case strings.HasPrefix(secret, secretVersion+".") && len(s.enrolKey) == 0:
		return "", fmt.Errorf("%w: the secret is signed with an enrolment key and head office has none (set HEADOFFICE_ENROL_KEY to the key it was enrolled with)", ErrUnauthorized)
	case strings.HasPrefix(secret, secretVersion+"."):
		return "", fmt.Errorf("%w: the secret is signed, but not with this head office's enrolment key", ErrUnauthorized)
	case !known:
		return "", fmt.Errorf("%w: not enrolled here (head office restored from a backup taken before its enrolment? enrol it again)", ErrUnauthorized)
	}
	return "", fmt.Errorf("%w: the secret does not match its enrolment (enrolled again since? the till must use the new secret)", ErrUnauthorized)
}

// authTillCert admits a till by the certificate it presented (verified by
// the TLS layer, its common name tillID, valid from notBefore) and returns
// its store: the certificate stands for the secret, the till must still be
// enrolled, and a certificate from before its last retirement is refused
// (a stolen till's, after its replacement was enrolled under its id).
func (s *Server) authTillCert(ctx context.Context, tillID string, notBefore time.Time) (string, error) {
	var store string
	var retired, certsAfter *time.Time
	err := s.db.QueryRow(ctx, `SELECT store_id, retired_at, certs_after FROM tills WHERE till_id = $1`, tillID).Scan(&store, &retired, &certsAfter)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("%w: till %s has a certificate but is not enrolled here (enrol it: headoffice enrol)", ErrUnauthorized, tillID)
	case err != nil:
		return "", fmt.Errorf("authenticate till %s: %w", tillID, err)
	case retired != nil:
		return "", retiredError(tillID, *retired)
	case certsAfter != nil && !notBefore.After(*certsAfter):
		return "", fmt.Errorf("%w: till %s's certificate is valid from %s, before the till was retired at %s: issue its replacement a new one",
			ErrUnauthorized, tillID, notBefore.UTC().Format(time.RFC3339), certsAfter.UTC().Format(time.RFC3339))
	}
	return store, nil
}

// readmit admits a till whose secret head office does not hold (sum is
// its SHA-256), the secret issued with the enrolment key for storeID at
// issued (keyedSecret) and newer than what head office holds: it has no row for the till, or one from an earlier
// enrolment (restored from a backup taken before the till was enrolled or
// enrolled again). A secret older than the row's enrolment (one that
// enrolling again replaced) stays refused. The till's feed is reset (a new
// epoch), so it pushes its journal again after head office's watermark and
// loads the replica afresh, as after the ERP's reset-feed.
func (s *Server) readmit(ctx context.Context, tillID, storeID string, issued time.Time, sum []byte) (string, error) {
	tag, err := s.db.Exec(ctx, `INSERT INTO tills (till_id, store_id, secret_sha256, enrolled_at, feed_epoch)
		SELECT $1, $2, $3, $4, `+sqlNewEpoch+`
		WHERE EXISTS (SELECT 1 FROM catalog WHERE section = 'stores' AND id = $2)
		ON CONFLICT (till_id) DO UPDATE SET store_id = excluded.store_id, secret_sha256 = excluded.secret_sha256,
			enrolled_at = excluded.enrolled_at, feed_epoch = excluded.feed_epoch, retired_at = NULL
		WHERE tills.enrolled_at < excluded.enrolled_at AND (tills.retired_at IS NULL OR tills.retired_at < excluded.enrolled_at)`,
		tillID, storeID, sum, issued)
	if err != nil {
		return "", fmt.Errorf("authenticate till %s: readmit: %w", tillID, err)
	}
	if tag.RowsAffected() == 0 {
		// An older secret, a store head office does not know (yet), or
		// another request of the till admitted it a moment ago.
		var want []byte
		err := s.db.QueryRow(ctx, `SELECT secret_sha256 FROM tills WHERE till_id = $1`, tillID).Scan(&want)
		if err == nil && subtle.ConstantTimeCompare(sum, want) == 1 {
			return storeID, nil
		}
		return "", fmt.Errorf("%w: the secret, issued %s for store %s, is older than the till's enrolment (enrolled again since), or the store is not in the catalog",
			ErrUnauthorized, issued.UTC().Format(time.RFC3339), storeID)
	}
	s.log.Warn("till admitted again from its enrolment secret (head office restored from a backup?): its feed is reset",
		"till", tillID, "store", storeID, "issued", issued)
	// Before the till's request goes on, so that its push finds the
	// entries it dropped back (a failure is logged, and the next
	// maintenance run tries again).
	s.takeKept(ctx, tillID) //nolint:errcheck
	return storeID, nil
}

// authERP compares an ERP job's token with head office's in constant time
// (erpRefusal has refused every request when head office has none).
func (s *Server) authERP(token string) bool {
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(s.erpToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
