package checkout

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// This file is the engine's public model: the inputs the store hands to
// Quote and Return, and what they give back. The JSON forms are public
// (tillctl quote, the journal), so fields are only ever added, never renamed
// or removed. docs/check.md documents the JSON; docs/rules.md the rules.

// ---------------------------------------------------------------- inputs --

// Input is everything Quote needs. The engine does no I/O: the store fills
// product attributes on the lines, loads the presented cards with their lots
// and history, and the programs those cards belong to.
type Input struct {
	// Check is the basket being priced.
	Check Check `json:"check"`
	// Cards presented on this check: usually one customer card (bonus,
	// discount or combined), optionally one referral (agent) card beside it.
	Cards []Card `json:"cards,omitempty"`
	// Programs referenced by Cards[i].ProgramID. Extra programs are ignored.
	Programs []Program `json:"programs,omitempty"`
	// Now is the moment of the sale. Lot activity, expiry and promotion
	// windows are judged against it; the engine never reads a clock.
	Now time.Time `json:"now"`
	// Location is the store's time zone: promotion windows and "this
	// month" are store-local. Nil means TimeZone, then UTC.
	Location *time.Location `json:"-"`
	// TimeZone is the IANA name of the store's zone ("Europe/Moscow"), used
	// when Location is nil (JSON inputs).
	TimeZone string `json:"time_zone,omitempty"`
	// Redeem is the number of points the cashier asks to spend; nil means
	// none (the result still reports the maximum). It may be anything from
	// the program's minimum up to the reported maximum.
	Redeem *Points `json:"redeem,omitempty"`
	// RedeemCard is the code of the card to spend from. Empty means the
	// first presented card that can spend (bonus or combined).
	RedeemCard string `json:"redeem_card,omitempty"`
}

// Check is a basket: the lines, in receipt order.
type Check struct {
	// ID identifies the check in the journal (unique per till).
	ID string `json:"id"`
	// StoreID is the store the till belongs to; rules and promotions may be
	// limited to stores.
	StoreID string `json:"store_id"`
	// Lines in receipt order.
	Lines []Line `json:"lines"`
}

// Line is one receipt line. The caller (till UI, tillctl quote) supplies No,
// ProductID, Qty, Price and optionally Sum; the store fills the product
// attributes from the replica (Name, Groups, Segment, VAT, Tobacco,
// LastPurchasePrice) before calling the engine.
type Line struct {
	// No is the 1-based line number, unique within the check. Allocations,
	// explanations and returns refer to lines by No.
	No int `json:"no"`
	// ProductID is the catalog id (article) of the product.
	ProductID string `json:"product_id"`
	// Qty is pieces or weight; must be positive.
	Qty Qty `json:"qty"`
	// Price is the unit price in roubles after any manual price change.
	Price Money `json:"price"`
	// Sum is the line sum. Zero (omitted) means Price × Qty rounded half up
	// to the kopeck; a caller that already has the till's sum (weighed goods)
	// passes it.
	Sum Money `json:"sum,omitzero"`

	// Name of the product (store fills; informational).
	Name string `json:"name,omitempty"`
	// Groups the product belongs to, including all ancestor groups, so a rule
	// on "dairy" matches "dairy/milk" products (store fills).
	Groups []string `json:"groups,omitempty"`
	// Segment is the redemption segment of the product ("regular",
	// "promo", …), matched against RedemptionRules.Segments (store fills).
	Segment string `json:"segment,omitempty"`
	// VAT code of the product ("vat20", "vat10", "none"); passed through to
	// the receipt, not used by the rules (store fills).
	VAT string `json:"vat,omitempty"`
	// Tobacco marks tobacco and nicotine products: under 15-FZ art. 16 they
	// get no discount and cannot be paid with points (store fills).
	Tobacco bool `json:"tobacco,omitempty"`
	// LastPurchasePrice is the unit cost of the last purchase from the
	// supplier, for the minimum-markup redemption limit; nil = unknown
	// (store fills).
	LastPurchasePrice *Money `json:"last_purchase_price,omitempty"`
	// Unit the product is sold in ("pcs", "kg", …; store fills; empty =
	// pcs). Not used by the rules; the receipt's tag 2108 comes from it.
	Unit string `json:"unit,omitempty"`
}

// Units a product may be sold in. Only pieces are whole.
var units = map[string]bool{"pcs": true, "g": true, "kg": true, "ml": true, "l": true, "m": true, "m2": true, "m3": true}

// ValidUnit reports whether u is a known unit ("" is pieces).
func ValidUnit(u string) bool { return u == "" || units[u] }

// UnitOrDefault is u, or "pcs" when empty.
func UnitOrDefault(u string) string {
	if u == "" {
		return "pcs"
	}
	return u
}

// CardKind is what a card does.
type CardKind string

const (
	// KindBonus earns and spends points.
	KindBonus CardKind = "bonus"
	// KindDiscount gives a percent discount, no points.
	KindDiscount CardKind = "discount"
	// KindCombined gives the discount and earns/spends points.
	KindCombined CardKind = "combined"
	// KindReferral is an agent's card: presented beside the customer's
	// card, it earns the agent points by the program's agent rules. It never
	// spends at the till.
	KindReferral CardKind = "referral"
)

// CardState is the card's life-cycle state.
type CardState string

const (
	// StateIssued cards earn but cannot spend (not yet registered).
	StateIssued CardState = "issued"
	// StateActive cards earn and spend.
	StateActive CardState = "active"
	// StateBlocked cards neither earn nor spend nor get a discount;
	// BlockReason says why.
	StateBlocked CardState = "blocked"
)

// Card is a presented card with the state the store loaded for it.
type Card struct {
	// Code is the card number as scanned.
	Code string `json:"code"`
	// Kind: bonus, discount, combined or referral.
	Kind CardKind `json:"kind"`
	// State: issued, active or blocked.
	State CardState `json:"state"`
	// BlockReason is the human reason for a blocked card ("lost", "fraud").
	BlockReason string `json:"block_reason,omitempty"`
	// ProgramID names the program in Input.Programs.
	ProgramID string `json:"program_id"`
	// Lots are the card's point lots with anything remaining, including
	// not-yet-active ones. Expired lots may be included; they are ignored.
	// For Return, also load the lots named in the original redemption's
	// LotsConsumed even if fully spent, so restored points keep their expiry.
	Lots []Lot `json:"lots,omitempty"`
	// Debt is a negative balance left by earlier returns (≥ 0). It is
	// subtracted from the spendable balance.
	Debt Points `json:"debt,omitzero"`
	// PurchasesAllTime is the sum of all earlier checks with this card,
	// excluding the current one (the engine adds it where the rule says
	// "including the current check").
	PurchasesAllTime Money `json:"purchases_all_time,omitzero"`
	// PurchasesPrevMonth is the sum of checks with this card in the
	// previous calendar month, store-local, relative to Now.
	PurchasesPrevMonth Money `json:"purchases_prev_month,omitzero"`
	// AccruedThisMonth and RedeemedThisMonth are what this card earned and
	// spent so far in Now's calendar month (store-local), for monthly caps.
	AccruedThisMonth  Points `json:"accrued_this_month,omitzero"`
	RedeemedThisMonth Points `json:"redeemed_this_month,omitzero"`
	// RedeemCaps are limits on spending from this card that come from
	// outside its program (the till's offline caps from head office). Each
	// is evaluated after the program's limits, like them: the smallest
	// limit wins, and the minimum and all-or-nothing rules apply to it.
	RedeemCaps []LimitValue `json:"redeem_caps,omitempty"`
}

// Lot is one accrual on a card: it becomes spendable at ActiveFrom and
// lapses at ExpiresAt. Spending consumes the soonest-expiring lots first.
type Lot struct {
	// ID is the store's id for the lot.
	ID string `json:"id"`
	// Points originally credited.
	Points Points `json:"points"`
	// Remaining points not yet spent.
	Remaining Points `json:"remaining"`
	// AccruedAt is when the lot was credited.
	AccruedAt time.Time `json:"accrued_at"`
	// ActiveFrom is when the lot becomes spendable.
	ActiveFrom time.Time `json:"active_from"`
	// ExpiresAt is when the lot lapses (exclusive); nil = never.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// CheckID is the check that accrued the lot ("" for manual credits);
	// returns debit a check's own lots first.
	CheckID string `json:"check_id,omitempty"`
}

// Program is one loyalty program: what a point is worth and the rules for
// earning, spending and discounts.
type Program struct {
	// ID is the program's stable id.
	ID string `json:"id"`
	// Name for display.
	Name string `json:"name,omitempty"`
	// PointValue is what one point is worth in roubles when spent ("1.00",
	// "0.10"). Must be positive.
	PointValue Money `json:"point_value"`
	// PointRounding is how accrued and reversed points are rounded. Zero
	// value: whole points, rounded down.
	PointRounding Rounding `json:"point_rounding"`
	// Stores the program runs in; empty = all stores.
	Stores []string `json:"stores,omitempty"`
	// Accrual rules. Each rule that applies adds its points; see AccrualRule.
	Accrual []AccrualRule `json:"accrual,omitempty"`
	// Promotions multiply line accruals of customer cards in a date window.
	Promotions []Promotion `json:"promotions,omitempty"`
	// Redemption limits (spending points at the till).
	Redemption RedemptionRules `json:"redemption"`
	// Discount rules for discount and combined cards; nil = no discount.
	Discount *DiscountRules `json:"discount,omitempty"`
	// TobaccoEarns lets tobacco lines count toward accrual. Default off.
	TobaccoEarns bool `json:"tobacco_earns,omitempty"`
	// EarnOnRedeemedPart: true accrues on the whole line sums after
	// discount; false (default) only on the part paid with money, i.e. after
	// the redemption is taken off.
	EarnOnRedeemedPart bool `json:"earn_on_redeemed_part,omitempty"`
	// ActivationDays delays spending of new points by N calendar days.
	ActivationDays int `json:"activation_days,omitempty"`
	// ExpiryDays is the life of a lot counted from its activation; 0 = the
	// points never expire.
	ExpiryDays int `json:"expiry_days,omitempty"`
	// MonthlyAccrualCap limits the points one customer card may earn in a
	// calendar month (store-local); nil = no cap.
	MonthlyAccrualCap *Points `json:"monthly_accrual_cap,omitempty"`
	// NegativeBalance says what happens when a return reverses points that
	// were already spent.
	NegativeBalance NegativeBalancePolicy `json:"negative_balance"`
}

// AccrualKind is how an accrual rule computes points.
type AccrualKind string

const (
	// AccrualPercent: Percent (or the tier percent) of the eligible line
	// sums, as points: 1 % of 1000.00 roubles is 10 points whatever a point
	// is worth.
	AccrualPercent AccrualKind = "percent"
	// AccrualFixed: a fixed number of Points per check, when the check
	// qualifies (for agents: regardless of the check sum).
	AccrualFixed AccrualKind = "fixed_per_check"
	// AccrualPerUnit: Points per unit of quantity of each eligible line.
	AccrualPerUnit AccrualKind = "per_unit"
)

// Audience is who an accrual rule pays.
type Audience string

const (
	// ForCustomer rules pay bonus and combined cards (the default).
	ForCustomer Audience = "customer"
	// ForAgent rules pay referral (agent) cards.
	ForAgent Audience = "agent"
)

// AccrualRule is one way to earn points. Lines are eligible when they pass the
// product filters (and are not tobacco, unless the program says tobacco
// earns); the whole rule applies only when the check passes MinCheckSum and
// Stores.
type AccrualRule struct {
	// ID names the rule in explanations; unique within the program.
	ID string `json:"id"`
	// Kind: percent, fixed_per_check or per_unit.
	Kind AccrualKind `json:"kind"`
	// For: customer (default) or agent.
	For Audience `json:"for,omitempty"`
	// Percent for kind percent when Tiers is nil.
	Percent Percent `json:"percent,omitzero"`
	// Tiers, for kind percent, choose the percent from a threshold table.
	Tiers *TierTable `json:"tiers,omitempty"`
	// Points per check (fixed_per_check) or per unit (per_unit).
	Points Points `json:"points,omitzero"`
	// MinCheckSum: the check sum after discounts must be at least this;
	// zero = no minimum.
	MinCheckSum Money `json:"min_check_sum,omitzero"`
	// IncludeGroups / IncludeProducts: if either is non-empty, only lines
	// in one of these groups or of one of these products are eligible.
	IncludeGroups   []string `json:"include_groups,omitempty"`
	IncludeProducts []string `json:"include_products,omitempty"`
	// ExcludeGroups / ExcludeProducts: lines matching are never eligible.
	ExcludeGroups   []string `json:"exclude_groups,omitempty"`
	ExcludeProducts []string `json:"exclude_products,omitempty"`
	// Stores where the rule applies; empty = all.
	Stores []string `json:"stores,omitempty"`
}

// TierBasis is the amount a tier table is looked up by.
type TierBasis string

const (
	// BasisCheck: the current check's sum after discounts.
	BasisCheck TierBasis = "check_sum"
	// BasisPrevMonth: the card's purchases in the previous calendar month.
	BasisPrevMonth TierBasis = "prev_month"
	// BasisAllTime: the card's all-time purchases including this check.
	BasisAllTime TierBasis = "all_time"
)

// TierTable picks a percent by thresholds: the level with the largest From
// not above the basis wins; below every From the percent is 0.
type TierTable struct {
	Basis  TierBasis   `json:"basis"`
	Levels []TierLevel `json:"levels"`
}

// TierLevel is one row of a TierTable.
type TierLevel struct {
	From    Money   `json:"from"`
	Percent Percent `json:"percent"`
}

// PromoScope is what a promotion covers.
type PromoScope string

const (
	// ScopeAll: every line (a period-wide promotion).
	ScopeAll PromoScope = "all"
	// ScopeGroups: lines in Groups.
	ScopeGroups PromoScope = "groups"
	// ScopeProducts: lines of Products or of ProductMultipliers' keys.
	ScopeProducts PromoScope = "products"
)

// Promotion multiplies the line accruals of customer cards during a window in
// store-local time. Among period-wide (all) promotions the largest multiplier
// wins; among group and product promotions the largest wins; the two winners
// multiply each other.
type Promotion struct {
	// ID names the promotion in explanations.
	ID string `json:"id"`
	// Name for display.
	Name string `json:"name,omitempty"`
	// From (inclusive) and To (exclusive), store-local wall-clock times.
	From LocalTime `json:"from"`
	To   LocalTime `json:"to"`
	// Scope: all, groups or products.
	Scope PromoScope `json:"scope"`
	// Groups covered (scope groups).
	Groups []string `json:"groups,omitempty"`
	// Products covered with Multiplier (scope products).
	Products []string `json:"products,omitempty"`
	// Multiplier for covered lines, e.g. "2".
	Multiplier Factor `json:"multiplier"`
	// ProductMultipliers give individual products their own multiplier
	// (scope products); a product listed here is covered.
	ProductMultipliers map[string]Factor `json:"product_multipliers,omitempty"`
	// Stores where it runs; empty = all.
	Stores []string `json:"stores,omitempty"`
}

// RedemptionRules limit spending points. All limits combine; the smallest
// wins, and the result names it.
type RedemptionRules struct {
	// MaxCheckPercent is the largest share of the check sum (after
	// discounts) that points may pay; nil = 100 %.
	MaxCheckPercent *Percent `json:"max_check_percent,omitempty"`
	// Segments whose lines may be paid with points; empty = all.
	Segments []string `json:"segments,omitempty"`
	// MinMarkupPercent: on each line the money part must stay at least
	// LastPurchasePrice × Qty × (1 + markup); nil = no markup limit.
	MinMarkupPercent *Percent `json:"min_markup_percent,omitempty"`
	// MinRedeem: below this nothing can be spent; zero = no minimum.
	MinRedeem Points `json:"min_redeem,omitzero"`
	// AllOrNothing: only the whole spendable balance may be spent at once;
	// if the other limits allow less than that, nothing can be spent. It is
	// AllOrNothingMode "balance"; kept with this meaning for compatibility.
	AllOrNothing bool `json:"all_or_nothing,omitempty"`
	// AllOrNothingMode chooses what "all" is: "balance" (the whole
	// spendable balance, as AllOrNothing) or "check" (points may only pay
	// for the whole purchase: the check is paid fully with points or not at
	// all). Empty: "balance" when AllOrNothing is set, otherwise off. A
	// non-empty mode applies even when AllOrNothing is false.
	AllOrNothingMode AllOrNothingMode `json:"all_or_nothing_mode,omitempty"`
	// MonthlyCap limits the points one card spends per calendar month
	// (store-local); nil = no cap.
	MonthlyCap *Points `json:"monthly_cap,omitempty"`
}

// AllOrNothingMode is what an all-or-nothing redemption must spend.
type AllOrNothingMode string

const (
	// AllOrNothingBalance: spend the whole spendable balance or nothing.
	AllOrNothingBalance AllOrNothingMode = "balance"
	// AllOrNothingCheck: points pay the whole check (sum after discounts,
	// nothing left to pay with money) or nothing.
	AllOrNothingCheck AllOrNothingMode = "check"
)

// allOrNothing is the mode in effect: the explicit mode, else "balance"
// when the legacy flag is set, else "" (off).
func (r *RedemptionRules) allOrNothing() AllOrNothingMode {
	if r.AllOrNothingMode != "" {
		return r.AllOrNothingMode
	}
	if r.AllOrNothing {
		return AllOrNothingBalance
	}
	return ""
}

// DiscountMode is how a discount card's percent is found.
type DiscountMode string

const (
	// DiscountCumulative: a percent by the card's cumulative purchases.
	DiscountCumulative DiscountMode = "cumulative"
	// DiscountCategory: fixed percents per product group.
	DiscountCategory DiscountMode = "category"
)

// DiscountRules are the discount card rules of a program.
type DiscountRules struct {
	// ID names the rule in explanations.
	ID string `json:"id"`
	// Mode: cumulative or category.
	Mode DiscountMode `json:"mode"`
	// Levels for cumulative mode, looked up by the card's
	// PurchasesAllTime before this check (largest From not above it).
	Levels []TierLevel `json:"levels,omitempty"`
	// Categories for category mode; a line in several gets the largest.
	Categories []CategoryDiscount `json:"categories,omitempty"`
}

// CategoryDiscount is a fixed percent for one product group.
type CategoryDiscount struct {
	Group   string  `json:"group"`
	Percent Percent `json:"percent"`
}

// NegativeMode is the program's answer to "the return reverses points the
// customer already spent".
type NegativeMode string

const (
	// NegativeForbid (default): the balance stops at zero; the rest is
	// written off (reported as WrittenOff).
	NegativeForbid NegativeMode = "forbid"
	// NegativeAllow: the balance may go negative without limit (Debt).
	NegativeAllow NegativeMode = "allow"
	// NegativeLimit: the balance may go down to -Limit; the rest is
	// written off.
	NegativeLimit NegativeMode = "limit"
	// NegativeDeductRefund: the balance stops at zero and the money value of
	// the rest is withheld from the refund (rounded up to the kopeck).
	NegativeDeductRefund NegativeMode = "deduct_refund"
)

// NegativeBalancePolicy is a program's negative-balance rule.
type NegativeBalancePolicy struct {
	Mode  NegativeMode `json:"mode,omitempty"`
	Limit Points       `json:"limit,omitzero"`
}

// LocalTime is a store-local wall-clock time without a zone, written
// "2026-11-23T10:00:00", "2026-11-23T10:00" or "2026-11-23" (midnight).
type LocalTime struct {
	// wall holds the fields in UTC; In re-reads them in the store's zone.
	wall time.Time
}

var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

// ParseLocalTime parses one of the LocalTime layouts.
func ParseLocalTime(s string) (LocalTime, error) {
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return LocalTime{t}, nil
		}
	}
	return LocalTime{}, fmt.Errorf("parse local time %q: want YYYY-MM-DD[THH:MM[:SS]]", s)
}

// MustLocalTime is ParseLocalTime for tests; it panics on error.
func MustLocalTime(s string) LocalTime {
	t, err := ParseLocalTime(s)
	if err != nil {
		panic(err)
	}
	return t
}

// In returns the instant this wall-clock time denotes in loc.
func (l LocalTime) In(loc *time.Location) time.Time {
	w := l.wall
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
}

// IsZero reports an unset time.
func (l LocalTime) IsZero() bool { return l.wall.IsZero() }

func (l LocalTime) String() string { return l.wall.Format("2006-01-02T15:04:05") }

func (l LocalTime) MarshalJSON() ([]byte, error) { return json.Marshal(l.String()) }

func (l *LocalTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("local time: %w", err)
	}
	v, err := ParseLocalTime(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// --------------------------------------------------------------- outputs --

// Result is the priced check: discounts, redemption and accruals, each
// amount traced to the rule that produced it.
type Result struct {
	// CheckID and StoreID echo the input.
	CheckID string `json:"check_id"`
	StoreID string `json:"store_id"`
	// At echoes Input.Now.
	At time.Time `json:"at"`
	// Lines, in input order.
	Lines []LineResult `json:"lines"`
	// Sum of line sums before discounts.
	Sum Money `json:"sum"`
	// Discount total (sum of line discounts).
	Discount Money `json:"discount"`
	// Redeemed is the money value of the points spent (sum over lines).
	Redeemed Money `json:"redeemed"`
	// Payable is what the customer pays with money: Sum − Discount − Redeemed.
	Payable Money `json:"payable"`
	// Redemption describes the spending, if a card can spend.
	Redemption *Redemption `json:"redemption,omitempty"`
	// Cards: one entry per presented card, in input order.
	Cards []CardResult `json:"cards"`
	// Explain lists every point and kopeck with the rule that produced it.
	Explain []Explanation `json:"explain"`
}

// LineResult is one line of the priced check.
type LineResult struct {
	No        int    `json:"no"`
	ProductID string `json:"product_id"`
	Qty       Qty    `json:"qty"`
	// Sum before discount (input Sum or Price × Qty half up).
	Sum Money `json:"sum"`
	// Discount on the line and the rule that gave it ("" when none).
	Discount     Money  `json:"discount"`
	DiscountRule string `json:"discount_rule,omitempty"`
	// RedeemCap is the most points may pay on this line (money), after the
	// per-line limits (tobacco, segment, markup); RedeemCapReason names the
	// limit that cut it below Sum − Discount.
	RedeemCap       Money  `json:"redeem_cap"`
	RedeemCapReason string `json:"redeem_cap_reason,omitempty"`
	// Redeemed is the money paid with points on this line; RedeemedPoints
	// the points behind it. Both sum exactly to the redemption totals.
	Redeemed       Money  `json:"redeemed"`
	RedeemedPoints Points `json:"redeemed_points"`
	// Payable is Sum − Discount − Redeemed, paid with money.
	Payable Money `json:"payable"`
	// Accruals are the points each card earned on this line.
	Accruals []LineAccrual `json:"accruals,omitempty"`
}

// LineAccrual is the points one card earned on one line.
type LineAccrual struct {
	Card   string `json:"card"`
	Points Points `json:"points"`
}

// Redemption is the spending applied to the check.
type Redemption struct {
	// Card spent from.
	Card string `json:"card"`
	// Requested points (0 when the cashier asked for none).
	Requested Points `json:"requested"`
	// Max is the most that could be spent; MaxLimit the limit code that
	// bound it (see the Limit* constants).
	Max      Points `json:"max"`
	MaxLimit string `json:"max_limit"`
	// Limits lists every limit evaluated, in points.
	Limits []LimitValue `json:"limits"`
	// Points spent and their money value (Points × PointValue, rounded down
	// to the kopeck, so never more than the points are worth).
	Points Points `json:"points"`
	Money  Money  `json:"money"`
	// LotsConsumed, soonest-expiring first.
	LotsConsumed []LotUse `json:"lots_consumed,omitempty"`
}

// LimitValue is one evaluated redemption limit.
type LimitValue struct {
	Code   string `json:"code"`
	Points Points `json:"points"`
}

// LotUse is points taken from or given back to one lot.
type LotUse struct {
	LotID  string `json:"lot_id"`
	Points Points `json:"points"`
}

// NewLot is a lot the store must create for an accrual.
type NewLot struct {
	Points     Points     `json:"points"`
	AccruedAt  time.Time  `json:"accrued_at"`
	ActiveFrom time.Time  `json:"active_from"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// CardResult is what happened on one presented card.
type CardResult struct {
	Code      string    `json:"code"`
	Kind      CardKind  `json:"kind"`
	State     CardState `json:"state"`
	ProgramID string    `json:"program_id"`
	// CanEarn / CanSpend / CanDiscount summarise the card's state and kind;
	// Reason is a stable code (Reason* constants) when something is denied,
	// with the block reason appended for blocked cards.
	CanEarn     bool   `json:"can_earn"`
	CanSpend    bool   `json:"can_spend"`
	CanDiscount bool   `json:"can_discount"`
	Reason      string `json:"reason,omitempty"`
	// DiscountPercent the card gave (cumulative mode), if any.
	DiscountPercent *Percent `json:"discount_percent,omitempty"`
	// Balance is unexpired remaining points minus debt; Spendable counts
	// only active lots (and never below zero). Before and after this check.
	BalanceBefore   Points `json:"balance_before"`
	SpendableBefore Points `json:"spendable_before"`
	// Accrued points (after rounding and caps) and the lot to create.
	Accrued Points   `json:"accrued"`
	NewLots []NewLot `json:"new_lots,omitempty"`
	// Redeemed points from this card.
	Redeemed       Points `json:"redeemed"`
	BalanceAfter   Points `json:"balance_after"`
	SpendableAfter Points `json:"spendable_after"`
}

// Explanation ties an amount to the rule that produced it. Code is a stable
// machine code (Code* constants); Rule is the configured rule's id
// ("program/rule"); Detail is a human sentence with the numbers.
type Explanation struct {
	Code   string  `json:"code"`
	Rule   string  `json:"rule,omitempty"`
	Card   string  `json:"card,omitempty"`
	Line   int     `json:"line,omitempty"`
	Points *Points `json:"points,omitempty"`
	Money  *Money  `json:"money,omitempty"`
	Detail string  `json:"detail"`
}

// ---------------------------------------------------------------- returns --

// ReturnInput is a full or partial return against an original check.
type ReturnInput struct {
	// Original is the Result recorded when the check was sold.
	Original Result `json:"original"`
	// Lines returned now: line number and quantity.
	Lines []ReturnLine `json:"lines"`
	// Previous are quantities already returned from this check in earlier
	// returns, summed per line; they make repeated partial returns add up
	// exactly to a full one.
	Previous []ReturnLine `json:"previous,omitempty"`
	// Cards in their current state (lots, debt), as in Input.
	Cards []Card `json:"cards,omitempty"`
	// Programs of those cards.
	Programs []Program `json:"programs,omitempty"`
	// Now, Location, TimeZone: as in Input.
	Now      time.Time      `json:"now"`
	Location *time.Location `json:"-"`
	TimeZone string         `json:"time_zone,omitempty"`
}

// ReturnLine is a quantity of one original line.
type ReturnLine struct {
	No  int `json:"no"`
	Qty Qty `json:"qty"`
}

// ReturnResult is what the return gives back and takes back.
type ReturnResult struct {
	CheckID string    `json:"check_id"`
	At      time.Time `json:"at"`
	// Lines returned now.
	Lines []ReturnLineResult `json:"lines"`
	// Refund is the money to give back (sum of line refunds minus Withheld).
	Refund Money `json:"refund"`
	// Withheld is money kept back under the deduct_refund policy.
	Withheld Money `json:"withheld"`
	// Cards affected.
	Cards []ReturnCardResult `json:"cards"`
	// Explain, as in Result.
	Explain []Explanation `json:"explain"`
}

// ReturnLineResult is the proportional share of one returned line.
type ReturnLineResult struct {
	No  int `json:"no"`
	Qty Qty `json:"qty"`
	// Money refunded for the line (its share of the money paid).
	Refund Money `json:"refund"`
	// RestoredPoints: spent points given back for this line.
	RestoredPoints Points `json:"restored_points"`
	// Reversed: accrued points taken back, per card.
	Reversed []LineAccrual `json:"reversed,omitempty"`
}

// ReturnCardResult is the effect of a return on one card.
type ReturnCardResult struct {
	Code string `json:"code"`
	// Restored spent points and the lots they go back to (the original
	// lots, latest-expiring first, each keeping its expiry).
	Restored     Points   `json:"restored"`
	LotsRestored []LotUse `json:"lots_restored,omitempty"`
	// Reversed accrual, debited from the check's own lots first, then the
	// soonest-expiring others.
	Reversed    Points   `json:"reversed"`
	LotsDebited []LotUse `json:"lots_debited,omitempty"`
	// DebtAdded is the part of Reversed that made the balance negative;
	// WrittenOff the part the policy let go.
	DebtAdded  Points `json:"debt_added"`
	WrittenOff Points `json:"written_off"`
	// Withheld money (deduct_refund policy) for this card.
	Withheld      Money  `json:"withheld"`
	BalanceBefore Points `json:"balance_before"`
	BalanceAfter  Points `json:"balance_after"`
}

// ------------------------------------------------------------ stable codes --

// Limit codes name the redemption limit that bound the maximum.
const (
	LimitBalance      = "balance"        // spendable balance of active lots
	LimitCheckPercent = "check_percent"  // max percent of the check
	LimitLines        = "lines"          // sum of per-line caps (segment, markup, tobacco)
	LimitMonthlyCap   = "monthly_cap"    // monthly redemption cap
	LimitMinRedeem    = "min_redeem"     // below the minimum redemption → 0
	LimitAllOrNothing = "all_or_nothing" // cannot spend the whole balance → 0
	LimitWholeCheck   = "whole_check"    // points cannot pay the whole check → 0 (mode "check")
	LimitCardState    = "card_state"     // the card cannot spend
	LimitCheckPoints  = "check_points"   // MaxCheckPoints, the most one check may move (only listed when it binds)
)

// Per-line redemption cap reasons.
const (
	LineExcludedTobacco = "tobacco" // 15-FZ art. 16
	LineExcludedSegment = "segment" // segment not eligible
	LineMarkup          = "markup"  // minimum markup over last purchase price
	LineMarkupUnknown   = "markup_unknown_cost"
)

// Reason codes on CardResult.
const (
	ReasonBlocked        = "card.blocked"
	ReasonIssued         = "card.issued_cannot_spend"
	ReasonKindNoPoints   = "card.kind_no_points"
	ReasonKindNoSpend    = "card.kind_cannot_spend"
	ReasonKindNoDiscount = "card.kind_no_discount"
	ReasonProgramStore   = "program.not_in_store"
	// ReasonAgentNoCustomer: a referral card earns only beside a customer
	// card in effect (not blocked, program in the store).
	ReasonAgentNoCustomer = "card.referral_without_customer"
)

// Explanation codes.
const (
	CodeLineSum            = "line.sum"
	CodeDiscountCumulative = "discount.cumulative"
	CodeDiscountCategory   = "discount.category"
	CodeAccrualPercent     = "accrual.percent"
	CodeAccrualFixed       = "accrual.fixed_per_check"
	CodeAccrualPerUnit     = "accrual.per_unit"
	CodePromotion          = "accrual.promotion"
	CodeAccrualRounding    = "accrual.rounding"
	CodeAccrualMonthlyCap  = "accrual.monthly_cap"
	CodeLotCreated         = "lot.created"
	CodeRedeemMax          = "redeem.max"
	CodeRedeemApplied      = "redeem.applied"
	CodeRedeemLine         = "redeem.line"
	CodeRedeemLot          = "redeem.lot"
	CodeCardDenied         = "card.denied"
	CodeReturnRefund       = "return.refund"
	CodeReturnRestore      = "return.restore"     // per line
	CodeReturnRestoreLot   = "return.restore_lot" // per lot
	CodeReturnReverse      = "return.reverse"     // per line and card
	CodeReturnDebitLot     = "return.debit_lot"   // per lot
	CodeReturnDebt         = "return.debt"
	CodeReturnWriteOff     = "return.write_off"
	CodeReturnWithheld     = "return.withheld"
)
