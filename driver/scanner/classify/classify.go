// Package classify decides what a scan means for the till: a loyalty card
// (configured prefixes, lengths, GS1 check digit), a virtual card shown on a
// phone (a static card number or a signed rotating token verified offline
// with the issuer's Ed25519 public keys), a coupon, a product code passed to
// the till UI unchanged (EAN/UPC, GS1 codes with GS intact), or unknown.
// Forged, expired and replayed tokens are rejected with a stable reason.
package classify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"tillagent/driver/scanner"
)

// Kind is what a scan is.
type Kind string

const (
	KindLoyaltyCard Kind = "loyalty_card" // plastic card number
	KindVirtualCard Kind = "virtual_card" // phone QR, static card number: identification only
	KindSignedCard  Kind = "signed_card"  // phone QR, verified signed token: good for redemption
	KindCoupon      Kind = "coupon"       //
	KindProduct     Kind = "product"      // passed through to the till UI
	KindUnknown     Kind = "unknown"      //
	KindRejected    Kind = "rejected"     // looked like a card or token but failed a check; see Reason
)

// Reason is a stable code for a rejection.
type Reason string

const (
	ReasonBadCheckDigit Reason = "bad_check_digit"
	ReasonBadCardNumber Reason = "bad_card_number" // a virtual card QR whose number is no card number
	ReasonMalformed     Reason = "token_malformed"
	ReasonUnknownKey    Reason = "token_unknown_key"
	ReasonKeyLookup     Reason = "token_key_lookup_failed" // the replica could not be read: retry, not fraud
	ReasonKeyNotValid   Reason = "token_key_not_valid"     // key outside its validity period (rotated out)
	ReasonBadSignature  Reason = "token_bad_signature"
	ReasonExpired       Reason = "token_expired"
	ReasonNotYetValid   Reason = "token_not_yet_valid"
	ReasonReplayed      Reason = "token_replayed"
)

// Result is the meaning of one scan.
type Result struct {
	Kind   Kind
	Card   string // card number (loyalty and virtual cards)
	Code   string // product or coupon code: the label, GS (0x1D) kept
	GS1    bool   // Code holds GS1 element strings
	Token  *Token // the verified (or rejected) token
	Reason Reason // for KindRejected
	Err    error  // detail for KindRejected
	// Duplicate: the same presentation seen again within the duplicate
	// window (a presentation scanner re-reading a phone). Not an error,
	// but the till must not act on it twice.
	Duplicate bool
	Scan      scanner.Scan
}

// Key is an issuer public key as the replica holds it.
type Key struct {
	Public    ed25519.PublicKey
	ValidFrom time.Time // zero: no lower bound
	ValidTo   time.Time // zero: no upper bound
}

// ErrUnknownKey must be returned (or wrapped) by a KeySource for a key id it
// does not hold; any other error is taken as a failure to read the replica.
var ErrUnknownKey = errors.New("unknown card key")

// KeySource gives the issuer's public keys; internal/store satisfies it
// from its card_keys table.
type KeySource interface {
	CardKey(ctx context.Context, keyID uint16) (Key, error)
}

// Config is the classifier's policy (config section "classify").
type Config struct {
	LoyaltyPrefixes   []string      // card numbers start with one of these
	LoyaltyLengths    []int         // allowed lengths in digits
	LoyaltyCheckDigit bool          // last digit is the GS1 mod-10 check digit
	CardQRPrefix      string        // static virtual card: prefix + card number, e.g. "LC0:"
	TokenQRPrefix     string        // signed token prefix; only TokenPrefix ("LC1:") is understood
	CouponPrefixes    []string      //
	TokenWindow       time.Duration // token window length; must match the issuer's
	ClockSkew         time.Duration // tolerated difference between till and issuer clocks
	DuplicateWindow   time.Duration // same token again within this is a duplicate, not a replay
	ReplayCapacity    int           // seen-token memory bound
}

// Classifier is safe for concurrent use.
type Classifier struct {
	cfg  Config
	keys KeySource
	now  func() time.Time

	mu   sync.Mutex
	seen map[seenKey]seenVal
}

type seenKey struct {
	key    uint16
	card   uint64
	digits byte // "0123" and "123" are different cards with one id
	window uint32
}

type seenVal struct {
	last    time.Time // last presentation
	expires time.Time // after this the token is expired anyway
}

// New returns a classifier. now may be nil (time.Now); tests pass a fake clock.
func New(cfg Config, keys KeySource, now func() time.Time) *Classifier {
	if now == nil {
		now = time.Now
	}
	if cfg.TokenWindow <= 0 {
		cfg.TokenWindow = time.Minute
	}
	if cfg.ReplayCapacity <= 0 {
		cfg.ReplayCapacity = 4096
	}
	if cfg.TokenQRPrefix == "" {
		cfg.TokenQRPrefix = TokenPrefix
	}
	return &Classifier{cfg: cfg, keys: keys, now: now, seen: map[seenKey]seenVal{}}
}

// Classify says what s is. It blocks only on the KeySource.
func (c *Classifier) Classify(ctx context.Context, s scanner.Scan) Result {
	label := s.Label()
	r := Result{Scan: s, Duplicate: s.Flags&scanner.FlagDuplicate != 0}
	text := string(label)
	switch {
	case strings.HasPrefix(text, c.cfg.TokenQRPrefix):
		return c.token(ctx, r, TokenPrefix+text[len(c.cfg.TokenQRPrefix):])
	case c.cfg.CardQRPrefix != "" && strings.HasPrefix(text, c.cfg.CardQRPrefix):
		num := text[len(c.cfg.CardQRPrefix):]
		if ok, reason := c.cardNumber(num); ok {
			r.Kind, r.Card = KindVirtualCard, num
		} else {
			if reason == "" {
				reason = ReasonBadCardNumber
			}
			r.Kind, r.Reason, r.Err = KindRejected, reason, fmt.Errorf("virtual card number %q: %s", num, reason)
		}
		return r
	}
	if ok, reason := c.cardNumber(text); ok {
		r.Kind, r.Card = KindLoyaltyCard, text
		return r
	} else if reason == ReasonBadCheckDigit {
		// Prefix and length of a card: a misread card must not become a product.
		r.Kind, r.Reason, r.Err = KindRejected, reason, fmt.Errorf("loyalty card %q: bad check digit", text)
		return r
	}
	for _, p := range c.cfg.CouponPrefixes {
		if p != "" && strings.HasPrefix(text, p) {
			r.Kind, r.Code = KindCoupon, text
			return r
		}
	}
	if isGTIN(label) || s.GS1() || isGS1Text(label) {
		r.Kind, r.Code, r.GS1 = KindProduct, text, !isGTIN(label)
		return r
	}
	r.Kind, r.Code = KindUnknown, text
	return r
}

// cardNumber checks a loyalty number against prefixes, lengths and the check
// digit. It returns "" as the reason when the number is not card-shaped at all.
func (c *Classifier) cardNumber(num string) (bool, Reason) {
	if len(c.cfg.LoyaltyPrefixes) == 0 || !allDigits(num) {
		return false, ""
	}
	prefixed := false
	for _, p := range c.cfg.LoyaltyPrefixes {
		if p != "" && strings.HasPrefix(num, p) {
			prefixed = true
		}
	}
	lengthOK := len(c.cfg.LoyaltyLengths) == 0
	for _, l := range c.cfg.LoyaltyLengths {
		if len(num) == l {
			lengthOK = true
		}
	}
	if !prefixed || !lengthOK {
		return false, ""
	}
	if c.cfg.LoyaltyCheckDigit && !gs1CheckDigitOK(num) {
		return false, ReasonBadCheckDigit
	}
	return true, ""
}

func (c *Classifier) token(ctx context.Context, r Result, text string) Result {
	reject := func(reason Reason, err error) Result {
		r.Kind, r.Reason, r.Err = KindRejected, reason, err
		return r
	}
	t, err := ParseToken(text)
	if err != nil {
		return reject(ReasonMalformed, err)
	}
	r.Token = &t
	key, err := c.keys.CardKey(ctx, t.KeyID)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return reject(ReasonUnknownKey, fmt.Errorf("token key %d: %w", t.KeyID, err))
	case err != nil:
		return reject(ReasonKeyLookup, fmt.Errorf("look up token key %d: %w", t.KeyID, err))
	}
	if !t.VerifySignature(key.Public) {
		return reject(ReasonBadSignature, fmt.Errorf("token for card %s: signature does not verify with key %d", t.CardNumber(c.pad()), t.KeyID))
	}
	now := c.now()
	win := c.cfg.TokenWindow
	if int64(t.Window) > math.MaxInt64/int64(win)-1 {
		// Validly signed, but so far ahead that the time does not fit.
		return reject(ReasonNotYetValid, fmt.Errorf("token window %d is beyond any clock", t.Window))
	}
	start := time.Unix(0, 0).Add(time.Duration(t.Window) * win)
	end := start.Add(win)
	if (!key.ValidFrom.IsZero() && start.Before(key.ValidFrom)) || (!key.ValidTo.IsZero() && !start.Before(key.ValidTo)) {
		return reject(ReasonKeyNotValid, fmt.Errorf("token window %d outside the validity of key %d", t.Window, t.KeyID))
	}
	skew := c.cfg.ClockSkew
	switch {
	case now.Before(start.Add(-skew)):
		return reject(ReasonNotYetValid, fmt.Errorf("token window starts %s after the till clock (skew allowed %s)", start.Sub(now).Round(time.Second), skew))
	case !now.Before(end.Add(skew)):
		return reject(ReasonExpired, fmt.Errorf("token window ended %s ago (skew allowed %s)", now.Sub(end).Round(time.Second), skew))
	}
	card := t.CardNumber(c.pad())
	dup, replay := c.remember(seenKey{t.KeyID, t.CardID, byte(t.Digits()), t.Window}, now, end.Add(skew))
	if replay {
		return reject(ReasonReplayed, fmt.Errorf("token of card %s window %d already used at this till", card, t.Window))
	}
	r.Kind, r.Card, r.Duplicate = KindSignedCard, card, r.Duplicate || dup
	return r
}

// pad is the length a token's card id is zero-padded to when the token
// states no digit count: the loyalty length if only one is configured, so
// "0270…" survives; with several lengths the count is unknowable, so none.
func (c *Classifier) pad() int {
	if len(c.cfg.LoyaltyLengths) == 1 {
		return c.cfg.LoyaltyLengths[0]
	}
	return 0
}

// remember records a token presentation. A second presentation within the
// duplicate window (measured from the last one) is a duplicate; later ones
// are replays. Memory is bounded: expired entries go first, then the ones
// closest to expiry (those are the least useful to replay).
func (c *Classifier) remember(k seenKey, now, expires time.Time) (dup, replay bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.seen[k]; ok {
		if now.Sub(v.last) < c.cfg.DuplicateWindow {
			v.last = now
			c.seen[k] = v
			return true, false
		}
		return false, true
	}
	if len(c.seen) >= c.cfg.ReplayCapacity {
		for sk, v := range c.seen {
			if !now.Before(v.expires) {
				delete(c.seen, sk)
			}
		}
		for len(c.seen) >= c.cfg.ReplayCapacity {
			var oldest seenKey
			var first = true
			var at time.Time
			for sk, v := range c.seen {
				if first || v.expires.Before(at) {
					oldest, at, first = sk, v.expires, false
				}
			}
			delete(c.seen, oldest)
		}
	}
	c.seen[k] = seenVal{last: now, expires: expires}
	return false, false
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// gs1CheckDigitOK checks the GS1 mod-10 check digit (EAN, UPC, GTIN, GSRN):
// weights 3,1,3,… from the rightmost data digit.
func gs1CheckDigitOK(s string) bool {
	if len(s) < 2 || !allDigits(s) {
		return false
	}
	sum := 0
	for i, w := len(s)-2, 3; i >= 0; i, w = i-1, 4-w {
		sum += int(s[i]-'0') * w
	}
	return (10-sum%10)%10 == int(s[len(s)-1]-'0')
}

// isGTIN: EAN-8, UPC-A, EAN-13 or GTIN-14 with a valid check digit.
func isGTIN(b []byte) bool {
	switch len(b) {
	case 8, 12, 13, 14:
		return gs1CheckDigitOK(string(b))
	}
	return false
}

// isGS1Text recognises GS1 element strings sent without a GS1 AIM: AI (01)
// and a GTIN-14 with a valid check digit, as marking codes start.
func isGS1Text(b []byte) bool {
	return len(b) >= 16 && bytes.HasPrefix(b, []byte("01")) && gs1CheckDigitOK(string(b[2:16]))
}
