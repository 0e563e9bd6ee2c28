package brokercert

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func verify(t *testing.T, f Files, name string, at time.Time) error {
	t.Helper()
	b, err := os.ReadFile(f.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: at})
	return err
}

func TestEnsureCreatesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mqtt-tls")
	f, err := Ensure(dir, "s1", []string{"parking.example", "203.0.113.7"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Created != "ca and certificate" {
		t.Errorf("Created = %q on first use", f.Created)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "parking.example", "203.0.113.7"} {
		if err := verify(t, f, name, t0); err != nil {
			t.Errorf("the broker certificate does not verify for %s against the CA: %v", name, err)
		}
	}
	if err := verify(t, f, "other.example", t0); err == nil {
		t.Error("the certificate verifies for a name it must not carry")
	}
	for _, k := range []string{CAKey, KeyFile} {
		fi, err := os.Stat(filepath.Join(dir, k))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", k, fi.Mode().Perm(), err)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	if strings.Contains(string(f.CAPEM), "PRIVATE") {
		t.Fatal("CAPEM carries a private key")
	}
	cert1, _ := os.ReadFile(f.CertFile)

	// Later starts reuse everything.
	f2, err := Ensure(dir, "s1", []string{"parking.example", "203.0.113.7"}, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert2, _ := os.ReadFile(f2.CertFile)
	if f2.Created != "" || string(cert2) != string(cert1) || string(f2.CAPEM) != string(f.CAPEM) {
		t.Errorf("a second start did not reuse the files (created %q)", f2.Created)
	}

	// A new name: a new certificate from the same CA, which gates
	// enrolled before still trust.
	f3, err := Ensure(dir, "s1", []string{"parking.example", "203.0.113.7", "gw.example"}, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f3.Created != "certificate" || string(f3.CAPEM) != string(f.CAPEM) {
		t.Errorf("new name: created %q, CA kept %v", f3.Created, string(f3.CAPEM) == string(f.CAPEM))
	}
	if err := verify(t, f3, "gw.example", t0.Add(48*time.Hour)); err != nil {
		t.Error(err)
	}

	// Near its end the certificate is renewed.
	late := t0.Add(certValidity - 30*24*time.Hour)
	f4, err := Ensure(dir, "s1", nil, late)
	if err != nil {
		t.Fatal(err)
	}
	if f4.Created != "certificate" {
		t.Errorf("a certificate 30 days from its end was not renewed (created %q)", f4.Created)
	}
	if err := verify(t, f4, "localhost", late.Add(365*24*time.Hour)); err != nil {
		t.Errorf("renewed certificate: %v", err)
	}
}

func TestEnsureRefusesAnExposedKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir, "s1", nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, CAKey), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, "s1", nil, t0); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Ensure with a world-readable CA key = %v, want a refusal naming chmod 600", err)
	}
	// A missing CA certificate next to its key is not silently replaced:
	// gates trust that CA.
	os.Chmod(filepath.Join(dir, CAKey), 0o600)
	os.Remove(filepath.Join(dir, CAFile))
	if _, err := Ensure(dir, "s1", nil, t0); err == nil {
		t.Error("Ensure made a new CA while the old key was still there")
	}
}
