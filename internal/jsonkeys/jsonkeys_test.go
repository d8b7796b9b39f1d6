package jsonkeys

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	type body struct {
		ID    string `json:"id"`
		Cards []any  `json:"cards"`
	}
	for _, c := range []struct {
		data string
		v    any
		want string // "" for no error
	}{
		{`{"id":"a","cards":[{"x":1},{"x":2}]}`, &body{}, ""},
		{`{"id":"a","id":"b"}`, &body{}, `field "id" given twice`},
		{`{"cards":[{"x":1},{"x":1,"y":[{"z":1,"z":2}]}]}`, &body{}, `field "cards[1].y[0].z" given twice`},
		{`{"ID":"a"}`, &body{}, `field "ID": names are case-sensitive, want "id"`},
		{`{"other":1}`, &body{}, `unknown field "other"`},
		// Without a struct, only keys given twice.
		{`{"ID":"a","other":{"k":1,"k":2}}`, nil, `field "other.k" given twice`},
		{`{"ID":"a","other":1}`, nil, ""},
		// Not JSON: left to the decoder.
		{`{"id":`, &body{}, ""},
	} {
		err := Check([]byte(c.data), c.v)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want no error", c.data, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.data, err, c.want)
		}
	}
}
