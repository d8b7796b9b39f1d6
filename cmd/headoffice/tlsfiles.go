package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// tlsFiles is head office's certificate and the tills' CA bundle, read
// again from their files when one changes: renewing them needs no restart
// (a restart cuts every till's push in flight). A renewal that cannot be
// read — half written, the key not yet the certificate's — keeps the
// pair read before and is logged once; the next change is read again.
type tlsFiles struct {
	cert, key, ca string
	log           *slog.Logger
	now           func() time.Time

	mu      sync.Mutex
	checked time.Time                  // the files' last stat
	stamp   string                     // their sizes and times when cur was read
	failed  string                     // the stamp that would not load, logged
	cur     *tls.Config                // what handshakes get
	cas     map[[sha256.Size]byte]bool // the CAs of cur's bundle
}

// statEvery bounds the stats a herd of handshakes costs.
const statEvery = time.Second

// loadTLSFiles reads the files at start, where any error stops serve.
func loadTLSFiles(cert, key, ca string, log *slog.Logger) (*tlsFiles, error) {
	f := &tlsFiles{cert: cert, key: key, ca: ca, log: log, now: time.Now}
	// Stamped before they are read, as reload does: a renewal written in
	// between is read again at the next look, not missed.
	stamp, serr := f.stat()
	cur, cas, err := f.read()
	if err != nil {
		return nil, err // it names the files, stat's error only one
	}
	if serr != nil {
		return nil, serr
	}
	f.cur, f.cas, f.stamp, f.checked = cur, cas, stamp, f.now()
	return f, nil
}

// config is tls.Config.GetConfigForClient.
func (f *tlsFiles) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload()
	return f.cur, nil
}

// reload reads the files again if they changed since they were last
// looked at, at most statEvery ago (f.mu held).
func (f *tlsFiles) reload() {
	now := f.now()
	if now.Sub(f.checked) < statEvery {
		return
	}
	f.checked = now
	stamp, err := f.stat()
	if err != nil || stamp == f.stamp || stamp == f.failed {
		if err != nil && stamp != f.failed {
			f.failed = stamp
			f.log.Warn("TLS files unreadable: serving the certificate read before", "err", err)
		}
		return
	}
	cfg, cas, err := f.read()
	if err != nil {
		f.failed = stamp
		f.log.Warn("TLS files changed but do not load: serving the certificate read before until they change again", "err", err)
		return
	}
	f.cur, f.cas, f.stamp, f.failed = cfg, cas, stamp, ""
	leaf := cfg.Certificates[0].Leaf
	f.log.Info("TLS files read again", "certificate", leaf.Subject.CommonName, "valid_until", leaf.NotAfter.UTC().Format(time.RFC3339),
		"tills_ca", f.ca != "")
}

// stat is the files' sizes and modification times.
func (f *tlsFiles) stat() (string, error) {
	var b strings.Builder
	for _, name := range []string{f.cert, f.key, f.ca} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			// A stamp still, so that the same missing file is logged once.
			return "missing " + name, fmt.Errorf("serve: %w", err)
		}
		fmt.Fprintf(&b, "%d@%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// trusted is headoffice.Options.TrustedTillCA: whether ca, which a till's
// connection was verified to, is in the bundle now. The files are looked
// at as for a handshake, so a CA taken out of the bundle is refused on a
// kept-alive connection within a second.
func (f *tlsFiles) trusted(ca *x509.Certificate) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload()
	return f.cas[sha256.Sum256(ca.Raw)]
}

func (f *tlsFiles) read() (*tls.Config, map[[sha256.Size]byte]bool, error) {
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: TLS certificate %s and key %s: %w", f.cert, f.key, err)
	}
	// The config a handshake gets is this one, not the server's: it names
	// the protocols http.Server speaks over TLS itself.
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if f.ca == "" {
		return cfg, nil, nil
	}
	data, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: -tls-client-ca: %w", err)
	}
	pool, cas := x509.NewCertPool(), map[[sha256.Size]byte]bool{}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if b.Type != "CERTIFICATE" || err != nil {
			continue // as AppendCertsFromPEM: what is not a certificate is passed over
		}
		pool.AddCert(c)
		cas[sha256.Sum256(c.Raw)] = true
	}
	if len(cas) == 0 {
		return nil, nil, fmt.Errorf("serve: -tls-client-ca %s: no PEM certificate in it", f.ca)
	}
	// If given: tills with a secret only, and ERP jobs, present none.
	cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	return cfg, cas, nil
}
