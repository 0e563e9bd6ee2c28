// Package leader elects the one centrald instance that relays the change
// log to the gates when several instances share a PostgreSQL database. The
// leader is whoever holds a session-level advisory lock, on a connection
// kept for nothing else: when that instance dies, its connection closes,
// PostgreSQL releases the lock at once, and the next instance to try takes
// it over.
//
// The lock decides who relays, not what is true: every instance reads the
// same change log, so two instances that both believe they lead for a
// moment (a holder whose connection died unnoticed) publish the same
// versions twice, which gates ignore. That is why a holder may keep
// believing for up to Check after it lost the lock, and why nothing here
// needs fencing tokens.
package leader

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/clock"
)

// Defaults for Lock's zero fields.
const (
	// DefaultRetry is how often a follower tries to take the lock: the
	// longest a relay stays without a leader after the leader died.
	DefaultRetry = 250 * time.Millisecond
	// DefaultCheck is how often the holder checks that its connection
	// (and with it the lock) is still there.
	DefaultCheck = time.Second
	// queryTimeout bounds one statement on the lock's connection.
	queryTimeout = 3 * time.Second
	// reconnectMax caps the backoff between failed connections.
	reconnectMax = 5 * time.Second
)

// Key returns the advisory-lock key of a name: sites sharing one database
// elect one relay each.
func Key(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("parkgate/leader/" + name))
	return int64(h.Sum64())
}

// Lock is a leadership held through a PostgreSQL advisory lock. Run it with
// Serve; Held may be called from any goroutine.
type Lock struct {
	// DSN is the database URL (the same as the store's).
	DSN string
	// Key is the advisory-lock key (see Key).
	Key int64
	// Retry and Check override DefaultRetry and DefaultCheck.
	Retry, Check time.Duration
	// Clock paces the loop (nil: the real clock).
	Clock clock.Clock
	// Log may be nil.
	Log *slog.Logger

	held atomic.Bool
}

// Held reports whether this instance holds the lock (as of its last check).
func (l *Lock) Held() bool { return l.held.Load() }

// Leader is Held in the form centralsync.Config.Leader takes.
func (l *Lock) Leader(context.Context) bool { return l.Held() }

// Serve keeps a connection open and tries for the lock until ctx ends; then
// it releases the lock (closing the connection would too) and returns nil.
// Database failures are logged and retried; Serve fails only on a DSN it
// cannot parse.
func (l *Lock) Serve(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(l.DSN)
	if err != nil {
		return fmt.Errorf("leader: db.dsn: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	clk := l.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "leader")
	retry, check := orDefault(l.Retry, DefaultRetry), orDefault(l.Check, DefaultCheck)

	var backoff time.Duration
	for {
		err := l.session(ctx, cfg, clk, log, retry, check)
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(max(2*backoff, retry), reconnectMax)
		log.Warn("leader election connection failed; retrying", "err", err, "retry_in", backoff)
		if !clock.Sleep(ctx, clk, backoff) {
			return nil
		}
	}
}

// session runs one connection: try for the lock every retry, and once held
// check the connection every check. It returns when the connection fails
// or ctx ends, never holding the lock.
func (l *Lock) session(ctx context.Context, cfg *pgx.ConnConfig, clk clock.Clock, log *slog.Logger, retry, check time.Duration) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if l.held.Swap(false) {
			log.Info("gave up the relay leadership")
		}
		cctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		// Closing the session releases the lock as well; the explicit
		// unlock just makes a clean shutdown's hand-over not wait for
		// the server to notice the closed socket.
		_, _ = conn.Exec(cctx, `SELECT pg_advisory_unlock_all()`)
		_ = conn.Close(cctx)
	}()
	// If this host vanishes (power cut, partition), the server keeps the
	// lock until it notices the connection is dead; these make it notice
	// within about 15 s instead of the kernel's default two hours.
	if err := l.exec(ctx, conn, `SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 5`); err != nil {
		return err
	}
	for {
		if !l.held.Load() {
			got, err := l.try(ctx, conn)
			if err != nil {
				return err
			}
			if got {
				l.held.Store(true)
				log.Info("took the relay leadership")
			}
		} else if err := l.exec(ctx, conn, `SELECT 1`); err != nil {
			return fmt.Errorf("checking the held lock: %w", err)
		}
		wait := retry
		if l.held.Load() {
			wait = check
		}
		if !clock.Sleep(ctx, clk, wait) {
			return ctx.Err()
		}
	}
}

func (l *Lock) try(ctx context.Context, conn *pgx.Conn) (bool, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var got bool
	if err := conn.QueryRow(qctx, `SELECT pg_try_advisory_lock($1)`, l.Key).Scan(&got); err != nil {
		return false, fmt.Errorf("trying the lock: %w", err)
	}
	return got, nil
}

func (l *Lock) exec(ctx context.Context, conn *pgx.Conn, sql string) error {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	_, err := conn.Exec(qctx, sql)
	if err != nil && errors.Is(qctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", queryTimeout, err)
	}
	return err
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
