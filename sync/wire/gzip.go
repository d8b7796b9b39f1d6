package wire

import (
	"net/http"
	"strconv"
	"strings"
)

// TakesGzip reports whether an Accept-Encoding header takes gzip: in a
// request, the answer may come compressed; in an answer (RFC 7694), head
// office reads request bodies in gzip. "x-gzip" is gzip, a q of 0 refuses
// it, "*" takes it unless gzip is named.
func TakesGzip(h http.Header) bool {
	star := false
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			name = strings.ToLower(strings.TrimSpace(name))
			ok := qAbove0(params)
			switch name {
			case "gzip", "x-gzip":
				return ok
			case "*":
				star = ok
			}
		}
	}
	return star
}

// qAbove0 reports whether the parameters after a coding leave its weight
// above 0 (none given: 1).
func qAbove0(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
	}
	return true
}
