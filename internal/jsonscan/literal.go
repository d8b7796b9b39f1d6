package jsonscan

// ends reports whether the byte at i may follow a number or a literal:
// the end, white space or a delimiter, as encoding/json's scanner takes
// after a value. Anything else ("truex", "1.5", "01") is not the value
// read so far.
func (s *Scanner) ends(i int) bool {
	if i == len(s.b) {
		return true
	}
	switch s.b[i] {
	case ' ', '\t', '\n', '\r', ',', '}', ']':
		return true
	}
	return false
}

// Bool reads true or false.
func (s *Scanner) Bool() (v, ok bool) {
	s.ws()
	for _, lit := range [...]string{"false", "true"} {
		if end := s.i + len(lit); end <= len(s.b) && string(s.b[s.i:end]) == lit && s.ends(end) {
			s.i = end
			return lit == "true", true
		}
	}
	return false, false
}

// Integer reads a number written as an integer, -?(0|[1-9][0-9]*), and
// returns its literal for strconv to parse as encoding/json parses it
// into an integer field. A fraction or exponent ("1.0", "1e3") it
// declines: encoding/json refuses those for an integer field.
func (s *Scanner) Integer() (literal []byte, ok bool) {
	s.ws()
	i := s.i
	if i < len(s.b) && s.b[i] == '-' {
		i++
	}
	switch {
	case i == len(s.b):
		return nil, false
	case s.b[i] == '0':
		i++
	case '1' <= s.b[i] && s.b[i] <= '9':
		for i < len(s.b) && '0' <= s.b[i] && s.b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if !s.ends(i) {
		return nil, false
	}
	literal, s.i = s.b[s.i:i], i
	return literal, true
}

// Keys tells a key met twice in one object: bit i stands for the object's
// i-th field.
type Keys uint32

// First reports whether field bit is met the first time, and marks it met.
func (k *Keys) First(bit int) bool {
	if *k&(1<<bit) != 0 {
		return false
	}
	*k |= 1 << bit
	return true
}

// StringAs reads a string and hands its literal, quotes and all, to u's
// UnmarshalJSON, as encoding/json does for a field of u's type (a time, a
// decimal): what it accepts is read, what it refuses is declined.
func (s *Scanner) StringAs(u interface{ UnmarshalJSON([]byte) error }) bool {
	_, lit, ok := s.String()
	return ok && u.UnmarshalJSON(lit) == nil
}

// Text reads a string into to.
func (s *Scanner) Text(to *string) bool {
	v, _, ok := s.String()
	*to = string(v)
	return ok
}
