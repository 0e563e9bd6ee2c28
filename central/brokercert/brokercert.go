// Package brokercert gives the embedded MQTT broker a TLS certificate when
// none is configured (mqtt.tls.listen set, mqtt.tls.cert_file empty):
// centrald's own certificate authority, created once, and a broker
// certificate signed by it, renewed when it nears its end or no longer
// names every address the gates may use. Enrollment hands the CA
// certificate to the gates, so they verify the broker without any public
// CA and without trusting whatever answers first.
//
// The files live in one directory (mqtt.tls.dir): ca.crt, ca.key,
// broker.crt, broker.key. The keys are ECDSA P-256, written with mode 0600
// and never printed or logged; the directory is created with mode 0700.
package brokercert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/parkgate/parkgate/internal/atomicfile"
)

// File names in the directory.
const (
	CAFile   = "ca.crt"
	CAKey    = "ca.key"
	CertFile = "broker.crt"
	KeyFile  = "broker.key"
)

const (
	caValidity   = 20 * 365 * 24 * time.Hour
	certValidity = 2 * 365 * 24 * time.Hour
	// renewBefore: a broker certificate this close to its end is replaced
	// at the next start, long before any gate could see it expire.
	renewBefore = 60 * 24 * time.Hour
	// backdate covers a gate whose clock is a little behind central's.
	backdate = time.Hour
)

// Files are the certificate files the broker serves and the CA the gates
// are to trust.
type Files struct {
	CertFile, KeyFile string
	// CAPEM is the CA certificate, PEM.
	CAPEM []byte
	// Created says what this call made: "" (everything reused), "ca and
	// certificate" or "certificate".
	Created string
}

// Names are the names and addresses the broker certificate must carry:
// the host name, localhost, every address of this host (loopback
// included: a gate on the same machine, and tests) except link-local
// ones, and extra (mqtt.tls.hosts: names or addresses gates use, such as
// a DNS name or the public address of a NAT).
func Names(extra []string) (dns []string, ips []net.IP) {
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s == "" {
			return
		}
		if ip := net.ParseIP(s); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			return
		}
		s = strings.ToLower(strings.TrimSuffix(s, "."))
		if !slices.Contains(dns, s) {
			dns = append(dns, s)
		}
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	add("localhost")
	add("127.0.0.1")
	add("::1")
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() && !n.IP.IsLinkLocalMulticast() {
				add(n.IP.String())
			}
		}
	}
	for _, s := range extra {
		add(s)
	}
	return dns, ips
}

// Ensure returns the broker's certificate in dir, creating the CA on
// first use and a new broker certificate when there is none, when it
// ends within 60 days, or when it lacks one of Names(extra). site names
// the CA (its subject), now is the clock.
func Ensure(dir, site string, extra []string, now time.Time) (Files, error) {
	f := Files{CertFile: filepath.Join(dir, CertFile), KeyFile: filepath.Join(dir, KeyFile)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("mqtt.tls.dir: %w", err)
	}
	ca, caKey, err := loadPair(filepath.Join(dir, CAFile), filepath.Join(dir, CAKey))
	if errors.Is(err, fs.ErrNotExist) {
		ca, caKey, err = newCA(dir, site, now)
		f.Created = "ca and certificate"
	}
	if err != nil {
		return f, err
	}
	f.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	dns, ips := Names(extra)
	cert, _, err := loadPair(f.CertFile, f.KeyFile)
	if err == nil && fresh(cert, ca, dns, ips, now) {
		return f, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if err := newCert(dir, ca, caKey, dns, ips, now); err != nil {
		return f, err
	}
	if f.Created == "" {
		f.Created = "certificate"
	}
	return f, nil
}

// fresh: cert is signed by ca, valid well beyond now, and names every
// wanted name.
func fresh(cert, ca *x509.Certificate, dns []string, ips []net.IP, now time.Time) bool {
	if cert.CheckSignatureFrom(ca) != nil || now.Add(renewBefore).After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return false
	}
	for _, d := range dns {
		if !slices.Contains(cert.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(dir, site string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"parkgate"}, CommonName: "parkgate " + site + " MQTT CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a certificate without its key would be useless and
	// block the next start.
	if err := writeKey(filepath.Join(dir, CAKey), key); err != nil {
		return nil, nil, err
	}
	if err := writeAtomic(filepath.Join(dir, CAFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func newCert(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, dns []string, ips []net.IP, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	cn := "localhost"
	if len(dns) > 0 {
		cn = dns[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{Organization: []string{"parkgate"}, CommonName: cn},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, KeyFile), key); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeAtomic replaces path whole (internal/atomicfile), naming the
// setting in its error.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("mqtt.tls.dir: writing %s: %w", path, err)
	}
	return nil
}

// loadPair reads a certificate and its key (fs.ErrNotExist if either is
// missing). A key readable by group or others is refused, as the ticket
// key is: whoever reads the CA key can impersonate the broker.
func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, cerr := os.ReadFile(certPath)
	fi, kerr := os.Stat(keyPath)
	if errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist) {
		return nil, nil, fs.ErrNotExist
	}
	if cerr != nil {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: %v (its key %s exists: restore the certificate, or remove both to start over)", cerr, keyPath)
	}
	if kerr != nil {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: %v (its certificate %s exists: restore the key, or remove both to start over)", kerr, certPath)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: key file %s has mode %04o, which lets group or others read it; run: chmod 600 %s", keyPath, perm, keyPath)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: %w", err)
	}
	cblock, _ := pem.Decode(cb)
	kblock, rest := pem.Decode(kb)
	if cblock == nil || cblock.Type != "CERTIFICATE" || kblock == nil || kblock.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: %s or %s is not a PEM certificate and key", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: %s: %w", certPath, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: %s: %w", keyPath, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("mqtt.tls.dir: %s is not the key of %s", keyPath, certPath)
	}
	return cert, key, nil
}
