package client

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// TLSFiles are the till's TLS files: CA a PEM bundle to trust for head
// office's certificate (empty: the system roots; config sync.ca_file);
// Cert and Key the till's own certificate and key for mutual TLS (config
// sync.cert_file, sync.key_file; both or neither). TillID, if set, is the
// till the certificate must be for (its common name): head office takes
// the name from it.
type TLSFiles struct{ CA, Cert, Key, TillID string }

// HTTPClient is the client for Options.HTTPClient: TLS 1.2 or newer,
// trusting f.CA or the system roots, and presenting the till's
// certificate when f names one. The certificate is read again at each
// handshake, so a renewed one (certificates for tills are short-lived)
// needs no restart.
func HTTPClient(f TLSFiles) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("sync client: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sync client: ca file %s: no PEM certificate in it", f.CA)
		}
		cfg.RootCAs = pool
	}
	switch {
	case (f.Cert == "") != (f.Key == ""):
		return nil, errors.New("sync client: a till certificate needs both its file and its key file")
	case f.Cert != "":
		// At start and at each handshake: a renewal that wrote another
		// till's certificate over the file (two tills' files mixed up)
		// would have head office take this box for that till, its feed
		// and store included.
		load := func() (tls.Certificate, error) {
			pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
			if err != nil {
				return pair, &CertFileError{fmt.Errorf("sync client: till certificate %s and key %s: %w", f.Cert, f.Key, err)}
			}
			if pair.Leaf == nil { // GODEBUG=x509keypairleaf=0
				if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
					return pair, &CertFileError{fmt.Errorf("sync client: till certificate %s: %w", f.Cert, err)}
				}
			}
			if cn := pair.Leaf.Subject.CommonName; f.TillID != "" && cn != f.TillID {
				return pair, &CertFileError{fmt.Errorf("sync client: till certificate %s is for till %q (its common name), this till is %s", f.Cert, cn, f.TillID)}
			}
			return pair, nil
		}
		if _, err := load(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			pair, err := load()
			return &pair, err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}

// CertFileError is a till certificate that cannot be presented: its
// files unreadable, or for another till.
type CertFileError struct{ Err error }

func (e *CertFileError) Error() string { return e.Err.Error() }
func (e *CertFileError) Unwrap() error { return e.Err }

// CertificateExpiry is when the till certificate in certFile (its first
// CERTIFICATE block: the key may come first in the same file, as
// tls.LoadX509KeyPair takes it) expires: read from the file each time, so
// a renewal shows.
func CertificateExpiry(certFile string) (time.Time, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return time.Time{}, fmt.Errorf("till certificate: %w", err)
	}
	var block *pem.Block
	for {
		if block, data = pem.Decode(data); block == nil || block.Type == "CERTIFICATE" {
			break
		}
	}
	if block == nil {
		return time.Time{}, fmt.Errorf("till certificate %s: no CERTIFICATE block", certFile)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, fmt.Errorf("till certificate %s: %w", certFile, err)
	}
	return c.NotAfter, nil
}
