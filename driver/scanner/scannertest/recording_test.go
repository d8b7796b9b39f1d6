package scannertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.hex")
	body := "# title here\n# want: \"a\\x1db\"\n# another comment\n00 00 04 00 00 00 00 00\nR\nwait 400ms\n02 0D\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Title != "title here" || len(r.Want) != 1 || r.Want[0] != "a\x1db" || len(r.Steps) != 4 || r.Steps[2].Wait != 400*time.Millisecond {
		t.Errorf("%+v", r)
	}
	if rs := r.Reports(); len(rs) != 3 || len(rs[1]) != 8 || rs[2][0] != 2 {
		t.Errorf("reports %v", rs)
	}
	for _, bad := range []string{"zz\n", "wait forever\n", "# want: unquoted\n"} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := Load(p); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
