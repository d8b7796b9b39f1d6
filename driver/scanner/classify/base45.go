package classify

import (
	"errors"
	"strings"
)

// Base45 (RFC 9285): every character is in the QR alphanumeric set, so an
// 80-byte token fits a small QR code in alphanumeric mode.
const b45Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

var errBase45 = errors.New("invalid base45")

func base45Encode(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b)/2*3 + 2)
	for i := 0; i+1 < len(b); i += 2 {
		n := int(b[i])<<8 | int(b[i+1])
		sb.WriteByte(b45Alphabet[n%45])
		sb.WriteByte(b45Alphabet[n/45%45])
		sb.WriteByte(b45Alphabet[n/2025])
	}
	if len(b)%2 == 1 {
		n := int(b[len(b)-1])
		sb.WriteByte(b45Alphabet[n%45])
		sb.WriteByte(b45Alphabet[n/45])
	}
	return sb.String()
}

func b45Value(c byte) int {
	return strings.IndexByte(b45Alphabet, c)
}

func base45Decode(s string) ([]byte, error) {
	if len(s)%3 == 1 {
		return nil, errBase45
	}
	out := make([]byte, 0, len(s)/3*2+1)
	for i := 0; i < len(s); i += 3 {
		var v [3]int
		k := min(3, len(s)-i)
		for j := 0; j < k; j++ {
			if v[j] = b45Value(s[i+j]); v[j] < 0 {
				return nil, errBase45
			}
		}
		if k == 3 {
			n := v[0] + v[1]*45 + v[2]*2025
			if n > 0xFFFF {
				return nil, errBase45
			}
			out = append(out, byte(n>>8), byte(n))
		} else {
			n := v[0] + v[1]*45
			if n > 0xFF {
				return nil, errBase45
			}
			out = append(out, byte(n))
		}
	}
	return out, nil
}
