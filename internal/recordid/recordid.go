// Package recordid is the syntax of the ids that name replica records (a
// card, a lot, a program, a store, a till…): shared by the replica store
// and the configuration, which must not pull the store in.
package recordid

// Valid reports whether id may name a replica record: a letter or digit,
// then up to 63 letters, digits or "_.:/-". It reads as
// ^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$, by hand: a feed page checks 30,000
// ids (store's TestValidIDIsTheRegexp, FuzzValidID).
func Valid(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == ':' || c == '/' || c == '-'):
		default:
			return false
		}
	}
	return true
}
