// Package testpki makes the certificates of the TLS tests: a CA, and
// server and till certificates it signs, written as PEM files. Tests only.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA signs certificates. Its own and those it issues are valid from an
// hour ago for an hour unless a Spec says otherwise.
type CA struct {
	Cert *x509.Certificate
	// File is the CA certificate as PEM.
	File string
	key  *ecdsa.PrivateKey
	dir  string
	// presents is what a certificate this CA signed presents after its
	// own: nothing for a root, the intermediate and the CAs between it and
	// the root otherwise.
	presents [][]byte
}

// NewCA makes a root CA named name, its files in a temporary directory of t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	return newCA(t, nil, name)
}

// Intermediate makes a CA named name that ca signs; the certificates it
// issues present it after their own.
func (ca *CA) Intermediate(t testing.TB, name string) *CA {
	t.Helper()
	return newCA(t, ca, name)
}

func newCA(t testing.TB, parent *CA, name string) *CA {
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	signer, signKey, dir := tmpl, key, t.TempDir()
	if parent != nil {
		signer, signKey, dir = parent.Cert, parent.key, parent.dir
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, key: key, dir: dir}
	if parent != nil {
		ca.presents = append([][]byte{der}, parent.presents...)
	}
	ca.File = ca.write(t, cert.SerialNumber.String()+"-ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return ca
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// TLS is the CA's own certificate and key, as a client would present a
// certificate (tests of what a CA certificate is not good for).
func (ca *CA) TLS() tls.Certificate {
	chain := ca.presents
	if chain == nil {
		chain = [][]byte{ca.Cert.Raw}
	}
	return tls.Certificate{Certificate: chain, PrivateKey: ca.key, Leaf: ca.Cert}
}

// Server issues head office's certificate, for 127.0.0.1.
func (ca *CA) Server(t testing.TB) Pair {
	return ca.Issue(t, Spec{CN: "head office", Usage: x509.ExtKeyUsageServerAuth})
}

// Till issues a till's certificate, its common name the till id.
func (ca *CA) Till(t testing.TB, tillID string) Pair {
	return ca.Issue(t, Spec{CN: tillID, Usage: x509.ExtKeyUsageClientAuth})
}

// Spec is a certificate Issue makes: for CN (any text), with one extended
// key usage, valid from NotBefore to NotAfter (zero: an hour ago, an hour
// on), for 127.0.0.1.
type Spec struct {
	CN                  string
	Usage               x509.ExtKeyUsage
	NotBefore, NotAfter time.Time
}

// Pair is a certificate and its key, as files and loaded.
type Pair struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// Issue signs a certificate as spec says and writes it (with the CAs
// above, for an intermediate) and its key, in files named by its serial.
func (ca *CA) Issue(t testing.TB, spec Spec) Pair {
	t.Helper()
	if spec.NotBefore.IsZero() {
		spec.NotBefore = time.Now().Add(-time.Hour)
	}
	if spec.NotAfter.IsZero() {
		spec.NotAfter = time.Now().Add(time.Hour)
	}
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: spec.CN}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{spec.Usage}, NotBefore: spec.NotBefore, NotAfter: spec.NotAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var certPEM []byte
	for _, d := range append([][]byte{der}, ca.presents...) {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	name := tmpl.SerialNumber.String()
	p := Pair{CertFile: ca.writeRaw(t, name+".pem", certPEM),
		KeyFile: ca.write(t, name+"-key.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
	if p.TLS, err = tls.LoadX509KeyPair(p.CertFile, p.KeyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func (ca *CA) write(t testing.TB, name string, b *pem.Block) string {
	return ca.writeRaw(t, name, pem.EncodeToMemory(b))
}

func (ca *CA) writeRaw(t testing.TB, name string, data []byte) string {
	t.Helper()
	f := filepath.Join(ca.dir, name)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
