// Package checkout is the loyalty engine of the till: a pure function from a
// check, the presented cards with their state, the programs' rules, the store
// and the current time to a priced result (discounts, points spent and
// earned, and an explanation naming the rule behind every point and kopeck).
//
// The engine does no I/O, reads no clock and keeps no globals: the store
// (internal/store) loads the inputs from the SQLite replica and records the
// result in its journal. Quote prices a sale; Return reverses a sale fully or
// in part.
//
// Money is roubles with kopecks, Points are loyalty points; both are
// shopspring/decimal values in small named types, never floats. Each rounding
// is stated where it is applied:
//
//   - line sums and percent discounts: half up to the kopeck;
//   - accrued points: per program (Rounding), default down to whole points,
//     applied once per card per check, then allocated over the lines;
//   - the money value of spent points: down to the kopeck;
//   - the points that pay a whole check (all_or_nothing_mode "check"): up
//     to the point step, the fewest whose value covers the check;
//   - allocations (redemption over lines, accrual over lines, refunds): by
//     largest remainder, so the parts always sum exactly to the whole, never
//     below zero and never onto excluded (tobacco) lines.
//
// A check takes at most one customer card and one referral card in effect
// (more is a *CardsError); a referral card earns only beside a customer
// card. Prices, quantities and the check sum are bounded (MaxPrice, MaxQty,
// MaxCheckTotal) and every conversion to int64 kopecks or point steps checks
// its range (ErrOutOfRange), so no amount wraps.
//
// docs/rules.md describes every rule with a worked example; docs/check.md the
// JSON formats.
package checkout
