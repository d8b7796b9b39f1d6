package client

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPushCodingByAdvertisement: the till compresses a push only when
// head office's last answer takes gzip: "gzip;q=0" and "identity" do not,
// "x-gzip" and "*" do; and a 400 to a compressed push from a head office
// whose answer still says it takes gzip (a real refusal, not a rollback)
// is not sent again as it is.
func TestPushCodingByAdvertisement(t *testing.T) {
	ctx := context.Background()
	st := tillStore(t)
	var codings []string
	advert, refuse := "", false
	ho := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codings = append(codings, r.Header.Get("Content-Encoding"))
		if advert != "" {
			w.Header().Set("Accept-Encoding", advert)
		}
		if refuse && r.Header.Get("Content-Encoding") != "" {
			http.Error(w, `{"error": "decode journal batch: bad entry"}`, http.StatusBadRequest)
			return
		}
		answerApplied(t, w, r)
	}))
	defer ho.Close()
	c, err := New(Options{URL: ho.URL, TillID: "S001-T01", Secret: "s", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		advert string
		refuse bool
		want   string
	}{
		{"gzip;q=0", false, ""},     // learns: not gzip
		{"identity", false, ""},     // still not
		{"x-gzip", false, ""},       // learns: gzip
		{"*", false, "gzip"},        // x-gzip was taken; "*" keeps it
		{"gzip", true, "gzip"},      // a real 400 from a build that takes gzip: once
		{"gzip", false, "gzip"},     // and it goes on compressed
		{"GZIP;Q=0", false, "gzip"}, // learns: not gzip
		{"gzip", false, ""},
	} {
		advert, refuse, codings = step.advert, step.refuse, nil
		appendSale(t, st, 5)
		err := c.push(ctx, true)
		if got := strings.Join(codings, ","); got != step.want {
			t.Errorf("push %d (answers say %q): Content-Encodings %q, want %q (err %v)", i, step.advert, got, step.want, err)
		}
		if step.refuse && err == nil {
			t.Errorf("push %d: a 400 answered, no error", i)
		}
	}
}

// readBodyForTest reads a request body, gunzipping it when it says gzip.
func readBodyForTest(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	}
	return io.ReadAll(rd)
}
