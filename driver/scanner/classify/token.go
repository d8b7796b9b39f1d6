package classify

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Signed rotating virtual-card token, scheme B of the reference: the issuer
// signs (card, time window) with Ed25519 and the phone app shows the token of
// the current window. Tills hold only public keys, so a stolen till cannot
// mint cards.
//
//	offset size  field
//	0      1     version = 1
//	1      2     key id, big-endian (selects the issuer public key)
//	3      8     card id, big-endian (the card number as an integer)
//	11     4     window = unix_seconds / window_length, big-endian
//	15     1     flags, reserved, 0
//	16     64    Ed25519 signature over TokenContext || bytes 0..15
//
// Text form: TokenPrefix + Base45(80 bytes) = 124 characters, all in the QR
// alphanumeric set.
const (
	TokenVersion = 1
	TokenContext = "tillagent-loyalty-v1"
	TokenPrefix  = "LC1:"
	tokenBody    = 16
	tokenLen     = tokenBody + ed25519.SignatureSize
)

// Token is a parsed, not yet verified, virtual-card token.
type Token struct {
	KeyID  uint16
	CardID uint64
	Window uint32
	Flags  byte
	Sig    [ed25519.SignatureSize]byte
}

// ErrTokenMalformed wraps every parse failure.
var ErrTokenMalformed = errors.New("malformed virtual card token")

func (t Token) body() []byte {
	b := make([]byte, 0, len(TokenContext)+tokenBody)
	b = append(b, TokenContext...)
	b = append(b, TokenVersion)
	b = binary.BigEndian.AppendUint16(b, t.KeyID)
	b = binary.BigEndian.AppendUint64(b, t.CardID)
	b = binary.BigEndian.AppendUint32(b, t.Window)
	return append(b, t.Flags)
}

// SignToken issues the text token for one card and window. Head office's
// issuer uses it; the till only verifies.
func SignToken(priv ed25519.PrivateKey, keyID uint16, cardID uint64, window uint32) string {
	t := Token{KeyID: keyID, CardID: cardID, Window: window}
	copy(t.Sig[:], ed25519.Sign(priv, t.body()))
	return t.String()
}

// String is the text form, TokenPrefix included.
func (t Token) String() string {
	raw := t.body()[len(TokenContext):]
	raw = append(raw, t.Sig[:]...)
	return TokenPrefix + base45Encode(raw)
}

// ParseToken parses the text form (TokenPrefix included).
func ParseToken(s string) (Token, error) {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: no %s prefix", ErrTokenMalformed, TokenPrefix)
	}
	raw, err := base45Decode(rest)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	if len(raw) != tokenLen {
		return Token{}, fmt.Errorf("%w: %d bytes, want %d", ErrTokenMalformed, len(raw), tokenLen)
	}
	if raw[0] != TokenVersion {
		return Token{}, fmt.Errorf("%w: version %d", ErrTokenMalformed, raw[0])
	}
	t := Token{
		KeyID:  binary.BigEndian.Uint16(raw[1:3]),
		CardID: binary.BigEndian.Uint64(raw[3:11]),
		Window: binary.BigEndian.Uint32(raw[11:15]),
		Flags:  raw[15],
	}
	copy(t.Sig[:], raw[tokenBody:])
	return t, nil
}

// VerifySignature checks the issuer's signature with pub.
func (t Token) VerifySignature(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, t.body(), t.Sig[:])
}
