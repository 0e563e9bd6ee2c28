package leader

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func dsn(t *testing.T) string {
	t.Helper()
	d := os.Getenv("PARKING_TEST_POSTGRES_DSN")
	if d == "" {
		t.Skip("PARKING_TEST_POSTGRES_DSN not set: leader election needs a PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return d
}

// instance is one Lock served until stop.
type instance struct {
	lock   *Lock
	cancel context.CancelFunc
	done   chan struct{}
}

func run(t *testing.T, dsn string, key int64) *instance {
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{lock: &Lock{DSN: dsn, Key: key, Retry: 10 * time.Millisecond, Check: 20 * time.Millisecond}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		if err := in.lock.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() { in.cancel(); <-in.done }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func holders(ins []*instance) (n int, who *instance) {
	for _, in := range ins {
		if in.lock.Held() {
			n++
			who = in
		}
	}
	return n, who
}

// Exactly one of three instances leads; when it stops, another takes over;
// when the leader's database session is killed under it (as when its host
// dies), it stops believing it leads and another takes over.
func TestOneLeaderAndFailover(t *testing.T) {
	d := dsn(t)
	key := Key(t.Name() + strconv.FormatInt(time.Now().UnixNano(), 10))
	ins := []*instance{run(t, d, key), run(t, d, key), run(t, d, key)}
	waitFor(t, "a leader", func() bool { n, _ := holders(ins); return n == 1 })
	// Stable: for a while, never two.
	for range 20 {
		if n, _ := holders(ins); n != 1 {
			t.Fatalf("%d holders", n)
		}
		time.Sleep(5 * time.Millisecond)
	}

	_, first := holders(ins)
	first.stop()
	if first.lock.Held() {
		t.Fatal("a stopped instance still says it leads")
	}
	rest := make([]*instance, 0, 2)
	for _, in := range ins {
		if in != first {
			rest = append(rest, in)
		}
	}
	waitFor(t, "a new leader after a clean stop", func() bool { n, _ := holders(rest); return n == 1 })

	// Kill the leader's backend, as PostgreSQL does when the client's
	// host is gone.
	_, second := holders(rest)
	conn, err := pgx.Connect(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	err = conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1`, key).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminating the holder's backend: %d, %v", killed, err)
	}
	var third *instance
	waitFor(t, "the other instance leading after the holder's session died", func() bool {
		n, who := holders(rest)
		third = who
		return n == 1 && who != second
	})
	// The killed session reconnects and stays a follower.
	for range 20 {
		if n, _ := holders(rest); n != 1 || !third.lock.Held() {
			t.Fatalf("after failover: %d holders", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBadDSN(t *testing.T) {
	l := &Lock{DSN: "postgres://%zz"}
	if err := l.Serve(context.Background()); err == nil {
		t.Fatal("Serve with an unparsable DSN returned nil")
	}
}

func TestKeyDependsOnName(t *testing.T) {
	if Key("a") == Key("b") || Key("a") != Key("a") {
		t.Fatal("Key is not a function of the name")
	}
}
