package checkout

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on. Quote and Return wrap them with the
// record they concern (check, line, card, program).
var (
	// ErrInvalidInput: the check, a card or a program is malformed.
	ErrInvalidInput = errors.New("invalid input")
	// ErrUnknownProgram: a card names a program not in Input.Programs.
	ErrUnknownProgram = errors.New("unknown program")
	// ErrCannotRedeem: points were requested but no presented card can
	// spend (blocked, issued, discount-only, referral, or not presented).
	ErrCannotRedeem = errors.New("card cannot redeem")
	// ErrRedeemNotAllowed: the requested amount breaks a redemption limit;
	// the error is a *RedeemError naming it.
	ErrRedeemNotAllowed = errors.New("redemption not allowed")
	// ErrReturnExceedsSale: more of a line is returned than was sold.
	ErrReturnExceedsSale = errors.New("return exceeds sale")
)

// RedeemError explains a refused redemption request: what was asked, the
// maximum, and the limit code (Limit* constants) that refused it.
type RedeemError struct {
	Card      string
	Requested Points
	Max       Points
	Limit     string
}

func (e *RedeemError) Error() string {
	return fmt.Sprintf("redeem %s points on card %s: allowed at most %s (limit %s)",
		e.Requested, e.Card, e.Max, e.Limit)
}

// Unwrap lets errors.Is(err, ErrRedeemNotAllowed) match.
func (e *RedeemError) Unwrap() error { return ErrRedeemNotAllowed }

// ErrTooManyCards: more than one customer card (bonus, discount or
// combined) or more than one referral card is in effect on the check; the
// error is a *CardsError naming the cards.
var ErrTooManyCards = errors.New("too many cards on one check")

// ErrOutOfRange: an amount is beyond what the engine accepts (price,
// quantity, check total, point value) or a computed amount would not fit
// the integer kopecks and point steps it is converted to.
var ErrOutOfRange = errors.New("amount out of range")

// Stable codes of a CardsError.
const (
	// CardsTooManyCustomer: two or more customer cards in effect.
	CardsTooManyCustomer = "cards.too_many_customer"
	// CardsTooManyReferral: two or more referral cards in effect.
	CardsTooManyReferral = "cards.too_many_referral"
)

// CardsError refuses a check that carries more cards than one sale may use:
// at most one customer card and at most one referral card. Cards that are
// blocked or whose program does not run in the store are not counted (they
// do nothing). The quote is refused rather than priced with one of the cards
// so the cashier asks the customer which card to keep instead of silently
// dropping one; the till shows Error() and lists Cards to remove.
type CardsError struct {
	// Code is CardsTooManyCustomer or CardsTooManyReferral.
	Code string
	// Cards are the codes of the cards in effect of that role, in input order.
	Cards []string
}

func (e *CardsError) Error() string {
	role := "customer card (bonus, discount or combined)"
	if e.Code == CardsTooManyReferral {
		role = "referral card"
	}
	return fmt.Sprintf("%s: a check takes at most one %s, presented %d: %s (remove all but one)",
		e.Code, role, len(e.Cards), strings.Join(e.Cards, ", "))
}

// Unwrap lets errors.Is match ErrTooManyCards and ErrInvalidInput.
func (e *CardsError) Unwrap() []error { return []error{ErrTooManyCards, ErrInvalidInput} }
