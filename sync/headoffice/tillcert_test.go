package headoffice

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"tillagent/internal/testpki"
	"tillagent/sync/pgtest"
)

// mtlsRig is a tills' CA and head office served over mutual TLS with it
// (as `headoffice serve -tls-client-ca`), on s's handler.
type mtlsRig struct {
	ca  *testpki.CA
	hs  *httptest.Server
	now time.Time
}

func mtlsHO(t *testing.T, s *Server) *mtlsRig {
	t.Helper()
	ca := testpki.NewCA(t, "tills CA")
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return &mtlsRig{ca: ca, hs: hs, now: time.Now()}
}

// till issues a till certificate for cn, valid from an hour ago for an hour.
func (p *mtlsRig) till(t *testing.T, cn string) tls.Certificate { return p.ca.Till(t, cn).TLS }

// get sends GET path presenting cert (nil: none), with HTTP Basic user and
// secret when user is set, or the ERP token when bearer is set; it returns
// the status, or 0 and the error when the request failed (a refused
// handshake).
func (p *mtlsRig) get(t *testing.T, path string, cert *tls.Certificate, user, secret, bearer string) (int, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.ca.Pool()}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest("GET", p.hs.URL+path, nil)
	if user != "" {
		req.SetBasicAuth(user, secret)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestRetiredTillsCertificateRefusedAfterReEnrol: a till is stolen,
// retired, and its replacement enrolled under the same id (the position
// in the store keeps its id). The stolen till's secret stays refused, and
// so does its certificate, still valid (certificates are short-lived, not
// revoked): one valid from before the retirement is refused even once the
// till is enrolled again.
func TestRetiredTillsCertificateRefusedAfterReEnrol(t *testing.T) {
	s, _, secret := servedHO(t, pgtest.DSN(t))
	ctx := context.Background()
	p := mtlsHO(t, s)
	stolen := p.till(t, "S001-T01")
	if code, err := p.get(t, "/v1/till/feed", &stolen, "", "", ""); code != 200 {
		t.Fatalf("feed with the till's certificate before it was stolen: %d %v", code, err)
	}
	if _, err := s.Retire(ctx, "S001-T01"); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.get(t, "/v1/till/feed", &stolen, "", "", ""); code != 401 {
		t.Fatalf("feed with the retired till's certificate: %d, want 401", code)
	}
	// The replacement till is enrolled under the same id.
	newSecret, err := s.Enrol(ctx, "S001-T01", "S001")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := p.get(t, "/v1/till/feed", nil, "S001-T01", newSecret, ""); code != 200 {
		t.Fatalf("replacement till with its new secret: %d, want 200", code)
	}
	if code, _ := p.get(t, "/v1/till/feed", nil, "S001-T01", secret, ""); code != 401 {
		t.Fatalf("stolen till's secret after the re-enrolment: %d, want 401", code)
	}
	if code, _ := p.get(t, "/v1/till/feed", &stolen, "", "", ""); code != 401 {
		t.Errorf("stolen till's certificate (issued before the retirement) after the re-enrolment: %d, want 401 like its secret", code)
	}
}

// TestTillCertificateEdgeCases guards what the mutual-TLS admission got
// right:
//   - a till certificate with a wrong secret of the same till is
//     admitted: the verified certificate is the credential (docs: "needs no
//     secret"); a till keeping a stale secret file after it was enrolled
//     again must not be cut off, and refusing would protect nothing (the
//     holder of the certificate can drop the header);
//   - a certificate whose common name is not an enrolled till (the ERP's
//     reserved name, the store's id, the till id with a trailing space or
//     in other case) is 401;
//   - a certificate with an empty common name stands for no till: the
//     request's HTTP Basic credentials decide (right secret 200, wrong 401);
//   - a till certificate on an ERP endpoint is no ERP credential (401);
//   - a chain through an intermediate CA is admitted as the leaf's till;
//   - an expired certificate, a not-yet-valid one, and a server
//     certificate (no client-auth usage) of the same CA fail the
//     handshake; an intermediate CA's own certificate names no till.
func TestTillCertificateEdgeCases(t *testing.T) {
	s, _, secret := servedHO(t, pgtest.DSN(t))
	p := mtlsHO(t, s)
	feed := "/v1/till/feed"
	a := p.till(t, "S001-T01")
	if code, err := p.get(t, feed, &a, "S001-T01", "wrong-secret-wrong-secret", ""); code != 200 {
		t.Errorf("till certificate with a wrong secret of the same till: %d %v, want 200 (the certificate is the credential)", code, err)
	}
	for _, cn := range []string{"ERP", "S001", "S001-T01 ", "s001-t01", "S001-T01/../S001-T02"} {
		c := p.till(t, cn)
		if code, err := p.get(t, feed, &c, "", "", ""); code != 401 {
			t.Errorf("certificate for %q: %d %v, want 401", cn, code, err)
		}
	}
	empty := p.till(t, "")
	if code, err := p.get(t, feed, &empty, "S001-T01", secret, ""); code != 200 {
		t.Errorf("certificate with no common name and the till's secret: %d %v, want 200", code, err)
	}
	if code, err := p.get(t, feed, &empty, "S001-T01", "wrong-secret-wrong-secret", ""); code != 401 {
		t.Errorf("certificate with no common name and a wrong secret: %d %v, want 401", code, err)
	}
	if code, err := p.get(t, "/v1/erp/reports/tills", &a, "", "", ""); code != 401 {
		t.Errorf("till certificate on an ERP endpoint: %d %v, want 401", code, err)
	}
	if code, err := p.get(t, "/v1/erp/reports/tills", &a, "", "", "erp-secret"); code != 200 {
		t.Errorf("ERP token over a connection with a till certificate: %d %v, want 200", code, err)
	}

	inter := p.ca.Intermediate(t, "store S001 CA")
	chained := inter.Till(t, "S001-T01").TLS
	if code, err := p.get(t, feed, &chained, "", "", ""); code != 200 {
		t.Errorf("till certificate through an intermediate CA: %d %v, want 200", code, err)
	}
	// The intermediate presented as a client certificate (no extended key
	// usage: Go lets it through the handshake) names no till: refused.
	asInter := inter.TLS()
	if code, err := p.get(t, feed, &asInter, "", "", ""); code == 200 {
		t.Errorf("the intermediate CA's own certificate as a till's: %d %v, want refused", code, err)
	}
	for what, c := range map[string]tls.Certificate{
		"expired": p.ca.Issue(t, testpki.Spec{CN: "S001-T01", Usage: x509.ExtKeyUsageClientAuth,
			NotBefore: p.now.Add(-2 * time.Hour), NotAfter: p.now.Add(-time.Hour)}).TLS,
		"not yet valid": p.ca.Issue(t, testpki.Spec{CN: "S001-T01", Usage: x509.ExtKeyUsageClientAuth,
			NotBefore: p.now.Add(time.Hour), NotAfter: p.now.Add(2 * time.Hour)}).TLS,
		"server usage": p.ca.Issue(t, testpki.Spec{CN: "S001-T01", Usage: x509.ExtKeyUsageServerAuth}).TLS,
	} {
		code, err := p.get(t, feed, &c, "", "", "")
		if err == nil {
			t.Errorf("%s certificate: answered %d, want the handshake refused", what, code)
		}
	}
}

// TestTillIDPostgresCannotStoreIs401: a till certificate whose common
// name holds U+0000 (UTF8String allows it), or HTTP Basic credentials
// whose user holds U+0000 or bytes that are not UTF-8, name no till head
// office could have enrolled (Enrol admits only [A-Za-z0-9_.:/-]). They
// are 401 with no query sent, not a 503 quoting PostgreSQL's encoding
// error (a till with such a certificate would retry forever as if head
// office were down, and anyone could make head office log errors).
func TestTillIDPostgresCannotStoreIs401(t *testing.T) {
	s, _, _ := servedHO(t, pgtest.DSN(t))
	p := mtlsHO(t, s)
	nul := p.till(t, "S001-T01\x00")
	if code, err := p.get(t, "/v1/till/feed", &nul, "", "", ""); code != 401 {
		t.Errorf("till certificate with U+0000 in its common name: %d %v, want 401", code, err)
	}
	for _, user := range []string{"S001-T01\x00", "S001-\xff"} {
		if code, err := p.get(t, "/v1/till/feed", nil, user, "some-secret-some-secret", ""); code != 401 {
			t.Errorf("HTTP Basic user %q: %d %v, want 401", user, code, err)
		}
	}
}

// TestExpiredTillCertificateOnAKeptAliveConnection: the TLS layer checks a
// till certificate's dates only in the handshake, and a till syncing every
// 30 s keeps its connection longer than any idle timeout: once its
// certificate has expired, a request on that connection was still
// admitted, so a short-lived certificate (or a copied key) never lapsed
// for a till that kept talking (found by a QA pass). It is now 401 naming
// the dates, the connection is closed, and the next request's handshake
// is refused.
func TestExpiredTillCertificateOnAKeptAliveConnection(t *testing.T) {
	s, _, _ := servedHO(t, pgtest.DSN(t))
	p := mtlsHO(t, s)
	notAfter := time.Now().Add(2 * time.Second)
	c := p.ca.Issue(t, testpki.Spec{CN: "S001-T01", Usage: x509.ExtKeyUsageClientAuth,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}).TLS
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }}}}
	defer hc.CloseIdleConnections()
	get := func() (code int, body string, reused bool, err error) {
		req, _ := http.NewRequest("GET", p.hs.URL+"/v1/till/feed", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", reused, err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(data), reused, nil
	}
	if code, body, _, err := get(); code != http.StatusOK {
		t.Fatalf("feed with the till's valid certificate: %d %s %v", code, body, err)
	}
	time.Sleep(time.Until(notAfter) + 500*time.Millisecond)
	code, body, reused, err := get()
	if err != nil || !reused || code != http.StatusUnauthorized || !strings.Contains(body, "renew it") {
		t.Fatalf("feed on the kept-alive connection after the certificate expired: %d %s (connection reused %v) %v; want 401 naming the dates", code, body, reused, err)
	}
	if code, body, _, err := get(); err == nil {
		t.Fatalf("feed on a new connection with the expired certificate: %d %s; want the handshake refused", code, body)
	}
}
