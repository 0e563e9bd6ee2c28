package main

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/brokercert"
	"github.com/parkgate/parkgate/internal/enrollment"
)

// gateOnline reports whether centrald's GET /gates shows id online.
func gateOnline(t *testing.T, c *proc, id string) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/gates", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var gs []map[string]any
	json.NewDecoder(res.Body).Decode(&gs)
	for _, g := range gs {
		if g["id"] == id {
			return g["online"] == true
		}
	}
	return false
}

// runCmd runs a command to its end and returns its exit code and output.
func runCmd(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return code, out.String(), errOut.String()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// One-command enrollment with real processes: centrald with its embedded
// broker on TLS (its own CA, created at its first start), `centrald gate
// enroll` prints a code, `gated enroll` writes the lane's config with it,
// and gated started with exactly that file connects over TLS and is
// online at centrald. The code works once; a wrong code, a code whose
// fingerprint is another central's, and a gate trusting another CA all
// fail, and a failed enrollment leaves the file as it was.
func TestEnrollmentEndToEnd(t *testing.T) {
	centraldBin, gatedBin := binaries(t)
	dir := t.TempDir()
	cenv := []string{"PARKING_SITE=enr", "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_LISTEN=127.0.0.1:0",
		"PARKING_MQTT_TLS_LISTEN=127.0.0.1:0", "PARKING_MQTT_TLS_DIR=" + filepath.Join(dir, "mqtt-tls"),
		"PARKING_ENROLL_KEY_FILE=" + filepath.Join(dir, "enroll.key"),
		"PARKING_DB_DSN=" + filepath.Join(dir, "c.db"), "PARKING_TICKETS_KEY_FILE=" + filepath.Join(dir, "t.key"),
		"PARKING_PAYMENT_FAKE_STATE_FILE=" + filepath.Join(dir, "fakepay.json"), "PARKING_AUTH_ADMIN_TOKEN=" + admin}
	c := start(t, centraldBin, cenv...)
	var tlsAddr string
	waitUntil(t, "centrald's TLS listener", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		tlsAddr = c.tls
		return tlsAddr != ""
	})
	if fi, err := os.Stat(filepath.Join(dir, "mqtt-tls", "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("centrald's CA key: %v, %v; want mode 0600", fi, err)
	}

	enrollCode := func(id, role string) string {
		t.Helper()
		code, out, errOut := runCmd(t, centraldBin, cenv, "gate", "enroll", id, "--role", role)
		if code != 0 {
			t.Fatalf("centrald gate enroll %s: exit %d: %s", id, code, errOut)
		}
		return lastLine(out)
	}
	cfgPath := filepath.Join(dir, "lane", "gated.yaml")
	gatedEnroll := func(code, path string) (int, string) {
		t.Helper()
		exit, out, errOut := runCmd(t, gatedBin, nil, "enroll", "--central", c.base, "--code", code, "--config", path)
		return exit, out + errOut
	}

	code := enrollCode("entry-1", "entry")
	if _, err := enrollment.ParseCode(code); err != nil {
		t.Fatalf("the last line of centrald gate enroll is not a code: %q: %v", code, err)
	}
	if exit, out := gatedEnroll(code, cfgPath); exit != 0 || !strings.Contains(out, "answers with a certificate this lane trusts") {
		t.Fatalf("gated enroll: exit %d: %s", exit, out)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("written config: %v, %v; want mode 0600", fi, err)
	}
	written, _ := os.ReadFile(cfgPath)
	_, port, _ := strings.Cut(tlsAddr, ":")
	if !strings.Contains(string(written), `url: "ssl://127.0.0.1:`+port+`"`) {
		t.Fatalf("the config does not point to the TLS listener %s:\n%s", tlsAddr, written)
	}

	// gated with exactly that file; only its local API port is moved off
	// 8081 (tests run side by side), and it runs in the lane's directory
	// (db.path is relative, as under systemd).
	laneDir := filepath.Dir(cfgPath)
	cmd := exec.Command(gatedBin, "--config", cfgPath)
	cmd.Env = append(os.Environ(), "PARKING_HTTP_ADDR=127.0.0.1:0")
	cmd.Dir = laneDir
	g := startCmd(t, cmd)
	waitUntil(t, "the enrolled gate online at centrald over TLS", 20*time.Second, func() bool { return gateOnline(t, c, "entry-1") })
	if s := g.status(); s["gateId"] != nil && s["gateId"] != "entry-1" {
		t.Errorf("gated status: %v", s)
	}

	// The same code again: refused, the file untouched.
	if exit, out := gatedEnroll(code, cfgPath); exit == 0 || !strings.Contains(out, "already used") || !strings.Contains(out, "nothing was written") {
		t.Errorf("second use of the code: exit %d: %s", exit, out)
	}
	// A wrong code (well formed, this central's fingerprint, never issued).
	var wrong enrollment.Code
	rand.Read(wrong.Secret[:])
	right, _ := enrollment.ParseCode(code)
	wrong.Fingerprint = right.Fingerprint
	if exit, out := gatedEnroll(wrong.String(), cfgPath); exit == 0 || !strings.Contains(out, "not known") {
		t.Errorf("wrong code: exit %d: %s", exit, out)
	}
	// A fresh code whose fingerprint is not this central's: refused before
	// anything is sent, so the code stays good.
	fresh := enrollCode("exit-1", "exit")
	tampered, _ := enrollment.ParseCode(fresh)
	rand.Read(tampered.Fingerprint[:])
	if exit, out := gatedEnroll(tampered.String(), cfgPath); exit == 0 || !strings.Contains(out, "does not match the code") {
		t.Errorf("code with another central's fingerprint: exit %d: %s", exit, out)
	}
	if now, _ := os.ReadFile(cfgPath); string(now) != string(written) {
		t.Fatal("a failed gated enroll changed the existing config")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(laneDir, ".*tmp*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// The exit gate enrolls with its code, then runs trusting another CA:
	// it cannot connect (the broker's certificate is not one it trusts);
	// with the file's own CA it can.
	exitPath := filepath.Join(dir, "exit", "gated.yaml")
	if exit, out := gatedEnroll(fresh, exitPath); exit != 0 {
		t.Fatalf("gated enroll exit-1: exit %d: %s", exit, out)
	}
	other, err := brokercert.Ensure(filepath.Join(dir, "other-ca"), "enr", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(gatedBin, "--config", exitPath)
	cmd.Env = append(os.Environ(), "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_CA="+string(other.CAPEM), "PARKING_LOG_LEVEL=debug")
	cmd.Dir = filepath.Dir(exitPath)
	bad := startCmd(t, cmd)
	waitUntil(t, "the gate with the wrong CA refused by TLS", 20*time.Second, func() bool {
		return strings.Contains(bad.logText(), "certificate signed by unknown authority")
	})
	if gateOnline(t, c, "exit-1") || bad.status()["online"] == true {
		t.Fatal("a gate trusting another CA came online")
	}
	bad.kill()
	cmd = exec.Command(gatedBin, "--config", exitPath)
	cmd.Env = append(os.Environ(), "PARKING_HTTP_ADDR=127.0.0.1:0")
	cmd.Dir = filepath.Dir(exitPath)
	startCmd(t, cmd)
	waitUntil(t, "the exit gate online with the enrolled CA", 20*time.Second, func() bool { return gateOnline(t, c, "exit-1") })
}
