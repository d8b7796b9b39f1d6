package headoffice

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"tillagent/sync/wire"
)

// Store links are often slow (ADSL, a 4G modem), and a feed page or a
// till's push batch is JSON that gzip makes 6–15 times smaller. Head
// office compresses an answer over minGzip bytes for a client that
// accepts gzip (Go's HTTP client, the till's, asks for it and unpacks it
// itself), and takes request bodies in gzip. Every answer says so
// (Accept-Encoding: gzip, RFC 7694): the till compresses its pushes only
// once head office has, so a till upgraded before its head office never
// sends what it cannot read.

// minGzip is the smallest answer worth compressing (a kilobyte).
const minGzip = 1024

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // level 1: ~400 MB/s, most of the gain
	return w
}}

// advertiseGzip says on every answer that head office takes gzip bodies.
func advertiseGzip(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Accept-Encoding", "gzip")
		h.ServeHTTP(w, r)
	})
}

// acceptsGzip reports whether the request's Accept-Encoding takes gzip.
func acceptsGzip(r *http.Request) bool { return wire.TakesGzip(r.Header) }

// writeJSON writes a 200 answer of body, compressed when it is worth it
// and the client takes it.
func writeJSON(w http.ResponseWriter, r *http.Request, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	if len(body) < minGzip || !acceptsGzip(r) {
		_, err := w.Write(body)
		return err
	}
	h.Set("Content-Encoding", "gzip")
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(w)
	if _, err := zw.Write(body); err != nil {
		return err
	}
	return zw.Close()
}

// unsupportedEncoding is a request body in a coding head office does not
// take (415).
type unsupportedEncoding string

func (e unsupportedEncoding) Error() string {
	return fmt.Sprintf("Content-Encoding %q: head office takes gzip or none", string(e))
}

// readBody reads a request's body, gzip or plain, at most limit bytes as
// sent and once unpacked (a small gzip body may unpack to gigabytes): over
// it, an *http.MaxBytesError.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return io.ReadAll(body)
	case "gzip", "x-gzip":
		packed, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(packed))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(zr, limit+1))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		if int64(len(data)) > limit {
			return nil, &http.MaxBytesError{Limit: limit}
		}
		return data, nil
	default:
		return nil, unsupportedEncoding(enc)
	}
}
