package enroll

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/brokercert"
	"github.com/parkgate/parkgate/central/enroll"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/internal/enrollment"
)

// central is a real central's enrollment endpoint over a real SQLite
// store, with a clock the test moves.
type central struct {
	st   store.Store
	pub  ed25519.PublicKey
	clk  *clocktest.Clock
	srv  *httptest.Server
	host string
}

func newCentral(t *testing.T, ca string) *central {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pub, priv, _ := ed25519.GenerateKey(nil)
	clk := clocktest.New(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	h := &enroll.Handler{Store: st, Key: func() (ed25519.PrivateKey, error) { return priv, nil }, Site: "north", Clock: clk,
		Broker:     enroll.Broker{TLSPort: 8883, PlainPort: 1884, CA: ca},
		TicketKeys: []string{"ed25519:Q2ZRKDQ4Cxb8ZlJUWbcWW1T5M6WePuwEUpsUyzSbmqw="}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+enrollment.Path, h.ServeKey)
	mux.HandleFunc("POST "+enrollment.Path, h.ServeRedeem)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return &central{st: st, pub: pub, clk: clk, srv: srv, host: u.Hostname()}
}

func (c *central) issue(t *testing.T, id, role string) string {
	t.Helper()
	code, err := enroll.Issue(context.Background(), c.st, c.pub, id, role, 24*time.Hour, c.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code.String()
}

func TestEnrollWritesACompleteConfig(t *testing.T) {
	c := newCentral(t, "")
	code := c.issue(t, "exit-2", "exit")
	path := filepath.Join(t.TempDir(), "etc", "gated.yaml")
	res, err := Run(context.Background(), Options{Central: c.srv.URL, Code: code, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, %v; want mode 0600", fi.Mode().Perm(), err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	wantURL := "ssl://" + c.host + ":8883"
	if cfg.Site != "north" || cfg.Gate.ID != "exit-2" || cfg.Gate.Role != "exit" || cfg.MQTT.URL != wantURL ||
		cfg.MQTT.Username != "exit-2" || cfg.MQTT.Password == "" || cfg.Tickets.PublicKey == "" || cfg.Hardware.Mode != "sim" {
		t.Fatalf("written config: %+v", cfg)
	}
	if res.BrokerURL != wantURL {
		t.Errorf("BrokerURL %q, want %q", res.BrokerURL, wantURL)
	}
	// The password in the file is the one central stored.
	g, _ := c.st.Gate(context.Background(), "exit-2")
	if !strings.HasPrefix(string(g.PasswordHash), "sha256:") && len(g.PasswordHash) == 0 {
		t.Fatal("central stored no password")
	}
	raw, _ := os.ReadFile(path)
	for _, want := range []string{"# gated", "hardware:", "relay_pin:", "loop_pin:"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the config lacks %q:\n%s", want, raw)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// The same code again: refused, and the file stays as it is.
	before, _ := os.ReadFile(path)
	_, err = Run(context.Background(), Options{Central: c.srv.URL, Code: code, Path: path})
	var ref *enrollment.RefusedError
	if !errors.As(err, &ref) || ref.Code != enrollment.CodeUsed || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second use: %v, want a refusal saying the code was used", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a refused enrollment changed the existing config")
	}
}

// The CA central hands over is written inline and is what the lane then
// trusts for the broker.
func TestEnrollWritesTheCA(t *testing.T) {
	dir := t.TempDir()
	f, err := brokercert.Ensure(filepath.Join(dir, "tls"), "north", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := newCentral(t, string(f.CAPEM))
	path := filepath.Join(dir, "gated.yaml")
	res, err := Run(context.Background(), Options{Central: c.srv.URL, Code: c.issue(t, "entry-1", "entry"), Path: path, Hardware: "rpi"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hardware.Mode != "rpi" || res.Hardware != "rpi" {
		t.Errorf("hardware.mode %q, want rpi", cfg.Hardware.Mode)
	}
	tc, err := cfg.MQTT.TLSConfig()
	if err != nil || tc == nil {
		t.Fatalf("TLSConfig: %v, %v", tc, err)
	}
	certPEM, _ := os.ReadFile(f.CertFile)
	blk, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(blk.Bytes)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: tc.RootCAs, DNSName: "localhost"}); err != nil {
		t.Errorf("the written CA does not verify central's broker certificate: %v", err)
	}
}

func TestEnrollRefusals(t *testing.T) {
	c := newCentral(t, "")
	path := filepath.Join(t.TempDir(), "gated.yaml")
	orig := "site: old\n"
	os.WriteFile(path, []byte(orig), 0o640)
	unchanged := func(what string) {
		t.Helper()
		if b, _ := os.ReadFile(path); string(b) != orig {
			t.Fatalf("%s: the existing config was changed", what)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(leftovers) != 0 {
			t.Fatalf("%s: temporary files left: %v", what, leftovers)
		}
	}
	run := func(central, code string) error {
		_, err := Run(context.Background(), Options{Central: central, Code: code, Path: path})
		return err
	}

	// Expired: valid for 24 h from issue, not at that instant.
	expiring := c.issue(t, "entry-1", "entry")
	c.clk.Advance(24 * time.Hour)
	if err := run(c.srv.URL, expiring); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired code: %v", err)
	}
	unchanged("expired")

	// Wrong: a well-formed code this central never issued.
	stranger, _ := enrollment.NewCode(c.pub)
	if err := run(c.srv.URL, stranger.String()); err == nil || !strings.Contains(err.Error(), "not known") {
		t.Errorf("unknown code: %v", err)
	}
	unchanged("unknown")

	// Mistyped: caught before anything is sent.
	if err := run(c.srv.URL, "ABCDE-FGHJK"); !errors.Is(err, enrollment.ErrCodeFormat) {
		t.Errorf("malformed code: %v", err)
	}

	// A code whose fingerprint is another central's: refused before the
	// code is sent, and the code stays good for the right central.
	good := c.issue(t, "entry-1", "entry")
	parsed, _ := enrollment.ParseCode(good)
	other := newCentral(t, "")
	parsed.Fingerprint = enrollment.Fingerprint(other.pub)
	if err := run(c.srv.URL, parsed.String()); !errors.Is(err, enrollment.ErrWrongCentral) {
		t.Errorf("fingerprint of another central: %v, want ErrWrongCentral", err)
	}
	unchanged("wrong central")
	// The right code at the wrong central.
	if err := run(other.srv.URL, good); !errors.Is(err, enrollment.ErrWrongCentral) {
		t.Errorf("code at another central: %v, want ErrWrongCentral", err)
	}
	unchanged("other central")

	// A file that cannot be written: refused before the code is spent.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	if _, err := Run(context.Background(), Options{Central: c.srv.URL, Code: good, Path: filepath.Join(blocker, "gated.yaml")}); err == nil {
		t.Fatal("wrote below a regular file")
	}
	if err := run(c.srv.URL, good); err != nil {
		t.Fatalf("the code was spent by failed attempts: %v", err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `id: "entry-1"`) {
		t.Fatalf("after enrolling: %s", b)
	}
}

// As root, the file goes to gated's service user, who alone can read it.
func TestEnrollFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it checks the owner root gives the file")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	c := newCentral(t, "")
	path := filepath.Join(t.TempDir(), "gated.yaml")
	os.WriteFile(path, []byte("site: old\n"), 0o640) // root's, as a package may install it
	if _, err := Run(context.Background(), Options{Central: c.srv.URL, Code: c.issue(t, "entry-1", "entry"), Path: path, Owner: "nobody"}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	st := fi.Sys().(*syscall.Stat_t)
	if strconv.Itoa(int(st.Uid)) != nobody.Uid || fi.Mode().Perm() != 0o600 {
		t.Fatalf("owner %d mode %v; want %s and 0600", st.Uid, fi.Mode().Perm(), nobody.Uid)
	}
}

// TestEnrollKeepsTheLanesSettings: enrolling over the packaged config (a
// Pi's: GPIO, the database under /var/lib/parkgate) or a lane already
// wired keeps those settings; only central's part is new. Enrolling with
// the built-in defaults instead left a Pi lane on the simulator: online
// at central, driving no barrier.
func TestEnrollKeepsTheLanesSettings(t *testing.T) {
	c := newCentral(t, "")
	code := c.issue(t, "entry-9", "entry")
	dir := t.TempDir()
	path := filepath.Join(dir, "gated.yaml")
	db := filepath.Join(dir, "lane.db")
	packaged := "site: demo\n" +
		"db:\n  path: " + db + "\n" +
		"http:\n  addr: 127.0.0.1:9181\n" +
		"hardware:\n  mode: rpi\n  relay_pin: GPIO5\n  loop_pin: GPIO6\n  active_low: true\n  reader_device: /dev/ttyACM0\n" +
		"anpr:\n  allow_from: [10.20.0.31/32]\n  username: cam\n  password: cam-secret\n" +
		"log:\n  level: warn\n"
	if err := os.WriteFile(path, []byte(packaged), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Options{Central: c.srv.URL, Code: code, Path: path}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hardware.Mode != "rpi" || cfg.Hardware.RelayPin != "GPIO5" || cfg.Hardware.LoopPin != "GPIO6" || !cfg.Hardware.ActiveLow ||
		cfg.Hardware.ReaderDevice != "/dev/ttyACM0" || cfg.DB.Path != db || cfg.HTTP.Addr != "127.0.0.1:9181" ||
		len(cfg.ANPR.AllowFrom) != 1 || cfg.ANPR.AllowFrom[0] != "10.20.0.31/32" || cfg.ANPR.Username != "cam" ||
		cfg.ANPR.Password != "cam-secret" || cfg.Log.Level != "warn" {
		t.Errorf("the lane's settings were not kept: hardware %+v, db %q, http %q, anpr %+v, log %+v",
			cfg.Hardware, cfg.DB.Path, cfg.HTTP.Addr, cfg.ANPR, cfg.Log)
	}
	// Central's part is new.
	if cfg.Site != "north" || cfg.Gate.ID != "entry-9" || cfg.Gate.Role != "entry" || cfg.MQTT.Password == "" {
		t.Errorf("central's part: site %q gate %+v", cfg.Site, cfg.Gate)
	}
}
