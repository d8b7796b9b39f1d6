package classify

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
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
//	15     1     flags: bits 0-4 the card number's digit count (1-20),
//	             0 = not stated; bits 5-7 reserved, 0
//	16     64    Ed25519 signature over TokenContext || bytes 0..15
//
// Text form: TokenPrefix + Base45(80 bytes) = 124 characters, all in the QR
// alphanumeric set.
//
// The card id is an integer, so a card number with leading zeros ("0270…")
// would lose them; the digit count in the flags brings them back, and being
// signed it cannot be altered. Tokens that state no count (issuers before
// this field) are padded to the configured loyalty length (Token.CardNumber).
const (
	TokenVersion = 1
	TokenContext = "tillagent-loyalty-v1"
	TokenPrefix  = "LC1:"
	tokenBody    = 16
	tokenLen     = tokenBody + ed25519.SignatureSize

	// FlagDigitsMask selects the digit count in Token.Flags.
	FlagDigitsMask = 0x1f
	maxCardDigits  = 20 // math.MaxUint64 has 20 digits
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

// SignCard issues the text token for one card number (1-20 digits, leading
// zeros kept through the digit count) and window. Head office's issuer uses
// it; the till only verifies.
func SignCard(priv ed25519.PrivateKey, keyID uint16, card string, window uint32) (string, error) {
	if len(card) == 0 || len(card) > maxCardDigits || strings.Trim(card, "0123456789") != "" {
		return "", fmt.Errorf("sign token for card %q: want 1-%d digits", card, maxCardDigits)
	}
	id, err := strconv.ParseUint(card, 10, 64)
	if err != nil {
		return "", fmt.Errorf("sign token for card %q: %w", card, err)
	}
	return sign(priv, Token{KeyID: keyID, CardID: id, Window: window, Flags: byte(len(card))}), nil
}

// SignToken issues a token that states no digit count, as issuers did
// before the count was defined; SignCard is the one to use.
func SignToken(priv ed25519.PrivateKey, keyID uint16, cardID uint64, window uint32) string {
	return sign(priv, Token{KeyID: keyID, CardID: cardID, Window: window})
}

func sign(priv ed25519.PrivateKey, t Token) string {
	copy(t.Sig[:], ed25519.Sign(priv, t.body()))
	return t.String()
}

// Digits is the card number's digit count the token states, 0 if none.
func (t Token) Digits() int { return int(t.Flags & FlagDigitsMask) }

// CardNumber is the card number as printed: zero-padded to the stated digit
// count, or, when the token states none, to pad (the loyalty length when
// only one is configured; 0 pads nothing). ParseToken has checked that the
// id fits the stated count.
func (t Token) CardNumber(pad int) string {
	if n := t.Digits(); n != 0 {
		pad = n
	}
	s := strconv.FormatUint(t.CardID, 10)
	if len(s) < pad {
		s = strings.Repeat("0", pad-len(s)) + s
	}
	return s
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
	// Checked before the signature: an issuer bug is no forgery, and a
	// flag this till does not know could change what the token means.
	if t.Flags&^FlagDigitsMask != 0 {
		return Token{}, fmt.Errorf("%w: unknown flags %#02x", ErrTokenMalformed, t.Flags)
	}
	if n := t.Digits(); n > maxCardDigits || (n != 0 && len(strconv.FormatUint(t.CardID, 10)) > n) {
		return Token{}, fmt.Errorf("%w: card id %d does not fit %d digits", ErrTokenMalformed, t.CardID, n)
	}
	return t, nil
}

// VerifySignature checks the issuer's signature with pub.
func (t Token) VerifySignature(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, t.body(), t.Sig[:])
}
