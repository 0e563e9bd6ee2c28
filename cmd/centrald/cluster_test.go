package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/internal/childproc"
)

// A clustered broker: three nodes of nats-server (MQTT and clustered
// JetStream, from configs/nats) or of RabbitMQ (the MQTT plugin, from
// configs/rabbitmq), addresses and directories moved to free ports and
// t.TempDir(), with centrald (SQLite, external broker) and two gated
// processes given every node's URL. One node is SIGKILLed while
// reservations are made and paid and the gates send events
// (docs/scaling.md, "A clustered broker").

// rabbitReconnectBound is what a gate or centrald is held to on RabbitMQ
// between the kill of its node and its connection to another one: the 5 s
// a lane is held to with one broker (docs/sync.md). Its sessions live on
// the node a client is connected to, so the other nodes take it at once.
const rabbitReconnectBound = 5 * time.Second

// natsReconnectBound is the same on NATS. It is not 5 s: NATS needs new
// JetStream leaders for whatever the dead node led (raft elections wait 4
// to 9 s, fixed in nats-server) before it takes MQTT connections and QoS 1
// subscriptions again, and attempts made meanwhile time out; measured here
// 1.4 to 52 s (docs/scaling.md, "A clustered broker"). The bound catches
// a client that never leaves the dead node or gives up.
const natsReconnectBound = 120 * time.Second

// clusterNode is one broker process of a test cluster.
type clusterNode struct {
	name string
	mqtt string // host:port of its MQTT listener
	// logDir, if set, holds log files the node writes besides its
	// output (RabbitMQ's), shown with it.
	logDir string
	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	log    strings.Builder
}

// start runs the node's command in its own process group, so that kill
// takes whatever it started (RabbitMQ's start script runs the Erlang VM,
// which runs helpers of its own).
func (n *clusterNode) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	n.cmd = cmd
	w := writerFunc(func(b []byte) (int, error) { n.mu.Lock(); defer n.mu.Unlock(); return n.log.Write(b) })
	n.cmd.Stdout, n.cmd.Stderr = w, w
	n.cmd.SysProcAttr = childproc.Attr()
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(n.kill)
}

// kill sends SIGKILL to the node's process group: its connections close
// without a word, its storage stops mid-write.
func (n *clusterNode) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	}
}

func (n *clusterNode) logText() string {
	n.mu.Lock()
	text := n.log.String()
	n.mu.Unlock()
	if n.logDir != "" {
		files, _ := filepath.Glob(filepath.Join(n.logDir, "*.log"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			text += "\n--- " + filepath.Base(f) + ":\n" + string(b)
		}
	}
	return text
}

// awaitListeners waits until every node's MQTT listener accepts
// connections, failing at once if a node exits.
func awaitListeners(t *testing.T, nodes []*clusterNode, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, n := range nodes {
		for {
			select {
			case <-n.done:
				t.Fatalf("%s exited:\n%s", n.name, n.logText())
			default:
			}
			c, err := net.DialTimeout("tcp", n.mqtt, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not accepting MQTT connections within %s; its log:\n%s", n.name, within, n.logText())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// rewrite replaces each key of repl in a shipped config file by its value
// and fails if one is no longer there, so that the files and this test
// move together.
func rewrite(t *testing.T, path string, repl map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for from, to := range repl {
		if !strings.Contains(conf, from) {
			t.Fatalf("%s no longer contains %q: update this test with it", path, from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	return conf
}

// natsCluster writes the three node configurations from configs/nats with
// free loopback ports and its own store directories, starts the nodes and
// waits until every MQTT listener accepts connections.
func natsCluster(t *testing.T, bin string, env []string) []*clusterNode {
	t.Helper()
	dir := t.TempDir()
	auth, err := os.ReadFile("../../configs/nats/parkgate-auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "parkgate-auth.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	var routes [3]string
	for i := range routes {
		routes[i] = freeAddr(t)
	}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		n := i + 1
		mqtt := freeAddr(t)
		repl := map[string]string{
			fmt.Sprintf("listen: 127.0.0.1:423%d", n):        "listen: " + freeAddr(t),
			fmt.Sprintf("127.0.0.1:1883%d", n):               mqtt,
			fmt.Sprintf("/var/lib/nats/parkgate-mqtt-%d", n): filepath.Join(dir, fmt.Sprintf("store%d", n)),
		}
		for j, r := range routes {
			repl[fmt.Sprintf("127.0.0.1:623%d", j+1)] = r
		}
		conf := rewrite(t, fmt.Sprintf("../../configs/nats/node%d.conf", n), repl)
		path := filepath.Join(dir, fmt.Sprintf("node%d.conf", n))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &clusterNode{name: fmt.Sprintf("node%d", n), mqtt: mqtt}
		cmd := exec.Command(bin, "-c", path)
		cmd.Env = append(os.Environ(), env...)
		nodes[i].start(t, cmd)
	}
	awaitListeners(t, nodes, 30*time.Second)
	return nodes
}

// rabbitCluster writes the three node configurations of configs/rabbitmq
// with free loopback ports, node names of its own (several runs can share
// the machine's epmd) and its own directories, starts the nodes (bin is
// rabbitmq-server; rabbitmqctl is beside it), waits until they form one
// cluster, and creates the users with configs/rabbitmq/parkgate-users.sh.
func rabbitCluster(t *testing.T, bin string, env []string, site string, gates ...string) []*clusterNode {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home") // the Erlang cookie every node and rabbitmqctl share
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(strconv.FormatInt(time.Now().UnixNano(), 36)+"parkgate"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), mustRead(t, "../../configs/rabbitmq/enabled_plugins"), 0o600); err != nil {
		t.Fatal(err)
	}
	tag := "pgt" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	names := make([]string, 3)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d@localhost", tag, i+1)
	}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		n := i + 1
		mqtt := freeAddr(t)
		repl := map[string]string{fmt.Sprintf("127.0.0.1:1884%d", n): mqtt}
		for j, name := range names {
			repl[fmt.Sprintf("parkgate-mqtt-%d@localhost", j+1)] = name
		}
		conf := rewrite(t, fmt.Sprintf("../../configs/rabbitmq/node%d.conf", n), repl)
		confPath := filepath.Join(dir, fmt.Sprintf("node%d.conf", n))
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		_, dist, _ := net.SplitHostPort(freeAddr(t))
		envFile := rewrite(t, fmt.Sprintf("../../configs/rabbitmq/node%d.env", n), map[string]string{
			fmt.Sprintf("parkgate-mqtt-%d@localhost", n):         names[i],
			fmt.Sprintf("DIST_PORT=2568%d", n):                   "DIST_PORT=" + dist,
			fmt.Sprintf("/etc/parkgate/rabbitmq/node%d.conf", n): confPath,
			"/etc/parkgate/rabbitmq/enabled_plugins":             filepath.Join(dir, "enabled_plugins"),
			fmt.Sprintf("/var/lib/rabbitmq/parkgate-mqtt-%d", n): filepath.Join(dir, fmt.Sprintf("data%d", n)),
			fmt.Sprintf("/var/log/rabbitmq/parkgate-mqtt-%d", n): filepath.Join(dir, fmt.Sprintf("log%d", n)),
		})
		envPath := filepath.Join(dir, fmt.Sprintf("node%d.env", n))
		if err := os.WriteFile(envPath, []byte(envFile), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &clusterNode{name: fmt.Sprintf("node%d", n), mqtt: mqtt, logDir: filepath.Join(dir, fmt.Sprintf("log%d", n))}
		nodes[i].cmd = exec.Command(bin)
		nodes[i].cmd.Env = append(os.Environ(), "HOME="+home, "RABBITMQ_CONF_ENV_FILE="+envPath)
	}
	// Node 1 first, the others once it is up, as docs/scaling.md says: in
	// RabbitMQ 3.10 the MQTT plugin's client-id registry is a raft group
	// that the first node forms and the others join, and nodes that all
	// start at once can leave it without a leader (every MQTT login then
	// fails with "client ID registration timed out").
	nodes[0].start(t, nodes[0].cmd)
	awaitListeners(t, nodes[:1], 90*time.Second)
	for _, n := range nodes[1:] {
		n.start(t, n.cmd)
	}
	awaitListeners(t, nodes[1:], 90*time.Second)
	ctlDir := filepath.Dir(bin)
	ctl := func(args ...string) string {
		cmd := exec.Command(filepath.Join(ctlDir, "rabbitmqctl"), append([]string{"-n", names[0]}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl %s: %v\n%s\nnode1's log:\n%s", strings.Join(args, " "), err, out, nodes[0].logText())
		}
		return string(out)
	}
	ctl("await_online_nodes", "3", "--timeout", "60")
	users := exec.Command("../../configs/rabbitmq/parkgate-users.sh", append([]string{names[0], site}, gates...)...)
	users.Env = append(os.Environ(), append(env, "HOME="+home, "PATH="+ctlDir+":"+os.Getenv("PATH"))...)
	if out, err := users.CombinedOutput(); err != nil {
		t.Fatalf("configs/rabbitmq/parkgate-users.sh: %v\n%s", err, out)
	}
	// RabbitMQ's default user (guest/guest, every topic) would let anyone
	// on the machine read every plate and publish as any gate: the
	// script deletes it.
	if err := probeNode(nodes[0], "guest-probe", "guest", "guest"); err == nil || !strings.Contains(err.Error(), "connect:") {
		t.Errorf("guest/guest on a node after parkgate-users.sh: %v, want the login refused", err)
	}
	return nodes
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clusterReady waits until every node takes an MQTT login and a
// subscription as parkgate makes them (QoS 0) and routes a QoS 1 publish
// to it (on NATS: JetStream has its leaders): before that a client's first
// connection may time out on one node and go to the next, and the test
// wants to know which node each client is on.
func clusterReady(t *testing.T, nodes []*clusterNode, user, password string) {
	t.Helper()
	for i, n := range nodes {
		var last error
		deadline := time.Now().Add(60 * time.Second)
		for last = probeNode(n, fmt.Sprintf("cluster-probe-%d", i), user, password); last != nil; last = probeNode(n, fmt.Sprintf("cluster-probe-%d", i), user, password) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not taking a login, a subscription and a publish within 60 s: %v; its log:\n%s", n.name, last, n.logText())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// probeNode logs in to one node, subscribes and publishes to itself, and
// says what failed.
func probeNode(n *clusterNode, id, user, password string) error {
	o := paho.NewClientOptions().AddBroker("tcp://" + n.mqtt).SetClientID(id).
		SetUsername(user).SetPassword(password).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(6 * time.Second) {
		return fmt.Errorf("connect: no CONNACK")
	} else if tok.Error() != nil {
		return fmt.Errorf("connect: %w", tok.Error())
	}
	defer c.Disconnect(0)
	got := make(chan struct{}, 1)
	tok := c.Subscribe("parking/demo/central/probe", 0, func(paho.Client, paho.Message) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("subscribe: no SUBACK")
	} else if tok.Error() != nil {
		return fmt.Errorf("subscribe: %w", tok.Error())
	}
	if tok := c.Publish("parking/demo/central/probe", 1, false, "probe"); !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("publish: no PUBACK")
	} else if tok.Error() != nil {
		return fmt.Errorf("publish: %w", tok.Error())
	}
	select {
	case <-got:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("its own publish not delivered within 5 s")
	}
}

// logEntry is one JSON log line of gated or centrald.
type logEntry struct {
	Time   time.Time `json:"time"`
	Msg    string    `json:"msg"`
	URL    string    `json:"url"`
	Broker string    `json:"broker"`
}

// connectedAfter returns when the daemon's log first says it connected to
// a broker other than dead after since, and to which.
func connectedAfter(p *proc, msg, dead string, since time.Time) (time.Time, string, bool) {
	sc := bufio.NewScanner(strings.NewReader(p.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Msg != msg || !e.Time.After(since) {
			continue
		}
		u := e.URL + e.Broker
		if u != "" && !strings.HasSuffix(u, "//"+dead) {
			return e.Time, u, true
		}
	}
	return time.Time{}, "", false
}

// connectionLog returns the daemon's log lines about its broker
// connection since a moment, for the test's log.
func connectionLog(p *proc, since time.Time) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(p.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEntry
		var lv struct {
			Level, Component string
		}
		json.Unmarshal(sc.Bytes(), &lv)
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Time.After(since) && (lv.Component == "sync" && lv.Level != "INFO" ||
			strings.Contains(e.Msg, "MQTT") || strings.Contains(e.Msg, "mqtt") || strings.Contains(e.Msg, "broker")) {
			b.WriteString("\t" + sc.Text() + "\n")
		}
	}
	return b.String()
}

// connectedTo returns the broker the daemon's log says it connected to
// last.
func connectedTo(p *proc, msg string) string {
	last := ""
	sc := bufio.NewScanner(strings.NewReader(p.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg == msg {
			last = e.URL + e.Broker
		}
	}
	return last
}

// SIGKILL the node that the entry gate (and normally centrald) is on while
// reservations are made and paid and both gates send events: each of them
// reconnects to another node (the time is logged, and bounded by
// the bound of its broker), every event a gate made is stored at central
// exactly once, every paid reservation reaches both gates' caches, and
// the relay goes on with the changes made after the kill.
func TestClusteredBrokerSurvivesNodeSIGKILL(t *testing.T) {
	const site = "demo" // the site configs/nats/parkgate-auth.conf is written for
	pw := map[string]string{"centrald": "centrald-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"entry-1": "entry-1-secret", "exit-1": "exit-1-secret"}
	env := []string{
		"PARKGATE_MQTT_CENTRALD_PASSWORD=" + pw["centrald"],
		"PARKGATE_MQTT_ENTRY_1_PASSWORD=" + pw["entry-1"],
		"PARKGATE_MQTT_EXIT_1_PASSWORD=" + pw["exit-1"],
	}
	t.Run("nats", func(t *testing.T) {
		bin := os.Getenv("PARKING_TEST_NATS_SERVER")
		if bin == "" {
			t.Skip("PARKING_TEST_NATS_SERVER not set (a nats-server 2.10+ binary, e.g. $(go env GOPATH)/bin/nats-server): no NATS cluster to test")
		}
		nodes := natsCluster(t, bin, env)
		clusterReady(t, nodes, "centrald", pw["centrald"])
		survivesNodeSIGKILL(t, nodes, site, pw, natsReconnectBound)
	})
	t.Run("rabbitmq", func(t *testing.T) {
		bin := os.Getenv("PARKING_TEST_RABBITMQ_SERVER")
		if bin == "" {
			t.Skip("PARKING_TEST_RABBITMQ_SERVER not set (RabbitMQ 3.10+'s rabbitmq-server script, e.g. /usr/lib/rabbitmq/bin/rabbitmq-server, rabbitmqctl beside it): no RabbitMQ cluster to test")
		}
		nodes := rabbitCluster(t, bin, env, site, "entry-1", "exit-1")
		clusterReady(t, nodes, "centrald", pw["centrald"])
		survivesNodeSIGKILL(t, nodes, site, pw, rabbitReconnectBound)
	})
}

// survivesNodeSIGKILL is the test of TestClusteredBrokerSurvivesNodeSIGKILL
// on a cluster whose nodes are ready, with each client held to bound
// between the kill and its connection to another node.
func survivesNodeSIGKILL(t *testing.T, nodes []*clusterNode, site string, pw map[string]string, bound time.Duration) {
	// Each client lists every node, in its own order: centrald and the
	// entry gate start with node 1 (the one to die), the exit gate with
	// node 2.
	urls := func(first int) string {
		var u []string
		for i := range nodes {
			u = append(u, "tcp://"+nodes[(first+i)%len(nodes)].mqtt)
		}
		return strings.Join(u, ",")
	}

	dir := t.TempDir()
	central := start(t, dir, "PARKING_SITE="+site, "PARKING_SPOTS_COUNT=60", "PARKING_LOG_LEVEL=info",
		"PARKING_MQTT_EMBEDDED=false", "PARKING_MQTT_URL="+urls(0), "PARKING_MQTT_SHARED=false",
		"PARKING_MQTT_USERNAME=centrald", "PARKING_MQTT_PASSWORD="+pw["centrald"])
	pub := central.must(200, "GET", "/tickets/public-key", "", "")["publicKey"].(string)
	gate := func(id, role string, first int) *proc {
		cmd := exec.Command(gatedBinary(t))
		cmd.Env = append(os.Environ(), "PARKING_SITE="+site, "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_GATE_ID="+id,
			"PARKING_GATE_ROLE="+role, "PARKING_DB_PATH="+filepath.Join(dir, id+".db"), "PARKING_TICKETS_PUBLIC_KEY="+pub,
			"PARKING_MQTT_URL="+urls(first), "PARKING_MQTT_PASSWORD="+pw[id], "PARKING_LOG_FORMAT=json")
		p := launchCmd(t, cmd)
		p.waitServing()
		return p
	}
	entry, exit := gate("entry-1", "entry", 0), gate("exit-1", "exit", 1)
	gates := []*proc{entry, exit}
	for _, g := range gates {
		waitFor(t, "the gates online (connected, central heard)", 60*time.Second, func() bool {
			return g.call("GET", "/v1/status", "", "").body["online"] == true
		})
	}
	waitFor(t, "both gates online at central", 30*time.Second, func() bool {
		var gs []map[string]any
		json.Unmarshal([]byte(central.call("GET", "/gates", adminToken, "").raw), &gs)
		n := 0
		for _, g := range gs {
			if g["online"] == true {
				n++
			}
		}
		return n == 2
	})
	// The node to kill is the entry gate's: normally node 1, with centrald.
	// A client whose first attempt at its first node timed out while the
	// cluster was busy is on another one; every client on the victim is
	// held to the same bound, and the test says who was where.
	type client struct {
		name string
		p    *proc
		msg  string // its log's message for a new connection
	}
	clients := []client{{"centrald", central, "connected to the MQTT broker"},
		{"entry-1", entry, "connected to the broker"}, {"exit-1", exit, "connected to the broker"}}
	var victim *clusterNode
	for _, nd := range nodes {
		if strings.HasSuffix(connectedTo(entry, clients[1].msg), "//"+nd.mqtt) {
			victim = nd
		}
	}
	if victim == nil {
		t.Fatalf("the entry gate's log names no node it is connected to:\n%s", entry.logText())
	}
	var onVictim []client
	for _, c := range clients {
		u := connectedTo(c.p, c.msg)
		t.Logf("%s is connected to %s", c.name, u)
		if strings.HasSuffix(u, "//"+victim.mqtt) {
			onVictim = append(onVictim, c)
		}
	}

	// The writer reserves and pays, and each paid ticket is scanned at both
	// gates (an event each, granted or not); the victim dies a third of
	// the way in, and the writer goes on.
	const n = 30
	type made struct{ id, spot string }
	var paid []made
	events := map[*proc][]string{}
	var killedAt time.Time
	now := time.Now().UTC()
	for i := range n {
		if i == n/3 {
			victim.kill()
			killedAt = time.Now()
			t.Logf("%s (%s) killed", victim.name, victim.mqtt)
		}
		spot := strconv.Itoa(i + 1)
		r := central.must(201, "POST", "/reserve/parking/"+spot, "", windowJSON(now, now.Add(2*time.Hour)))
		pr := central.must(200, "POST", "/pay/parking/"+spot, r["token"].(string), visa)
		paid = append(paid, made{pr["reservationId"].(string), spot})
		b, _ := json.Marshal(map[string]string{"code": pr["ticket"].(string)})
		for _, g := range gates {
			d := g.must(200, "POST", "/v1/sim/scan", "", string(b))
			id, _ := d["eventId"].(string)
			if id == "" {
				t.Fatalf("a scan made no event: %v", d)
			}
			events[g] = append(events[g], id)
		}
	}

	// Each client whose node died is on another node within the bound.
	for _, c := range onVictim {
		var at time.Time
		var to string
		// Watched for longer than the bound, so that a miss is measured
		// and its log shown, not only reported.
		deadline := time.Now().Add(max(bound, 60*time.Second))
		for {
			var ok bool
			if at, to, ok = connectedAfter(c.p, c.msg, victim.mqtt, killedAt); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s connected to no other node within %s of the kill; its connection log since:\n%s",
					c.name, time.Since(killedAt).Round(time.Second), connectionLog(c.p, killedAt))
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := at.Sub(killedAt)
		t.Logf("%s reconnected to %s %s after the kill; its connection log since:\n%s", c.name, to, took.Round(time.Millisecond),
			connectionLog(c.p, killedAt))
		if took > bound {
			t.Errorf("%s reconnected %s after the kill, want within %s", c.name, took, bound)
		}
	}
	// A client on a node that lived may have had to reconnect too (NATS
	// drops a client whose session it cannot keep): logged.
	for _, c := range clients {
		if !slices.Contains(onVictim, c) {
			if _, to, ok := connectedAfter(c.p, c.msg, victim.mqtt, killedAt); ok {
				t.Logf("%s (on a node that lived) reconnected to %s; its connection log:\n%s", c.name, to, connectionLog(c.p, killedAt))
			}
		}
	}

	// Every paid reservation reaches both caches, and each gate holds the
	// change log's head: the relay went on past the kill.
	var head int64
	waitFor(t, "the change log read", 10*time.Second, func() bool {
		var cs []struct {
			Version int64 `json:"version"`
		}
		if json.Unmarshal([]byte(central.call("GET", "/admin/changes?limit=5000", adminToken, "").raw), &cs) != nil || len(cs) == 0 {
			return false
		}
		head = cs[len(cs)-1].Version
		return true
	})
	for _, g := range gates {
		waitFor(t, "the gate holding the change log's head", 60*time.Second, func() bool {
			v, _ := g.call("GET", "/v1/status", "", "").body["cacheVersion"].(float64)
			return int64(v) >= head
		})
	}
	for _, id := range []string{"entry-1", "exit-1"} {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, id+".db")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range paid {
			var state string
			if err := db.QueryRowContext(context.Background(), `SELECT state FROM reservations WHERE id = ?`, m.id).Scan(&state); err != nil {
				t.Errorf("%s: paid reservation %s (spot %s) not in the cache: %v", id, m.id, m.spot, err)
			} else if state != "paid" && state != "taken" && state != "left" { // scanned in and out above
				t.Errorf("%s: reservation %s cached as %q", id, m.id, state)
			}
		}
		db.Close()
	}

	// Every event a gate made is stored at central once: none lost, none
	// doubled, and the gates' outboxes are empty (each was acknowledged).
	for gi, id := range []string{"entry-1", "exit-1"} {
		g := gates[gi]
		waitFor(t, id+"'s outbox drained", 60*time.Second, func() bool {
			v, ok := g.call("GET", "/v1/status", "", "").body["outbox"].(float64)
			return ok && v == 0
		})
		var stored []struct {
			EventID string `json:"eventId"`
		}
		if err := json.Unmarshal([]byte(central.call("GET", "/admin/gate-events?gate="+id+"&limit=1000", adminToken, "").raw), &stored); err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, e := range stored {
			count[e.EventID]++
		}
		for _, e := range events[g] {
			if count[e] != 1 {
				t.Errorf("%s: event %s stored %d times at central, want once", id, e, count[e])
			}
		}
		if len(stored) != len(events[g]) {
			t.Errorf("%s: %d events stored at central, the gate made %d", id, len(stored), len(events[g]))
		}
	}
	t.Logf("%d reservations paid, %d events per gate, change log at %d", len(paid), n, head)
}
