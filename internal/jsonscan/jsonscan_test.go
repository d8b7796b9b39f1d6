package jsonscan

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// skipsLikeJSON fails t unless, for a valid JSON text, Skip passes over
// exactly the one value encoding/json reads; it reports whether data was
// valid.
func skipsLikeJSON(t *testing.T, data []byte) bool {
	t.Helper()
	if !json.Valid(data) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	s := New(data)
	depth := bytes.Count(data, []byte("[")) + bytes.Count(data, []byte("{"))
	if !s.Skip() {
		if depth > maxDepth {
			return true
		}
		t.Fatalf("Skip refused valid JSON %.200q", data)
	}
	if s.Pos() != int(dec.InputOffset()) {
		t.Fatalf("Skip ended at %d, encoding/json at %d: %.200q", s.Pos(), dec.InputOffset(), data)
	}
	return true
}

// readsStringLikeJSON fails t if String takes lit (a quoted JSON string)
// but encoding/json reads it to other bytes, or refuses it.
func readsStringLikeJSON(t *testing.T, lit []byte) {
	t.Helper()
	s := New(lit)
	text, got, ok := s.String()
	if !ok {
		return
	}
	var want string
	if err := json.Unmarshal(got, &want); err != nil {
		t.Fatalf("String took %q, which encoding/json refuses: %v", got, err)
	}
	if string(text) != want {
		t.Fatalf("String read %q as %q, encoding/json as %q", lit, text, want)
	}
	if !bytes.HasPrefix(lit[bytes.IndexByte(lit, '"'):], got) {
		t.Fatalf("literal %q is not where String read it in %q", got, lit)
	}
}

// TestStringIsJSONs: every string String takes, encoding/json reads to
// the same bytes; escapes, control bytes and bad UTF-8 are declined.
func TestStringIsJSONs(t *testing.T) {
	for _, c := range []struct {
		lit  string
		take bool
	}{
		{`""`, true}, {`"abc"`, true}, {` "x"`, true}, {"\"\u2028\u2029\"", true}, {`"😀"`, true}, {"\"\x7f\"", true},
		{"\"\uFFFD\"", true}, {`"\""`, false}, {`"\\"`, false}, {`"\u0041"`, false}, {"\"\x00\"", false},
		{"\"\x1f\"", false}, {"\"\xff\"", false}, {"\"\xc0\x80\"", false}, {"\"\xed\xa0\x80\"", false},
		{"\"\xf4\x90\x80\x80\"", false}, {"\"\xe2\x80\"", false}, {`"abc`, false}, {`abc"`, false}, {``, false},
	} {
		s := New([]byte(c.lit))
		_, _, ok := s.String()
		if ok != c.take {
			t.Errorf("String(%q) took %v, want %v", c.lit, ok, c.take)
		}
		readsStringLikeJSON(t, []byte(c.lit))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := []byte{'"'}
		for n := r.IntN(8); n > 0; n-- {
			if r.IntN(3) == 0 {
				b = append(b, byte(r.IntN(256)))
			} else {
				b = append(b, "aé😀\u2028 "[r.IntN(10)])
			}
		}
		readsStringLikeJSON(t, append(b, '"'))
	}
}

func randValue(r *rand.Rand, depth int) string {
	ws := func() string { return []string{"", " ", "\n\t", "\r\n "}[r.IntN(4)] }
	switch k := r.IntN(9); {
	case k == 0 && depth < 6:
		var parts []string
		for n := r.IntN(4); n > 0; n-- {
			parts = append(parts, ws()+randValue(r, depth+1)+ws())
		}
		return "[" + strings.Join(parts, ",") + ws() + "]"
	case k == 1 && depth < 6:
		var parts []string
		for n := r.IntN(4); n > 0; n-- {
			key, _ := json.Marshal(randWord(r))
			parts = append(parts, ws()+string(key)+ws()+":"+ws()+randValue(r, depth+1)+ws())
		}
		return "{" + strings.Join(parts, ",") + ws() + "}"
	case k == 2:
		b, _ := json.Marshal(randWord(r))
		return string(b)
	case k == 3:
		return []string{`"\\"`, `"\""`, `"a\\\"b"`, `"\\\\\\"`, `"\u005c"`, `"\/"`, `"]}"`, `"\ud83d\ude00"`}[r.IntN(8)]
	default:
		return []string{"0", "-0", "1.5e-300", "123456789012345678901234567890", "true", "false", "null", "-1E+2"}[r.IntN(8)]
	}
}

func randWord(r *rand.Rand) string {
	return []string{"", "a", "cards", "\"", "\\", "}", "]", "\u2028", "ſ", "\x01"}[r.IntN(10)]
}

// TestSkipEndsWhereJSONDoes: Skip passes over exactly one value of any
// valid JSON, escapes, brackets in strings and white space included, and
// leaves the scanner at the bytes after it.
func TestSkipEndsWhereJSONDoes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n := 0
	for range 20000 {
		v := randValue(r, 0)
		if skipsLikeJSON(t, []byte(v)) {
			n++
		}
		// Followed by more: Skip stops at the end of the first value.
		more := []byte(v + " ,1")
		s := New(more)
		if json.Valid([]byte(v)) && (!s.Skip() || !s.Byte(',')) {
			t.Fatalf("Skip of %q did not stop before what follows", more)
		}
	}
	if n < 15000 {
		t.Fatalf("only %d of 20000 values were valid JSON: the generator is broken", n)
	}
}

// TestSkipDepth: nesting up to encoding/json's own bound is skipped,
// deeper is declined without exhausting the stack, and an unclosed value
// is declined.
func TestSkipDepth(t *testing.T) {
	for _, c := range []struct {
		data string
		ok   bool
	}{
		{strings.Repeat("[", 9000) + strings.Repeat("]", 9000), true},
		{strings.Repeat(`{"a":`, 9000) + "1" + strings.Repeat("}", 9000), true},
		{strings.Repeat("[", 200000) + strings.Repeat("]", 200000), false},
		{strings.Repeat("[", 200000), false},
		{`"abc`, false},
		{`"abc\"`, false},
		{`"abc\`, false},
		{`[1,`, false},
		{`{"a"}`, false},
		{`{"a":1,}`, false},
		{``, false},
	} {
		s := New([]byte(c.data))
		if got := s.Skip(); got != c.ok {
			t.Errorf("Skip(%.40q…, %d bytes) = %v, want %v", c.data, len(c.data), got, c.ok)
		}
	}
}

// TestObjectArrayShapes: the readers take JSON's shapes with white
// space anywhere and refuse what is not JSON.
func TestObjectArrayShapes(t *testing.T) {
	keys := func(data string) ([]string, bool) {
		s := New([]byte(data))
		var got []string
		ok := s.Object(func(k []byte) bool {
			got = append(got, string(k))
			return s.Skip()
		})
		return got, ok
	}
	for _, c := range []struct {
		data string
		keys []string
		ok   bool
	}{
		{`{}`, nil, true},
		{" {\n} ", nil, true},
		{` { "a" : 1 , "b" : [ ] } `, []string{"a", "b"}, true},
		{`{"a":1,}`, nil, false},
		{`{,}`, nil, false},
		{`{"a" 1}`, nil, false},
		{`{"a":1 "b":2}`, nil, false},
		{`{1:2}`, nil, false},
		{`{"a":1`, nil, false},
		{`{"a\"b":1}`, nil, false},
	} {
		got, ok := keys(c.data)
		if ok != c.ok || (ok && strings.Join(got, ",") != strings.Join(c.keys, ",")) {
			t.Errorf("Object(%q) = %q %v, want %q %v", c.data, got, ok, c.keys, c.ok)
		}
	}
	for _, c := range []struct {
		data string
		n    int
		ok   bool
	}{
		{`[]`, 0, true}, {" [ 1 , 2 ] ", 2, true}, {`[1,]`, 0, false}, {`[,]`, 0, false}, {`[1 2]`, 0, false}, {`[`, 0, false},
	} {
		s := New([]byte(c.data))
		n := 0
		ok := s.Array(func() bool { n++; return s.Skip() })
		if ok != c.ok || (ok && n != c.n) {
			t.Errorf("Array(%q) = %d %v, want %d %v", c.data, n, ok, c.n, c.ok)
		}
	}
	if s := New([]byte("\x00")); s.Byte(0) || s.Peek() != 0 {
		t.Error("a NUL byte reads as the end or as itself")
	}
}

// FuzzSkip: on any valid JSON, Skip ends exactly where encoding/json's
// value does; String never takes what encoding/json reads otherwise.
func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,"\"",{"b":null}]}`, `"a\\"`, `[[[]]]`, `"é\u2028"`, ` 1 `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		skipsLikeJSON(t, data)
		if i := bytes.IndexByte(data, '"'); i >= 0 {
			readsStringLikeJSON(t, data[i:])
		}
	})
}
