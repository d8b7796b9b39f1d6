package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"
)

// Sync configures the till's sync loop with head office (sync/client,
// docs/sync.md).
type Sync struct {
	// Enabled starts the loop; off, the till sells and journals alone.
	Enabled bool `mapstructure:"enabled"`
	// URL of head office: http(s)://host[:port].
	URL string `mapstructure:"url"`
	// Secret issued when the till was enrolled; SecretFile (one line)
	// overrides it, so the secret can stay out of the YAML.
	Secret     string `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret_file"`
	// CAFile is a PEM bundle to trust for head office's TLS certificate
	// (empty: the system roots).
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are the till's own certificate (PEM, its
	// common name the till id) and key for mutual TLS: head office then
	// takes the certificate instead of the secret.
	CertFile       string        `mapstructure:"cert_file"`
	KeyFile        string        `mapstructure:"key_file"`
	Interval       time.Duration `mapstructure:"interval"`
	BatchSize      int           `mapstructure:"batch_size"`
	BackoffMin     time.Duration `mapstructure:"backoff_min"`
	BackoffMax     time.Duration `mapstructure:"backoff_max"`
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// PageSize is the cards (first load) or change records (delta) the
	// till asks per feed page. A page must arrive within RequestTimeout;
	// one that does not is asked again at half the size, down to 100.
	PageSize int `mapstructure:"page_size"`
	// CardFetchTimeout bounds asking head office for a card the replica
	// lacks (a customer of another store on a `home` store), while the
	// cashier waits; 0 never asks.
	CardFetchTimeout time.Duration `mapstructure:"card_fetch_timeout"`
}

// DefaultSync is the sync section's defaults.
func DefaultSync() Sync {
	return Sync{Interval: 30 * time.Second, BatchSize: 500, BackoffMin: time.Second, BackoffMax: 5 * time.Minute,
		RequestTimeout: time.Minute, PageSize: 5000, CardFetchTimeout: 3 * time.Second}
}

// SecretValue is the secret from SecretFile if set, else Secret.
func (s *Sync) SecretValue() (string, error) {
	if s.SecretFile == "" {
		return s.Secret, nil
	}
	b, err := os.ReadFile(s.SecretFile)
	if err != nil {
		return "", fmt.Errorf("sync.secret_file: %w", err)
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b), nil
}

// MaxSyncRequestTimeout is the longest sync.request_timeout.
const MaxSyncRequestTimeout = 10 * time.Minute

func (s *Sync) validate(file string) []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Key: "sync." + key, Value: val, Err: fmt.Errorf(format, args...)})
	}
	if s.Enabled {
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("url", s.URL, "must be http(s)://host[:port] when sync.enabled is true")
		} else if u.Scheme == "http" && s.CertFile != "" {
			// No handshake, so the certificate is never presented: with no
			// secret every sync is a 401 that points at the enrolment.
			bad("cert_file", s.CertFile, "is presented only over TLS, and sync.url (%s) is http://: use https:// (head office serves -tls-client-ca), or drop sync.cert_file and sync.key_file", s.URL)
		}
		switch {
		case s.SecretFile != "":
			switch sec, err := s.SecretValue(); {
			case err != nil:
				bad("secret_file", s.SecretFile, "%v", errors.Unwrap(err))
			case sec == "":
				bad("secret_file", s.SecretFile, "is empty: write the secret issued at enrolment (headoffice enrol) in it")
			}
		case s.Secret == "" && s.CertFile != "":
			// The till's certificate authenticates it.
		case len(s.Secret) < 16:
			bad("secret", "(hidden)", "must be the secret issued at enrolment (at least 16 characters) when sync.enabled is true, unless sync.cert_file is set")
		}
	}
	for _, f := range []struct{ key, path string }{{"ca_file", s.CAFile}, {"cert_file", s.CertFile}, {"key_file", s.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(f.key, f.path, "%v", err)
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		bad("cert_file", s.CertFile, "and sync.key_file go together (now key_file %q)", s.KeyFile)
	}
	if s.Interval < time.Second || s.Interval > time.Hour {
		bad("interval", s.Interval, "must be between 1s and 1h")
	}
	if s.BatchSize < 1 || s.BatchSize > 5000 {
		bad("batch_size", s.BatchSize, "must be 1…5000")
	}
	if s.BackoffMin < 100*time.Millisecond || s.BackoffMin > time.Minute {
		bad("backoff_min", s.BackoffMin, "must be between 100ms and 1m")
	}
	if s.BackoffMax < s.BackoffMin || s.BackoffMax > time.Hour {
		bad("backoff_max", s.BackoffMax, "must be between sync.backoff_min and 1h")
	}
	if s.RequestTimeout < time.Second || s.RequestTimeout > MaxSyncRequestTimeout {
		bad("request_timeout", s.RequestTimeout, "must be between 1s and %s", MaxSyncRequestTimeout)
	}
	if s.CardFetchTimeout != 0 && (s.CardFetchTimeout < 100*time.Millisecond || s.CardFetchTimeout > 30*time.Second) {
		bad("card_fetch_timeout", s.CardFetchTimeout, "must be 0 (never ask) or between 100ms and 30s")
	}
	// Head office serves snapshot pages of at most 20000 cards.
	if s.PageSize < 10 || s.PageSize > 20000 {
		bad("page_size", s.PageSize, "must be 10…20000")
	}
	return errs
}
