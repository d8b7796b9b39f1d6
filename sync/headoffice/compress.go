package headoffice

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
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

// gzipMember is b compressed as one gzip member.
func gzipMember(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var out bytes.Buffer
	out.Grow(len(b)/4 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&out)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(out.Bytes()), nil
}

// replyPage writes feed page f, whose replica starts with the cards and
// lots of cached page p, to a till that takes gzip: p's packed members
// (pageCache.pack) between members made of the rest of f's encoding. A
// gzip stream may be several members one after another (RFC 1952, 2.2),
// read as their contents joined: Go's reader, the till's, reads them so.
// Everything is made before the status goes out, as reply does.
func (s *Server) replyPage(w http.ResponseWriter, r *http.Request, f *wire.Feed, p *cachedPage) {
	pk, err := s.pages.pack(p)
	if err != nil {
		s.reply(w, r, f, nil) // encoded whole, failing as the page did, said there
		return
	}
	buf := replyBuffers.Get().(*[]byte)
	body, cardsAt, lotsAt, err := f.AppendJSONGaps((*buf)[:0], len(p.cards), len(p.lots))
	defer func() { putReplyBuffer(buf, body) }()
	if err != nil {
		s.log.Error("encode reply", "method", r.Method, "path", r.URL.Path, "err", err)
		httpError(w, http.StatusInternalServerError, "encode reply: "+err.Error())
		return
	}
	body = append(body, '\n')
	var parts [][]byte
	from := 0
	cut := func(at int, member []byte) {
		if member == nil || err != nil {
			return
		}
		var head []byte
		if head, err = gzipMember(body[from:at]); err == nil {
			parts, from = append(parts, head, member), at
		}
	}
	cut(cardsAt, pk.cards)
	cut(lotsAt, pk.lots)
	var tail []byte
	if err == nil {
		tail, err = gzipMember(body[from:])
	}
	if err != nil {
		s.log.Error("compress reply", "method", r.Method, "path", r.URL.Path, "err", err)
		httpError(w, http.StatusInternalServerError, "compress reply: "+err.Error())
		return
	}
	parts = append(parts, tail)
	n := 0
	for _, b := range parts {
		n += len(b)
	}
	s.pages.packs.Add(1)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Encoding", "gzip")
	h.Set("Content-Length", strconv.Itoa(n))
	for _, b := range parts {
		if _, err := w.Write(b); err != nil {
			s.log.Warn("write reply", "err", err)
			return
		}
	}
}
