package checkout

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestDumpQuotes writes a canonical dump of many seeded quotes and returns
// (every field, decimals as coefficient and exponent, explanations word for
// word, errors) to the file named by TILLAGENT_EQUIV_OUT. It is the
// behaviour-preservation check for performance work: dump before a change,
// dump after, and the two files must be byte-identical:
//
//	TILLAGENT_EQUIV_OUT=/tmp/before.txt go test -run TestDumpQuotes ./checkout/
//	… change …
//	TILLAGENT_EQUIV_OUT=/tmp/after.txt go test -run TestDumpQuotes ./checkout/
//	cmp /tmp/before.txt /tmp/after.txt
//
// Without the variable it dumps a few scenarios to io.Discard, so the dumper
// itself stays compiled and exercised.
func TestDumpQuotes(t *testing.T) {
	n := 30
	var w io.Writer = io.Discard
	if path := os.Getenv("TILLAGENT_EQUIV_OUT"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		bw := bufio.NewWriter(f)
		defer bw.Flush()
		w, n = bw, 3000
	}
	d := &dumper{w: w}
	bench := benchInput()
	d.quoteAndReturn("bench", bench, rand.New(rand.NewPCG(1, 1)))
	bench.Redeem = nil
	d.quoteAndReturn("bench-max", bench, rand.New(rand.NewPCG(1, 2)))
	for i := range n {
		rng := rand.New(rand.NewPCG(777, uint64(i)))
		in := randomInput(rng)
		mutateInput(rng, &in)
		name := fmt.Sprint("case ", i)
		r, err := d.quote(name+" none", in)
		if err != nil || r.Redemption == nil {
			continue
		}
		scale := in.Programs[0].PointRounding.Scale
		mx := r.Redemption.Max
		for k, req := range []Points{mx, {fromUnits(rng.Int64N(unitsOf(mx.d, scale)+1), scale)},
			{mx.d.Add(in.Programs[0].PointRounding.Unit())}, {decimal.New(rng.Int64N(1000), -3)}} {
			in.Redeem = &req
			d.quoteAndReturn(fmt.Sprint(name, " req", k), in, rng)
		}
	}
}

// mutateInput widens randomInput's coverage: card states and kinds, given
// line sums, store limits, zone names, an explicit spending card, fractional
// lots and sometimes an invalid input.
func mutateInput(rng *rand.Rand, in *Input) {
	c := &in.Cards[0]
	switch rng.IntN(12) {
	case 0:
		c.State = StateIssued
	case 1:
		c.State, c.BlockReason = StateBlocked, pick(rng, "", "lost")
	case 2:
		c.Kind = KindDiscount
	}
	p := &in.Programs[0]
	if rng.IntN(10) == 0 {
		p.Stores = []string{pick(rng, "s1", "s2")}
	}
	for i := range p.Accrual {
		if rng.IntN(8) == 0 {
			p.Accrual[i].Stores = []string{pick(rng, "s1", "s2")}
		}
		if rng.IntN(8) == 0 {
			p.Accrual[i].IncludeProducts = []string{fmt.Sprint("p", rng.IntN(10))}
		}
		if rng.IntN(8) == 0 {
			p.Accrual[i].ExcludeProducts = []string{fmt.Sprint("p", rng.IntN(10))}
		}
	}
	for i := range p.Promotions {
		pr := &p.Promotions[i]
		if rng.IntN(6) == 0 {
			pr.Stores = []string{pick(rng, "s1", "s2")}
		}
		if rng.IntN(4) == 0 {
			pr.ProductMultipliers = map[string]Factor{fmt.Sprint("p", rng.IntN(10)): {decimal.New(5+rng.Int64N(40), -1)}}
		}
		if rng.IntN(6) == 0 {
			pr.From, pr.To = MustLocalTime("2026-11-23T12:30"), LocalTime{}
		}
	}
	if rng.IntN(5) == 0 && p.MonthlyAccrualCap == nil {
		p.MonthlyAccrualCap = ptrPoints(Points{decimal.New(rng.Int64N(5000), -1)})
	}
	for i := range in.Check.Lines {
		l := &in.Check.Lines[i]
		if rng.IntN(6) == 0 {
			l.Sum = Kopecks(rng.Int64N(500000))
		}
		if rng.IntN(6) == 0 {
			l.Groups = append(l.Groups, pick(rng, "dairy", "bakery", "summer"))
		}
		if rng.IntN(10) == 0 {
			l.Price = MustMoney(fmt.Sprint(rng.IntN(1000)))
		}
	}
	for i := range c.Lots {
		if rng.IntN(4) == 0 {
			c.Lots[i].Remaining = Points{decimal.New(rng.Int64N(50000), -int32(rng.IntN(3)))}
		}
	}
	if rng.IntN(8) == 0 {
		in.Location, in.TimeZone = nil, pick(rng, "Europe/Moscow", "Asia/Vladivostok", "")
	}
	if rng.IntN(8) == 0 {
		in.RedeemCard = pick(rng, "C", "G", "X")
	}
	if rng.IntN(5) == 0 && c.Kind != KindReferral {
		in.Cards = append(in.Cards, Card{Code: "D", Kind: pick(rng, KindCombined, KindDiscount, KindBonus), State: StateActive, ProgramID: "p",
			PurchasesAllTime: randMoney(rng, 2000000), Lots: []Lot{lot("DL", "77", 10)}})
	}
	switch rng.IntN(40) {
	case 0:
		in.Check.Lines[0].Qty = Qty{}
	case 1:
		in.Check.Lines[0].No = 0
	case 2:
		in.Cards[0].ProgramID = "nope"
	case 3:
		p.PointValue = Money{}
	case 4:
		in.Now = time.Time{}
	}
}

type dumper struct{ w io.Writer }

func (d *dumper) quote(name string, in Input) (Result, error) {
	r, err := Quote(in)
	fmt.Fprintf(d.w, "== %s\n", name)
	if err != nil {
		fmt.Fprintf(d.w, "error: %v\n", err)
		return r, err
	}
	var sb strings.Builder
	dumpValue(&sb, reflect.ValueOf(r), "")
	io.WriteString(d.w, sb.String())
	return r, nil
}

// quoteAndReturn quotes in and, on success, returns the check in random
// pieces, dumping every result.
func (d *dumper) quoteAndReturn(name string, in Input, rng *rand.Rand) {
	r, err := d.quote(name, in)
	if err != nil || len(in.Cards) == 0 {
		return
	}
	var prev []ReturnLine
	left := map[int]int64{}
	var nos []int
	for _, l := range r.Lines {
		left[l.No] = unitsOf(l.Qty.d, 3)
		nos = append(nos, l.No)
	}
	for step := 0; len(left) > 0 && step < 6; step++ {
		var lines []ReturnLine
		for _, no := range nos {
			u, ok := left[no]
			if !ok || rng.IntN(2) == 0 {
				continue
			}
			take := 1 + rng.Int64N(u)
			lines = append(lines, ReturnLine{No: no, Qty: Qty{fromUnits(take, 3)}})
			if left[no] -= take; left[no] == 0 {
				delete(left, no)
			}
		}
		if len(lines) == 0 {
			continue
		}
		rr, err := Return(ReturnInput{Original: r, Lines: lines, Previous: prev, Cards: in.Cards, Programs: in.Programs,
			Now: in.Now.Add(time.Hour), Location: in.Location, TimeZone: in.TimeZone})
		fmt.Fprintf(d.w, "-- return %d\n", step)
		if err != nil {
			fmt.Fprintf(d.w, "error: %v\n", err)
			return
		}
		var sb strings.Builder
		dumpValue(&sb, reflect.ValueOf(rr), "")
		io.WriteString(d.w, sb.String())
		prev = append(prev, lines...)
	}
}

func dumpDecimal(sb *strings.Builder, d decimal.Decimal) {
	fmt.Fprintf(sb, "%se%d", d.Coefficient(), d.Exponent())
}

// dumpValue prints v canonically: decimals as coefficient e exponent (so a
// changed exponent shows even where String would hide it), times with zone.
func dumpValue(sb *strings.Builder, v reflect.Value, ind string) {
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case Money:
			dumpDecimal(sb, x.d)
			return
		case Points:
			dumpDecimal(sb, x.d)
			return
		case Percent:
			dumpDecimal(sb, x.d)
			return
		case Qty:
			dumpDecimal(sb, x.d)
			return
		case Factor:
			dumpDecimal(sb, x.d)
			return
		case decimal.Decimal:
			dumpDecimal(sb, x)
			return
		case time.Time:
			sb.WriteString(x.String())
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			sb.WriteString("nil")
			return
		}
		sb.WriteString("&")
		dumpValue(sb, v.Elem(), ind)
	case reflect.Struct:
		sb.WriteString("{\n")
		for i := range v.NumField() {
			sb.WriteString(ind + "  " + v.Type().Field(i).Name + ": ")
			dumpValue(sb, v.Field(i), ind+"  ")
			sb.WriteString("\n")
		}
		sb.WriteString(ind + "}")
	case reflect.Slice:
		if v.IsNil() {
			sb.WriteString("nil")
			return
		}
		fmt.Fprintf(sb, "[%d\n", v.Len())
		for i := range v.Len() {
			sb.WriteString(ind + "  ")
			dumpValue(sb, v.Index(i), ind+"  ")
			sb.WriteString("\n")
		}
		sb.WriteString(ind + "]")
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		sb.WriteString("map{\n")
		for _, k := range keys {
			fmt.Fprintf(sb, "%s  %v: ", ind, k)
			dumpValue(sb, v.MapIndex(k), ind+"  ")
			sb.WriteString("\n")
		}
		sb.WriteString(ind + "}")
	default:
		fmt.Fprintf(sb, "%#v", v.Interface())
	}
}
