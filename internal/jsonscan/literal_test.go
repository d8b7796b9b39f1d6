package jsonscan

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"testing"
)

// jsonInteger is JSON's grammar of a number without fraction or exponent.
var jsonInteger = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// literalLikeJSON fails t if Integer or Bool, reading the first element
// of the array "[" + data, takes other than encoding/json would read
// there: the value alone must be the JSON it was read as, what follows it
// must end a JSON value, and when the whole array is JSON encoding/json
// must read the same first element. It reports what they took.
func literalLikeJSON(t *testing.T, data []byte) (integer, boolean bool) {
	t.Helper()
	doc := append([]byte("["), data...)
	var want []any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	valid := dec.Decode(&want) == nil && len(want) > 0
	after := func(s *Scanner) {
		t.Helper()
		if rest := doc[s.Pos():]; len(rest) > 0 && !bytes.ContainsAny(rest[:1], " \t\r\n,]}") {
			t.Fatalf("%q: read up to %d, where a value cannot end", doc, s.Pos())
		}
	}

	s := New(doc)
	s.Byte('[')
	if lit, ok := s.Integer(); ok {
		integer = true
		var alone any
		d := json.NewDecoder(bytes.NewReader(lit))
		d.UseNumber()
		if d.Decode(&alone) != nil || alone != any(json.Number(lit)) || !jsonInteger.Match(lit) {
			t.Fatalf("Integer read %q from %q, which is not that integer to encoding/json (%v)", lit, doc, alone)
		}
		after(s)
		if valid && want[0] != any(json.Number(lit)) {
			t.Fatalf("Integer read %q from %q; encoding/json %v", lit, doc, want[0])
		}
	}
	s = New(doc)
	s.Byte('[')
	if v, ok := s.Bool(); ok {
		boolean = true
		after(s)
		if valid && want[0] != v {
			t.Fatalf("Bool read %v from %q; encoding/json %v", v, doc, want[0])
		}
	}
	return integer, boolean
}

// TestIntegerAndBool: integers and true/false are read as encoding/json
// reads them; fractions, exponents, leading zeros, signs JSON does not
// have and words that only start like a literal are declined.
func TestIntegerAndBool(t *testing.T) {
	for _, c := range []struct {
		data             string
		integer, boolean bool
	}{
		{"0]", true, false}, {"-0]", true, false}, {"7]", true, false}, {" 123 ,1]", true, false},
		{"-9223372036854775808]", true, false}, {"123456789012345678901234567890]", true, false},
		{"\n\t\r 42\n]", true, false},
		{"01]", false, false}, {"-]", false, false}, {"+1]", false, false}, {"1.0]", false, false},
		{"1e3]", false, false}, {"1E3]", false, false}, {"-01]", false, false}, {"1x]", false, false},
		{".5]", false, false}, {"--1]", false, false}, {`"1"]`, false, false}, {"]", false, false},
		{"", false, false}, {"1", true, false}, {"\f1]", false, false},
		{"true]", false, true}, {"false,1]", false, true}, {" true ]", false, true},
		{"truex]", false, false}, {"tru]", false, false}, {"True]", false, false}, {"null]", false, false},
		{"false1]", false, false}, {"t", false, false},
	} {
		integer, boolean := literalLikeJSON(t, []byte(c.data))
		if integer != c.integer || boolean != c.boolean {
			t.Errorf("%q: Integer took %v, Bool %v; want %v, %v", c.data, integer, boolean, c.integer, c.boolean)
		}
	}
	// At the very end of the input, as the last value of a document.
	for _, c := range []struct {
		data string
		ok   bool
	}{{"5", true}, {"-", false}, {"true", true}, {"fals", false}} {
		s := New([]byte(c.data))
		_, i := s.Integer()
		s = New([]byte(c.data))
		_, b := s.Bool()
		if (i || b) != c.ok {
			t.Errorf("%q alone: Integer %v, Bool %v, want %v", c.data, i, b, c.ok)
		}
	}
}

// TestIntegerRandom: random runs of number-like bytes; every integer
// JSON has is read, and nothing else.
func TestIntegerRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	took := 0
	for range 20000 {
		var b []byte
		for n := 1 + r.IntN(6); n > 0; n-- {
			b = append(b, "-0123456789.eE+ "[r.IntN(16)])
		}
		b = append(b, "],x"[r.IntN(3)])
		integer, _ := literalLikeJSON(t, b)
		if integer {
			took++
		}
		// Completeness: a JSON integer followed by ']' is always read.
		trimmed := bytes.TrimRight(bytes.TrimLeft(b, " "), " ],x")
		if b[len(b)-1] == ']' && jsonInteger.Match(trimmed) && bytes.Count(b, []byte(" ")) == 0 && !integer {
			t.Fatalf("Integer declined %q", b)
		}
	}
	if took < 1000 {
		t.Fatalf("only %d of 20000 were read: the generator is broken", took)
	}
}

// FuzzLiteral: whatever Integer or Bool takes, encoding/json reads the same.
func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"0]", "-12,", "1.5]", "true]", "falsey]", "01]", " 9 ]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		literalLikeJSON(t, data)
	})
}
