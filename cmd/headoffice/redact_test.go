package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestErrorsHideTheDSNPassword: where the command echoes its arguments
// (a flag after the arguments, arguments to a command taking none, a
// flag's bad value) the DSN's password is masked, in URL and in key=value
// form, in the error and in what the flag package prints; the rest of
// the message stays.
func TestErrorsHideTheDSNPassword(t *testing.T) {
	t.Setenv("HEADOFFICE_DSN", "")
	const pw = "S3cretPW"
	url := "postgres://tillagent:" + pw + "@127.0.0.1:1/x"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "replica.yaml", "-dsn", url}, `import: flag -dsn after the arguments ["replica.yaml" "-dsn" "postgres://tillagent:xxxxx@127.0.0.1:1/x"]`},
		{[]string{"import", "replica.yaml", "-dsn", "host=127.0.0.1 password=" + pw + " dbname=x"}, `"host=127.0.0.1 password=xxxxx dbname=x"`},
		{[]string{"import", "replica.yaml", "-dsn", "host=127.0.0.1 password='S3cret PW' dbname=x"}, `password=xxxxx dbname=x`},
		{[]string{"import", "replica.yaml", "-dsn", "postgres://127.0.0.1:1/x?sslmode=disable&password=" + pw + "&user=u"}, `?sslmode=disable&password=xxxxx&user=u`},
		{[]string{"serve", url}, `serve takes no arguments, got ["postgres://tillagent:xxxxx@127.0.0.1:1/x"]`},
		{[]string{"serve", "-expire-every", url}, `invalid value "postgres://tillagent:xxxxx@127.0.0.1:1/x" for flag -expire-every`},
	} {
		var printed string
		err := func() error {
			// What the flag package prints goes to stderr.
			r, w, perr := os.Pipe()
			if perr != nil {
				t.Fatal(perr)
			}
			stderr := os.Stderr
			os.Stderr = w
			defer func() { os.Stderr = stderr }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, c.args, io.Discard, func(listening) { t.Errorf("%q started serving", c.args) })
			w.Close()
			var buf bytes.Buffer
			io.Copy(&buf, r)
			printed = buf.String()
			return err
		}()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "S3cret PW") {
			t.Errorf("%q: %v, want %q and no password", c.args, err, c.want)
		}
		if strings.Contains(printed, pw) {
			t.Errorf("%q printed the password:\n%s", c.args, printed)
		}
	}
}
