package store

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// A till keeps every document it printed (returns and retries need them),
// and a document's JSON is mostly repeated keys and names: packed, a
// four-line sale's result, receipt and answer take a third of their
// 10 KB (docs/api.md, "What a till keeps"), so years of trade fit a till's
// disk. A packed value is packTag and raw DEFLATE; values written before
// packing are JSON, which never starts with packTag, and read as they are.
//
// Each column is packed alone: priming the receipt and answer with the
// result would save another third, but a writer primed with a dictionary
// cannot be reused, and setting up one (a megabyte of tables) three times
// a sale added 9 ms to BenchmarkSaleAPI's 30.
const packTag = 0x00

var packers = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.DefaultCompression) // errors only for a bad level
	return w
}}

// packDoc packs v for sale_docs.
func packDoc(v []byte) []byte {
	if len(v) == 0 {
		return []byte{} // the columns are NOT NULL, as before packing
	}
	var b bytes.Buffer
	b.WriteByte(packTag)
	w := packers.Get().(*flate.Writer)
	w.Reset(&b)
	w.Write(v) // a bytes.Buffer does not fail
	w.Close()
	packers.Put(w)
	return b.Bytes()
}

// unpackDoc is the inverse of packDoc; v not packed is returned as is.
func unpackDoc(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != packTag {
		return v, nil
	}
	r := flate.NewReader(bytes.NewReader(v[1:]))
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	return out, nil
}

// unpackDocColumns unpacks a document's result, receipt and answer.
func unpackDocColumns(d *Doc) (err error) {
	for _, c := range []struct {
		name string
		v    *[]byte
	}{{"result", &d.Result}, {"receipt", &d.Receipt}, {"answer", &d.Answer}} {
		if *c.v, err = unpackDoc(*c.v); err != nil {
			return fmt.Errorf("document %s: %s: %w", d.ID, c.name, err)
		}
	}
	return nil
}
