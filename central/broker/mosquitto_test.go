package broker

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/internal/childproc"
	"github.com/parkgate/parkgate/internal/syncbuf"
)

// TestMosquittoWithShippedConfig runs the machine's Mosquitto with
// configs/mosquitto.conf and configs/mosquitto.acl (rewritten only for a
// free loopback port and temporary file paths, the ACL for the test's
// site) and checks the rules that matter: a gate's credentials cannot
// publish or read under another gate's topics, and a burst past
// Mosquitto's default queue limits arrives whole. The system's own
// Mosquitto (on 1883) is never touched.
func TestMosquittoWithShippedConfig(t *testing.T) {
	addr := startMosquitto(t)

	t.Run("authentication", func(t *testing.T) {
		mustDial(t, gate(addr, "gate-a"))
		for name, o := range map[string]*paho.ClientOptions{
			"bad password": clientOpts(addr, "gate-a", "gate-a", "secret-b"),
			"unknown gate": clientOpts(addr, "gate-x", "gate-x", "secret-a"),
			"anonymous":    clientOpts(addr, "anon", "", ""),
		} {
			if c, err := dial(t, o); err == nil {
				c.Disconnect(0)
				t.Errorf("%s: connection accepted", name)
			}
		}
	})

	t.Run("gate cannot publish under another gate", func(t *testing.T) {
		c := mustDial(t, central(addr, "centrald-pub"))
		all := subscribe(t, c, topic("#"))
		a := mustDial(t, gate(addr, "gate-a"))
		// Mosquitto acknowledges a refused QoS 1 publish (MQTT 3.1.1 has no
		// way to say no) and drops it; gate-a's own message, sent after
		// them on the same connection, shows they have been processed.
		for _, tp := range []string{"gates/gate-b/events", "gates/gate-b/status", "central/changes", "gates/gate-a/in/cmd"} {
			publish(t, a, topic(tp), 0, false, "forged")
			publish(t, a, topic(tp), 1, false, "forged")
		}
		publish(t, a, topic("gates/gate-a/events"), 1, false, "own")
		if m := all.next(t); string(m.Payload()) != "own" || m.Topic() != topic("gates/gate-a/events") {
			t.Fatalf("central got %s %q, want gate-a's own event", m.Topic(), m.Payload())
		}
		all.none(t, 300*time.Millisecond)
	})

	t.Run("gate cannot read another gate", func(t *testing.T) {
		c := mustDial(t, central(addr, "centrald-sub"))
		a := mustDial(t, gate(addr, "gate-a"))
		var mu sync.Mutex
		var seen []string
		record := func(_ paho.Client, m paho.Message) {
			mu.Lock()
			seen = append(seen, m.Topic()+" "+string(m.Payload()))
			mu.Unlock()
		}
		for _, f := range []string{topic("gates/gate-b/in/#"), topic("gates/+/in/#"), topic("#"), "#"} {
			// Mosquitto may grant the subscription; what counts is that
			// nothing of gate-b's is delivered through it.
			if tok := a.Subscribe(f, 1, record); !tok.WaitTimeout(wait) {
				t.Fatalf("subscribe %s timed out", f)
			}
		}
		own := subscribe(t, a, topic("gates/gate-a/in/#"))
		changes := subscribe(t, a, topic("central/#"))
		publish(t, c, topic("gates/gate-b/in/cmd"), 1, false, "for b")
		publish(t, c, topic("gates/gate-a/in/cmd"), 1, false, "for a")
		publish(t, c, topic("central/changes"), 1, false, "changes")
		if m := own.next(t); string(m.Payload()) != "for a" {
			t.Fatalf("gate-a got %q", m.Payload())
		}
		if m := changes.next(t); string(m.Payload()) != "changes" {
			t.Fatalf("gate-a got %q", m.Payload())
		}
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for _, m := range seen {
			if strings.Contains(m, "gate-b") {
				t.Errorf("gate-a received gate-b's message: %s", m)
			}
		}
	})

	t.Run("retained status and will", func(t *testing.T) {
		raw := make(chan net.Conn, 1)
		a := mustDial(t, gate(addr, "gate-a").
			SetWill(topic("gates/gate-a/status"), `{"v":1,"online":false,"session":7}`, 1, true).
			SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
				c, err := net.Dial("tcp", u.Host)
				if err == nil {
					raw <- c
				}
				return c, err
			}))
		publish(t, a, topic("gates/gate-a/status"), 1, true, `{"v":1,"online":true,"session":7}`)
		c := mustDial(t, central(addr, "centrald-status"))
		status := subscribe(t, c, topic("gates/gate-a/status"))
		if m := status.next(t); !m.Retained() || string(m.Payload()) != `{"v":1,"online":true,"session":7}` {
			t.Fatalf("got retained=%v %q", m.Retained(), m.Payload())
		}
		(<-raw).Close()
		if m := status.next(t); string(m.Payload()) != `{"v":1,"online":false,"session":7}` {
			t.Fatalf("will: got %q", m.Payload())
		}
	})

	t.Run("will on another gate's status is dropped", func(t *testing.T) {
		// Mosquitto accepts the connection (the embedded broker refuses
		// it) but checks the will against the ACL when it fires.
		c := mustDial(t, central(addr, "centrald-will"))
		status := subscribe(t, c, topic("gates/gate-b/status"))
		raw := make(chan net.Conn, 1)
		o := gate(addr, "gate-a").
			SetWill(topic("gates/gate-b/status"), `{"v":1,"online":false,"session":99}`, 1, true).
			SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
				c, err := net.Dial("tcp", u.Host)
				if err == nil {
					raw <- c
				}
				return c, err
			})
		if _, err := dial(t, o); err == nil {
			(<-raw).Close()
		}
		status.none(t, 500*time.Millisecond)
	})

	t.Run("burst past the default queue", func(t *testing.T) {
		// The subscriber holds its first message until every publish is
		// acknowledged, so the broker must queue the rest: with
		// Mosquitto's defaults (20 in flight + 1000 queued) all but 1020
		// were dropped.
		const n = 12000
		var got atomic.Int64
		all := make(chan struct{})
		release := make(chan struct{})
		sub := mustDial(t, central(addr, "centrald-burst").SetOrderMatters(true))
		tok := sub.Subscribe(topic("gates/gate-b/events"), 1, func(paho.Client, paho.Message) {
			<-release
			if got.Add(1) == n {
				close(all)
			}
		})
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		b := mustDial(t, gate(addr, "gate-b"))
		pad := strings.Repeat("x", 180)
		toks := make([]paho.Token, n)
		for i := range n {
			toks[i] = b.Publish(topic("gates/gate-b/events"), 1, false, fmt.Sprintf(`{"v":1,"seq":%d,"pad":%q}`, i, pad))
		}
		for i, tok := range toks {
			if !tok.WaitTimeout(wait) || tok.Error() != nil {
				close(release)
				t.Fatalf("publish %d: %v", i, tok.Error())
			}
		}
		close(release)
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			t.Fatalf("subscriber got %d of %d messages", got.Load(), n)
		}
	})
}

// startMosquitto starts /usr/sbin/mosquitto with the shipped files on a
// free loopback port and returns its address; the process is killed when
// the test ends.
func startMosquitto(t *testing.T) string {
	t.Helper()
	const bin = "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Mosquitto at %s: %v", bin, err)
	}
	passwdBin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skipf("no mosquitto_passwd: %v", err)
	}

	// Mosquitto started as root drops to the "mosquitto" user, which must
	// reach these files: a world-traversable directory of its own rather
	// than t.TempDir (0700 parents).
	dir, err := os.MkdirTemp("", "parkgate-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	conf := string(readShipped(t, "mosquitto.conf"))
	for _, r := range []struct{ re, repl string }{
		{`(?m)^listener 1883 127\.0\.0\.1$`, "listener " + strconv.Itoa(port) + " 127.0.0.1"},
		{`(?m)^password_file .*$`, "password_file " + filepath.Join(dir, "passwd")},
		{`(?m)^acl_file .*$`, "acl_file " + filepath.Join(dir, "acl")},
		{`(?m)^persistence_location .*$`, "persistence_location " + dir + "/"},
	} {
		re := regexp.MustCompile(r.re)
		if n := len(re.FindAllString(conf, -1)); n != 1 {
			t.Fatalf("configs/mosquitto.conf: %d lines match %s, want 1", n, r.re)
		}
		conf = re.ReplaceAllLiteralString(conf, r.repl)
	}
	acl := string(readShipped(t, "mosquitto.acl"))
	if !strings.Contains(acl, "parking/demo/") {
		t.Fatal("configs/mosquitto.acl: no parking/demo/ to substitute")
	}
	acl = strings.ReplaceAll(acl, "parking/demo/", "parking/"+testSite+"/")
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mosquitto.conf", conf)
	write("acl", acl)

	pw := filepath.Join(dir, "passwd")
	users := []string{centralUser, centralPassword, "gate-a", passwords["gate-a"], "gate-b", passwords["gate-b"]}
	for i := 0; i < len(users); i += 2 {
		args := []string{"-b", pw, users[i], users[i+1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwdBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %s: %v\n%s", users[i], err, out)
		}
	}
	if os.Geteuid() == 0 {
		chownTo(t, dir, "mosquitto", "nobody")
	}

	var out syncbuf.Buffer
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(wait)
	for {
		select {
		case <-exited:
			t.Fatalf("mosquitto exited:\n%s", out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readShipped(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// freePort asks the kernel for a free loopback port. Mosquitto binds it
// a moment later: another process could take it in between, which the
// wait for the listener then reports.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// chownTo gives dir and its files to the first existing user of names:
// the one Mosquitto switches to when started as root.
func chownTo(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, name := range names {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		err = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Skip("running as root and no mosquitto or nobody user to run Mosquitto as")
}
