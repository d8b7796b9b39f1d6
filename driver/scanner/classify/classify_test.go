package classify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"tillagent/driver/scanner"
)

// memKeys is an in-memory KeySource, as the store's card_keys table will be.
type memKeys struct {
	keys map[uint16]Key
	err  error
}

func (m *memKeys) CardKey(ctx context.Context, id uint16) (Key, error) {
	if m.err != nil {
		return Key{}, m.err
	}
	k, ok := m.keys[id]
	if !ok {
		return Key{}, fmt.Errorf("card key %d: %w", id, ErrUnknownKey)
	}
	return k, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var (
	seed    = bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv    = ed25519.NewKeyFromSeed(seed)
	pub     = priv.Public().(ed25519.PublicKey)
	other   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	testNow = time.Date(2026, 11, 23, 12, 0, 30, 0, time.UTC) // 30 s into a minute window
)

func testConfig() Config {
	return Config{
		LoyaltyPrefixes:   []string{"4601234", "2770"},
		LoyaltyLengths:    []int{13},
		LoyaltyCheckDigit: true,
		CardQRPrefix:      "LC0:",
		TokenQRPrefix:     TokenPrefix,
		CouponPrefixes:    []string{"99", "CPN:"},
		TokenWindow:       time.Minute,
		ClockSkew:         90 * time.Second,
		DuplicateWindow:   time.Second,
		ReplayCapacity:    100,
	}
}

func newTest(t *testing.T) (*Classifier, *clock, *memKeys) {
	t.Helper()
	clk := &clock{t: testNow}
	keys := &memKeys{keys: map[uint16]Key{7: {Public: pub}}}
	return New(testConfig(), keys, clk.now), clk, keys
}

func scanOf(raw string) scanner.Scan {
	aim, sym := scanner.SplitAIM([]byte(raw))
	return scanner.Scan{Device: "front", Raw: []byte(raw), AIM: aim, Symbology: sym, At: testNow}
}

func window(t time.Time) uint32 { return uint32(t.Unix() / 60) }

func TestClassifyKinds(t *testing.T) {
	c, _, _ := newTest(t)
	cases := []struct {
		raw    string
		kind   Kind
		card   string
		code   string
		gs1    bool
		reason Reason
	}{
		{"4601234567893", KindLoyaltyCard, "4601234567893", "", false, ""}, // W1
		{"]E04601234567893", KindLoyaltyCard, "4601234567893", "", false, ""},
		{"4601234567890", KindRejected, "", "", false, ReasonBadCheckDigit},
		{"LC0:2770000000017", KindVirtualCard, "2770000000017", "", false, ""},
		{"LC0:2770000000012", KindRejected, "", "", false, ReasonBadCheckDigit},
		{"9912345678903", KindCoupon, "", "9912345678903", false, ""},
		{"CPN:SPRING-10", KindCoupon, "", "CPN:SPRING-10", false, ""},
		{"]E04607001234562", KindProduct, "", "4607001234562", false, ""},
		{"96385074", KindProduct, "", "96385074", false, ""},
		{"]d20104601234567893215ABC\x1d93XY1", KindProduct, "", "0104601234567893215ABC\x1d93XY1", true, ""}, // W2, GS intact
		{"01046012345678932157w9EJp\x1d93abc1", KindProduct, "", "01046012345678932157w9EJp\x1d93abc1", true, ""},
		{"]C0HELLO-WORLD", KindUnknown, "", "HELLO-WORLD", false, ""},
		{"4607001234561", KindUnknown, "", "4607001234561", false, ""}, // bad check digit, not a card prefix
	}
	for _, tc := range cases {
		t.Run(scanner.Printable([]byte(tc.raw)), func(t *testing.T) {
			r := c.Classify(context.Background(), scanOf(tc.raw))
			if r.Kind != tc.kind || r.Card != tc.card || r.Code != tc.code || r.GS1 != tc.gs1 || r.Reason != tc.reason {
				t.Errorf("got kind %s card %q code %q gs1 %v reason %s (%v)", r.Kind, r.Card, r.Code, r.GS1, r.Reason, r.Err)
			}
		})
	}
}

func TestTokenRoundTrip(t *testing.T) {
	s := SignToken(priv, 7, 2770000000017, 29409120)
	if len(s) != 124 || !strings.HasPrefix(s, "LC1:") {
		t.Fatalf("token %q: %d chars", s, len(s))
	}
	for _, c := range s[4:] {
		if !strings.ContainsRune(b45Alphabet, c) {
			t.Fatalf("%q outside the QR alphanumeric set", c)
		}
	}
	tok, err := ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if tok.KeyID != 7 || tok.CardID != 2770000000017 || tok.Window != 29409120 || !tok.VerifySignature(pub) {
		t.Errorf("%+v", tok)
	}
	if tok.VerifySignature(other.Public().(ed25519.PublicKey)) {
		t.Error("verified with the wrong key")
	}
	if tok.String() != s {
		t.Error("String does not round-trip")
	}
}

func TestTokenVerification(t *testing.T) {
	w := window(testNow)
	cases := []struct {
		name   string
		token  func() string
		now    time.Duration // till clock offset from testNow
		kind   Kind
		reason Reason
	}{
		{"current window", func() string { return SignToken(priv, 7, 2770000000017, w) }, 0, KindSignedCard, ""},
		{"previous window within skew", func() string { return SignToken(priv, 7, 2770000000017, w-1) }, 0, KindSignedCard, ""},
		{"phone clock ahead within skew", func() string { return SignToken(priv, 7, 2770000000017, w+1) }, 0, KindSignedCard, ""},
		{"expired", func() string { return SignToken(priv, 7, 2770000000017, w-3) }, 0, KindRejected, ReasonExpired},
		{"till clock far behind", func() string { return SignToken(priv, 7, 2770000000017, w) }, -3 * time.Minute, KindRejected, ReasonNotYetValid},
		{"future window", func() string { return SignToken(priv, 7, 2770000000017, w+3) }, 0, KindRejected, ReasonNotYetValid},
		{"forged: wrong issuer key", func() string { return SignToken(other, 7, 2770000000017, w) }, 0, KindRejected, ReasonBadSignature},
		{"tampered card id", func() string {
			tok, _ := ParseToken(SignToken(priv, 7, 2770000000017, w))
			tok.CardID = 2770000000024
			return tok.String()
		}, 0, KindRejected, ReasonBadSignature},
		{"tampered window", func() string {
			tok, _ := ParseToken(SignToken(priv, 7, 2770000000017, w-10))
			tok.Window = w
			return tok.String()
		}, 0, KindRejected, ReasonBadSignature},
		{"unknown key", func() string { return SignToken(priv, 8, 2770000000017, w) }, 0, KindRejected, ReasonUnknownKey},
		{"truncated", func() string { return SignToken(priv, 7, 2770000000017, w)[:100] }, 0, KindRejected, ReasonMalformed},
		{"bad base45", func() string { return "LC1:" + strings.Repeat("a", 120) }, 0, KindRejected, ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, clk, _ := newTest(t)
			clk.t = testNow.Add(tc.now)
			r := c.Classify(context.Background(), scanOf(tc.token()))
			if r.Kind != tc.kind || r.Reason != tc.reason {
				t.Errorf("kind %s reason %s err %v", r.Kind, r.Reason, r.Err)
			}
			if r.Kind == KindSignedCard && r.Card != "2770000000017" {
				t.Errorf("card %q", r.Card)
			}
			if r.Kind == KindRejected && r.Err == nil {
				t.Error("rejection without a reason text")
			}
		})
	}
}

func TestTokenKeyValidityAndLookupFailure(t *testing.T) {
	c, _, keys := newTest(t)
	keys.keys[7] = Key{Public: pub, ValidTo: testNow.Add(-time.Hour)}
	if r := c.Classify(context.Background(), scanOf(SignToken(priv, 7, 1, window(testNow)))); r.Reason != ReasonKeyNotValid {
		t.Errorf("rotated-out key: %s %v", r.Reason, r.Err)
	}
	keys.err = errors.New("database is locked")
	r := c.Classify(context.Background(), scanOf(SignToken(priv, 7, 1, window(testNow))))
	if r.Reason != ReasonKeyLookup || !strings.Contains(r.Err.Error(), "database is locked") {
		t.Errorf("lookup failure: %s %v", r.Reason, r.Err)
	}
}

func TestTokenReplayAndDuplicate(t *testing.T) {
	c, clk, _ := newTest(t)
	tok := SignToken(priv, 7, 2770000000017, window(testNow))
	ctx := context.Background()
	if r := c.Classify(ctx, scanOf(tok)); r.Kind != KindSignedCard || r.Duplicate {
		t.Fatalf("first: %+v", r)
	}
	clk.t = clk.t.Add(500 * time.Millisecond)
	if r := c.Classify(ctx, scanOf(tok)); r.Kind != KindSignedCard || !r.Duplicate {
		t.Errorf("re-read within the duplicate window: kind %s dup %v", r.Kind, r.Duplicate)
	}
	clk.t = clk.t.Add(5 * time.Second)
	if r := c.Classify(ctx, scanOf(tok)); r.Kind != KindRejected || r.Reason != ReasonReplayed {
		t.Errorf("replay: kind %s reason %s", r.Kind, r.Reason)
	}
	// A different card in the same window is not a replay.
	if r := c.Classify(ctx, scanOf(SignToken(priv, 7, 2770000000024, window(testNow)))); r.Kind != KindSignedCard {
		t.Errorf("other card: %s %v", r.Kind, r.Err)
	}
}

func TestReplayMemoryBounded(t *testing.T) {
	cfg := testConfig()
	cfg.ReplayCapacity = 10
	clk := &clock{t: testNow}
	c := New(cfg, &memKeys{keys: map[uint16]Key{7: {Public: pub}}}, clk.now)
	for i := range 50 {
		if r := c.Classify(context.Background(), scanOf(SignToken(priv, 7, uint64(1000+i), window(testNow)))); r.Kind != KindSignedCard {
			t.Fatalf("card %d: %s %v", i, r.Kind, r.Err)
		}
	}
	if n := len(c.seen); n > 10 {
		t.Errorf("seen set grew to %d", n)
	}
	// The most recent tokens are still remembered.
	clk.t = clk.t.Add(2 * time.Second)
	if r := c.Classify(context.Background(), scanOf(SignToken(priv, 7, 1049, window(testNow)))); r.Reason != ReasonReplayed {
		t.Errorf("recent token forgotten: %s", r.Kind)
	}
}

func TestBase45Vectors(t *testing.T) { // RFC 9285 section 4.3
	for in, want := range map[string]string{"AB": "BB8", "Hello!!": "%69 VD92EX0", "base-45": "UJCLQE7W581", "ietf!": "QED8WEX0"} {
		if got := base45Encode([]byte(in)); got != want {
			t.Errorf("encode %q = %q want %q", in, got, want)
		}
		if got, err := base45Decode(want); err != nil || string(got) != in {
			t.Errorf("decode %q = %q, %v", want, got, err)
		}
	}
	for _, bad := range []string{"GGW", "A", "a00", "::"} { // 65535+, lone char, lower case, 2-char > 255
		if _, err := base45Decode(bad); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
}

func TestCheckDigit(t *testing.T) {
	for s, ok := range map[string]bool{"4601234567893": true, "4601234567890": false, "96385074": true, "036000291452": true, "12345678901231": true, "1": false, "12a4": false} {
		if gs1CheckDigitOK(s) != ok {
			t.Errorf("%s: want %v", s, ok)
		}
	}
}

func FuzzToken(f *testing.F) {
	f.Add(SignToken(priv, 7, 2770000000017, 29409120))
	f.Add("LC1:")
	f.Add("LC1:" + strings.Repeat("0", 120))
	f.Add("LC1:GGW")
	if s, err := SignCard(priv, 7, "0270000000015", 29409120); err == nil {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		// The card number keeps the stated digit count and is the id.
		num := tok.CardNumber(0)
		if n := tok.Digits(); (n != 0 && len(num) != n) || strings.TrimLeft(num, "0") != strings.TrimLeft(fmt.Sprint(tok.CardID), "0") {
			t.Fatalf("card number %q for id %d, %d digits", num, tok.CardID, tok.Digits())
		}
		// Anything that parses re-encodes to a token that parses the same.
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("re-parse: %+v %v", again, err)
		}
		if tok.VerifySignature(pub) && s != tok.String() {
			// Only the issuer's exact encoding can verify; a second
			// spelling of the same bytes would be a malleability hole.
			t.Fatalf("alternative spelling verified: %q", s)
		}
	})
}

func FuzzClassify(f *testing.F) {
	signed := SignToken(priv, 7, 1, window(testNow))
	for _, s := range []string{"4601234567893", "]d20104601234567893215ABC\x1d93XY1", "LC0:2770000000017", "CPN:x", signed, "]E0", "]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, _, _ := newTest(t)
		aim, sym := scanner.SplitAIM(raw)
		r := c.Classify(context.Background(), scanner.Scan{Raw: raw, AIM: aim, Symbology: sym})
		switch r.Kind {
		case KindLoyaltyCard, KindVirtualCard:
			if !gs1CheckDigitOK(r.Card) {
				t.Fatalf("card with a bad check digit accepted: %q", r.Card)
			}
		case KindSignedCard:
			if string(raw) == signed {
				return
			}
			t.Fatalf("fuzzer forged a token: %q", raw)
		case KindRejected:
			if r.Reason == "" || r.Err == nil {
				t.Fatalf("rejection without reason: %+v", r)
			}
		case KindProduct, KindCoupon, KindUnknown:
		default:
			t.Fatalf("kind %q", r.Kind)
		}
	})
}

// TestTokenCardLeadingZeros: the card id is an integer, so leading zeros
// travel as the signed digit count (or, for tokens without one, come back
// from the single configured loyalty length).
func TestTokenCardLeadingZeros(t *testing.T) {
	ctx := context.Background()
	w := window(testNow)
	signed := func(card string) string {
		t.Helper()
		s, err := SignCard(priv, 7, card, w)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("DigitCountKeepsZeros", func(t *testing.T) {
		c, _, _ := newTest(t)
		for _, card := range []string{"0270000000015", "0000000000017", "2770000000017", "0", "18446744073709551615"} {
			tok, err := ParseToken(signed(card))
			if err != nil || tok.Digits() != len(card) || tok.CardNumber(0) != card {
				t.Errorf("%s: token %+v, %v", card, tok, err)
			}
			r := c.Classify(ctx, scanOf("]Q1"+signed(card)))
			if r.Kind != KindSignedCard || r.Card != card {
				t.Errorf("%s: classified %s card %q (%v)", card, r.Kind, r.Card, r.Err)
			}
		}
	})
	t.Run("ZerosAreDistinctCards", func(t *testing.T) {
		// Same id, different digit count: two cards, not a replay.
		c, clk, _ := newTest(t)
		c.Classify(ctx, scanOf("]Q1"+signed("0123")))
		clk.t = clk.t.Add(2 * time.Second)
		if r := c.Classify(ctx, scanOf("]Q1"+signed("123"))); r.Kind != KindSignedCard || r.Card != "123" || r.Duplicate {
			t.Errorf("got %s %q dup=%v (%v)", r.Kind, r.Card, r.Duplicate, r.Err)
		}
		if r := c.Classify(ctx, scanOf("]Q1"+signed("0123"))); r.Reason != ReasonReplayed {
			t.Errorf("replay of 0123: got %s %s", r.Kind, r.Reason)
		}
	})
	t.Run("LegacyPaddedToLoyaltyLength", func(t *testing.T) {
		c, _, _ := newTest(t) // one loyalty length, 13
		if r := c.Classify(ctx, scanOf("]Q1"+SignToken(priv, 7, 270000000015, w))); r.Kind != KindSignedCard || r.Card != "0270000000015" {
			t.Errorf("got %s %q (%v)", r.Kind, r.Card, r.Err)
		}
		cfg := testConfig()
		cfg.LoyaltyLengths = []int{13, 16} // which one is unknowable: no padding
		c = New(cfg, &memKeys{keys: map[uint16]Key{7: {Public: pub}}}, func() time.Time { return testNow })
		if r := c.Classify(ctx, scanOf("]Q1"+SignToken(priv, 7, 270000000015, w))); r.Kind != KindSignedCard || r.Card != "270000000015" {
			t.Errorf("two lengths: got %s %q (%v)", r.Kind, r.Card, r.Err)
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		c, _, _ := newTest(t)
		for name, tok := range map[string]Token{
			"id longer than count": {KeyID: 7, CardID: 12345, Window: w, Flags: 4},
			"count over 20":        {KeyID: 7, CardID: 1, Window: w, Flags: 21},
			"reserved flag":        {KeyID: 7, CardID: 1, Window: w, Flags: 0x20 | 13},
		} {
			s := sign(priv, tok) // validly signed: the issuer's bug, rejected all the same
			if _, err := ParseToken(s); !errors.Is(err, ErrTokenMalformed) {
				t.Errorf("%s: parse %v", name, err)
			}
			if r := c.Classify(ctx, scanOf("]Q1"+s)); r.Reason != ReasonMalformed {
				t.Errorf("%s: classified %s %s", name, r.Kind, r.Reason)
			}
		}
		for _, card := range []string{"", "12a", "123456789012345678901", "18446744073709551616"} {
			if _, err := SignCard(priv, 7, card, w); err == nil {
				t.Errorf("SignCard(%q): no error", card)
			}
		}
	})
}

// The acceptance window's edges, to the nanosecond: from skew before the
// window starts until skew after it ends (end exclusive).
func TestTokenSkewBoundaries(t *testing.T) {
	w := window(testNow)
	start := time.Unix(int64(w)*60, 0)
	end := start.Add(time.Minute)
	skew := testConfig().ClockSkew
	for _, tc := range []struct {
		now    time.Time
		reason Reason
	}{
		{start.Add(-skew - time.Nanosecond), ReasonNotYetValid},
		{start.Add(-skew), ""},
		{end.Add(skew - time.Nanosecond), ""},
		{end.Add(skew), ReasonExpired},
	} {
		c, clk, _ := newTest(t)
		clk.t = tc.now
		r := c.Classify(context.Background(), scanOf(SignToken(priv, 7, 2770000000017, w)))
		if r.Reason != tc.reason || (tc.reason == "" && r.Kind != KindSignedCard) {
			t.Errorf("till clock %s: %s %s (%v)", tc.now.Sub(start), r.Kind, r.Reason, r.Err)
		}
	}
	// A validly signed window past any clock is refused, not wrapped around.
	c, _, _ := newTest(t)
	if r := c.Classify(context.Background(), scanOf(SignToken(priv, 7, 2770000000017, math.MaxUint32))); r.Reason != ReasonNotYetValid {
		t.Errorf("window MaxUint32: %s %s (%v)", r.Kind, r.Reason, r.Err)
	}
	cfg := testConfig()
	cfg.TokenWindow = time.Hour
	c = New(cfg, &memKeys{keys: map[uint16]Key{7: {Public: pub}}}, func() time.Time { return testNow })
	if r := c.Classify(context.Background(), scanOf(SignToken(priv, 7, 2770000000017, math.MaxUint32))); r.Reason != ReasonNotYetValid {
		t.Errorf("hour windows, MaxUint32: %s %s (%v)", r.Kind, r.Reason, r.Err)
	}
}

// Each tampered byte of a signed token is caught: by the parser (version,
// flags, Base45) or by the signature; never accepted.
func TestTokenEveryByteTampered(t *testing.T) {
	s, err := SignCard(priv, 7, "2770000000017", window(testNow))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := ParseToken(s)
	raw := append(tok.body()[len(TokenContext):], tok.Sig[:]...)
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		c, _, _ := newTest(t)
		r := c.Classify(context.Background(), scanOf(TokenPrefix+base45Encode(bad)))
		if r.Kind != KindRejected || (r.Reason != ReasonBadSignature && r.Reason != ReasonMalformed && r.Reason != ReasonUnknownKey) {
			t.Errorf("byte %d flipped: %s %s", i, r.Kind, r.Reason)
		}
	}
}
