// Package jsonscan reads, without reflection, the plain JSON this project's
// own encoders write (store.Replica.AppendJSON, a till's journal batch):
// objects, arrays, strings without escapes, true and false, integers. Anything else it declines rather than decodes,
// and the caller falls back to encoding/json, whose reading is the
// reference: a reader built on this one must give what encoding/json gives
// for every input it accepts.
package jsonscan

import "unicode/utf8"

// maxDepth bounds Skip's nesting as encoding/json bounds its own (10,000):
// a page of '[' must not exhaust the stack.
const maxDepth = 10000

// Scanner reads b from the start. Every method reports false when the input
// is not what it reads; the scanner is then of no further use.
type Scanner struct {
	b []byte
	i int
}

// New scans b.
func New(b []byte) *Scanner { return &Scanner{b: b} }

// Pos is the offset of the next byte to read.
func (s *Scanner) Pos() int { return s.i }

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Peek is the next byte after white space, 0 at the end.
func (s *Scanner) Peek() byte {
	s.ws()
	if s.i == len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// Byte reads c after white space.
func (s *Scanner) Byte(c byte) bool {
	if s.Peek() != c || c == 0 {
		return false
	}
	s.i++
	return true
}

// String reads a string with no escape and no control character, in valid
// UTF-8, which encoding/json decodes to its bytes as they are. It returns
// the bytes between the quotes and the literal with its quotes.
func (s *Scanner) String() (text, literal []byte, ok bool) {
	if !s.Byte('"') {
		return nil, nil, false
	}
	from := s.i
	high := false
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			text = s.b[from:s.i]
			s.i++
			if high && !utf8.Valid(text) {
				return nil, nil, false
			}
			return text, s.b[from-1 : s.i], true
		case c < 0x20 || c == '\\':
			return nil, nil, false
		case c >= 0x80:
			high = true
		}
	}
	return nil, nil, false
}

// Object reads an object, calling field with each key (a String) and the
// scanner before its value, which field must read.
func (s *Scanner) Object(field func(key []byte) bool) bool {
	if !s.Byte('{') {
		return false
	}
	if s.Byte('}') {
		return true
	}
	for {
		key, _, ok := s.String()
		if !ok || !s.Byte(':') || !field(key) {
			return false
		}
		if s.Byte('}') {
			return true
		}
		if !s.Byte(',') {
			return false
		}
	}
}

// Array reads an array, calling elem before each element, which elem must
// read.
func (s *Scanner) Array(elem func() bool) bool {
	if !s.Byte('[') {
		return false
	}
	if s.Byte(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.Byte(']') {
			return true
		}
		if !s.Byte(',') {
			return false
		}
	}
}

// Skip passes over one value of any kind, escapes included. It finds where
// the value ends and does not check it through: what it passes over is
// left for encoding/json to read.
func (s *Scanner) Skip() bool { return s.skip(0) }

func (s *Scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch s.Peek() {
	case '"':
		s.i++
		for ; s.i < len(s.b); s.i++ {
			switch s.b[s.i] {
			case '\\':
				s.i++
			case '"':
				s.i++
				return true
			}
		}
		return false
	case '{', '[':
		open, end := s.b[s.i], byte('}')
		if open == '[' {
			end = ']'
		}
		s.i++
		if s.Byte(end) {
			return true
		}
		for {
			if open == '{' && (!s.skip(depth+1) || !s.Byte(':')) {
				return false
			}
			if !s.skip(depth + 1) {
				return false
			}
			if s.Byte(end) {
				return true
			}
			if !s.Byte(',') {
				return false
			}
		}
	case 0:
		return false
	default:
		// A number, true, false or null: up to the next delimiter.
		from := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
				return s.i > from
			}
			s.i++
		}
		return s.i > from
	}
}
