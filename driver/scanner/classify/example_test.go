package classify_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"tillagent/driver/scanner"
	"tillagent/driver/scanner/classify"
)

type oneKey struct{ pub ed25519.PublicKey }

func (k oneKey) CardKey(_ context.Context, id uint16) (classify.Key, error) {
	if id != 1 {
		return classify.Key{}, classify.ErrUnknownKey
	}
	return classify.Key{Public: k.pub}, nil
}

func Example() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cl := classify.New(classify.Config{
		LoyaltyPrefixes: []string{"26", "27", "28", "29"}, LoyaltyLengths: []int{13}, LoyaltyCheckDigit: true,
		CardQRPrefix: "LC0:", TokenWindow: time.Minute, ClockSkew: 90 * time.Second, DuplicateWindow: time.Second,
	}, oneKey{priv.Public().(ed25519.PublicKey)}, func() time.Time { return now })

	token, err := classify.SignCard(priv, 1, "2770000000017", uint32(now.Unix()/60))
	if err != nil {
		panic(err)
	}
	for _, raw := range []string{"]E02770000000017", "]Q1" + token, "]Q1" + token[:40], "]d20104601234567893215ABC\x1d93XY1"} {
		aim, sym := scanner.SplitAIM([]byte(raw))
		r := cl.Classify(context.Background(), scanner.Scan{Raw: []byte(raw), AIM: aim, Symbology: sym})
		fmt.Printf("%s card=%q code=%q reason=%q\n", r.Kind, r.Card, scanner.Printable([]byte(r.Code)), r.Reason)
	}
	// Output:
	// loyalty_card card="2770000000017" code="" reason=""
	// signed_card card="2770000000017" code="" reason=""
	// rejected card="" code="" reason="token_malformed"
	// product card="" code="0104601234567893215ABC<GS>93XY1" reason=""
}
