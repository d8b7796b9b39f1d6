package main

import (
	"io"
	"regexp"
)

// The DSN may hold a password (in the URL's user info, its password=
// parameter, or a key=value DSN's password=). Errors and the flag
// package's messages echo what the command was given (a flag after the
// arguments, a flag's bad value), and they end up in cron mail and the
// journal: the password is masked there as xxxxx.
var (
	urlPassword     = regexp.MustCompile(`(://[^:/@\s"]*:)[^/\s"]*@`)
	queryPassword   = regexp.MustCompile(`([?&]password=)[^&\s"]*`)
	keywordPassword = regexp.MustCompile(`(^|[\s"])(password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|[^\s"\\])+)`)
)

// redact is s with every DSN password in it masked.
func redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}xxxxx@")
	s = queryPassword.ReplaceAllString(s, "${1}xxxxx")
	return keywordPassword.ReplaceAllString(s, "${1}${2}xxxxx")
}

// redactedError is err with the passwords in its text masked; errors.Is
// and errors.As still see err.
type redactedError struct{ err error }

func (e redactedError) Error() string { return redact(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

// redactingWriter masks passwords in what is written to w (the flag
// package writes each message whole).
type redactingWriter struct{ w io.Writer }

func (r redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
