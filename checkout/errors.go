package checkout

import (
	"errors"
	"fmt"
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
