package scripts_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // to read the running demo's gate passwords

	"github.com/parkgate/parkgate/internal/childproc"
	"github.com/parkgate/parkgate/internal/syncbuf"
)

// The quickstart script, run as `make run` runs it, against binaries built
// for the test. A second demo started while one runs must refuse before it
// touches anything: no truncated logs, no rotated gate passwords, nothing
// written to its own data directory but the lock.

func needTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("process test skipped in -short mode")
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the demo script needs %s, which is not installed", tool)
		}
	}
}

func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "../cmd/centrald", "../cmd/gated").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// freePorts returns n ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

type demo struct {
	cmd    *exec.Cmd
	stdout syncbuf.Buffer
	stderr syncbuf.Buffer
	done   chan error
}

func startDemo(t *testing.T, bin, data string, ports []int) *demo {
	t.Helper()
	d := &demo{done: make(chan error, 1)}
	d.cmd = exec.Command("bash", "demo.sh")
	d.cmd.Env = append(os.Environ(),
		"BIN="+bin, "PARKGATE_DEMO_DATA="+data,
		fmt.Sprintf("PARKGATE_DEMO_HTTP_PORT=%d", ports[0]),
		fmt.Sprintf("PARKGATE_DEMO_MQTT_PORT=%d", ports[1]),
		fmt.Sprintf("PARKGATE_DEMO_ENTRY_PORT=%d", ports[2]),
		fmt.Sprintf("PARKGATE_DEMO_EXIT_PORT=%d", ports[3]),
	)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	// A group of its own, so that the test can stop the script and its
	// daemons together (and the script dies with the test binary).
	d.cmd.SysProcAttr = childproc.Attr()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
	return d
}

// refused waits for a demo that must stop on its own with a failure, and
// returns what it said on stderr.
func (d *demo) refused(t *testing.T) string {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		if err == nil {
			t.Fatalf("the second demo exited 0; stdout:\n%s", d.stdout.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the second demo did not stop within 30 s; stdout:\n%s\nstderr:\n%s", d.stdout.String(), d.stderr.String())
	}
	if strings.Contains(d.stdout.String(), "parkgate is running") {
		t.Errorf("the refused demo claimed to run:\n%s", d.stdout.String())
	}
	return d.stderr.String()
}

func waitReady(t *testing.T, d *demo, api string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.stdout.String(), "parkgate is running") {
			resp, err := http.Get(api + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("the demo stopped (%v):\n%s\n%s", err, d.stdout.String(), d.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("the demo did not come up within 90 s:\n%s\n%s", d.stdout.String(), d.stderr.String())
}

// passwordHashes reads the gates' stored broker password hashes from the
// running demo's database (read-only; WAL lets it read beside centrald).
func passwordHashes(t *testing.T, dbPath string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, hex(password_hash) FROM gates ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, h string
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSecondDemoRefusesBeforeTouchingTheFirst(t *testing.T) {
	needTools(t)
	bin := buildBinaries(t)
	data := filepath.Join(t.TempDir(), "demo")
	ports := freePorts(t, 4)
	api := fmt.Sprintf("http://127.0.0.1:%d", ports[0])

	first := startDemo(t, bin, data, ports)
	waitReady(t, first, api)
	hashes := passwordHashes(t, filepath.Join(data, "centrald.db"))
	if len(hashes) != 2 {
		t.Fatalf("gates in the demo database: %v, want entry-1 and exit-1", hashes)
	}
	logBefore, err := os.ReadFile(filepath.Join(data, "centrald.log"))
	if err != nil || len(logBefore) == 0 {
		t.Fatalf("centrald.log of the running demo: %d bytes, %v", len(logBefore), err)
	}

	t.Run("same data directory", func(t *testing.T) {
		msg := startDemo(t, bin, data, freePorts(t, 4)).refused(t)
		if !strings.Contains(msg, "another demo is running on "+data) {
			t.Errorf("refusal does not say the data directory is in use:\n%s", msg)
		}
	})
	t.Run("same ports", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "demo")
		msg := startDemo(t, bin, other, ports).refused(t)
		for _, p := range ports {
			if !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d is held by", p)) {
				t.Errorf("refusal does not name port %d:\n%s", p, msg)
			}
		}
		if _, err := exec.LookPath("ss"); err == nil && !strings.Contains(msg, `"centrald"`) {
			t.Errorf("refusal does not name centrald as the holder of the API port:\n%s", msg)
		}
		entries, _ := os.ReadDir(other)
		for _, e := range entries {
			if e.Name() != "demo.lock" {
				t.Errorf("the refused demo wrote %s", e.Name())
			}
		}
	})

	// The first demo is untouched: its log kept, its gates' passwords the
	// same, still answering.
	logAfter, err := os.ReadFile(filepath.Join(data, "centrald.log"))
	if err != nil || !bytes.HasPrefix(logAfter, logBefore) {
		t.Errorf("centrald.log of the running demo was rewritten (%d bytes before, %d after)", len(logBefore), len(logAfter))
	}
	if after := passwordHashes(t, filepath.Join(data, "centrald.db")); fmt.Sprint(after) != fmt.Sprint(hashes) {
		t.Errorf("the running gates' broker passwords changed")
	}
	resp, err := http.Get(api + "/parkings")
	if err != nil {
		t.Fatalf("the first demo stopped answering: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /parkings on the first demo: %d", resp.StatusCode)
	}
}

// TestDemoDaemonsDieWithTheScript: a demo killed outright (kill -9 of the
// script, which runs no trap) leaves no daemon behind holding its ports.
func TestDemoDaemonsDieWithTheScript(t *testing.T) {
	needTools(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("the demo ties its daemons to itself with util-linux's setpriv, which is not installed")
	}
	bin := buildBinaries(t)
	ports := freePorts(t, 4)
	api := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	d := startDemo(t, bin, filepath.Join(t.TempDir(), "demo"), ports)
	waitReady(t, d, api)

	script := d.cmd.Process.Pid
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", script, script))
	if err != nil {
		t.Fatal(err)
	}
	var daemons []int
	for _, f := range strings.Fields(string(raw)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("the script's children: %q", raw)
		}
		daemons = append(daemons, pid)
	}
	if len(daemons) != 3 {
		t.Fatalf("the script's children: %v, want centrald and two gates", daemons)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil { // the script alone, not its group
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range daemons {
		for childproc.Running(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("daemon %d still runs 10 s after its script was killed", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), time.Second); err == nil {
		c.Close()
		t.Errorf("the API's port %d still answers after the demo was killed", ports[0])
	}
}
