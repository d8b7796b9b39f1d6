package shtrih

import (
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// Command text is WIN1251; text inside TLV (fiscal data) is CP866 (spec §4).

func encodeWith(e *charmap.Charmap, s string) []byte {
	out := make([]byte, 0, len(s))
	enc := e.NewEncoder()
	for _, r := range s {
		b, err := enc.Bytes([]byte(string(r)))
		if err != nil || len(b) != 1 {
			out = append(out, '?')
			continue
		}
		out = append(out, b[0])
	}
	return out
}

// Win1251 encodes s; characters the code page lacks become '?'.
func Win1251(s string) []byte { return encodeWith(charmap.Windows1251, s) }

// CP866 encodes s for TLV strings; characters the code page lacks become '?'.
func CP866(s string) []byte { return encodeWith(charmap.CodePage866, s) }

func decodeWith(d *encoding.Decoder, b []byte) string {
	s, err := d.Bytes(b)
	if err != nil {
		return string(b)
	}
	return string(s)
}

// FromWin1251 decodes device text, stopping at the first NUL.
func FromWin1251(b []byte) string { return decodeWith(charmap.Windows1251.NewDecoder(), trimNUL(b)) }

// FromCP866 decodes a TLV string.
func FromCP866(b []byte) string { return decodeWith(charmap.CodePage866.NewDecoder(), b) }

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
