package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkgate/parkgate/internal/enrollment"
)

// `centrald gate enroll` prints a code as its last line, creates the
// enrollment key (mode 0600) whose fingerprint the code carries, and
// refuses what gate add refuses, and an external broker.
func TestGateEnrollCommand(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PARKING_DB_DSN=" + filepath.Join(dir, "c.db"), "PARKING_ENROLL_KEY_FILE=" + filepath.Join(dir, "enroll.key")}
	var out, errb strings.Builder
	if code := run([]string{"gate", "enroll", "entry-1", "--role", "entry"}, env, &out, &errb); code != exitOK {
		t.Fatalf("gate enroll: %d %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	c, err := enrollment.ParseCode(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if !strings.Contains(out.String(), "gated enroll --central") || !strings.Contains(errb.String(), "mqtt.tls.listen is empty") {
		t.Errorf("stdout %q, stderr %q: want the gated command and a warning about no TLS", out.String(), errb.String())
	}
	fi, err := os.Stat(filepath.Join(dir, "enroll.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("enroll.key: %v %v", fi, err)
	}
	out.Reset()
	run([]string{"gate", "enroll", "exit-1", "--role", "exit"}, env, &out, &errb)
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	c2, err := enrollment.ParseCode(lines[len(lines)-1])
	if err != nil || c2.Fingerprint != c.Fingerprint || c2.Secret == c.Secret {
		t.Fatalf("second code: %v; want the same fingerprint and a new secret", err)
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"gate", "enroll", "new-1"}, "", "needs one"},
		{[]string{"gate", "enroll", "new-1", "--role", "out"}, "", "want entry or exit"},
		{[]string{"gate", "enroll", "Bad Id", "--role", "entry"}, "", "gate id"},
		{[]string{"gate", "enroll", "new-1", "--role", "entry"}, "PARKING_MQTT_EMBEDDED=false", "embedded broker"},
	} {
		out.Reset()
		errb.Reset()
		e := append([]string{}, env...)
		if tc.env != "" {
			e = append(e, tc.env)
		}
		if code := run(tc.args, e, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v %s: exit %d, stderr %q; want 2 and %q", tc.args, tc.env, code, errb.String(), tc.want)
		}
		if strings.TrimSpace(out.String()) != "" {
			t.Errorf("%v: printed %q", tc.args, out.String())
		}
	}
}
