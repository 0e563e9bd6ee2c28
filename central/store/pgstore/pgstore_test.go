package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore/pgtest"
	"github.com/parkgate/parkgate/central/store/storetest"
	"github.com/parkgate/parkgate/internal/migration"
)

// open opens a store on dsn, closed when the test ends (before its schema
// is dropped: cleanups run last registered first).
func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	pgtest.BaseDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		dsn, _ := pgtest.Schema(t)
		return open(t, dsn)
	})
}

var t0 = time.Date(2030, 6, 3, 8, 0, 0, 0, time.UTC)

// TestConcurrentOpen starts several instances at once on an empty schema:
// each migration is applied exactly once and every Open succeeds.
func TestConcurrentOpen(t *testing.T) {
	dsn, _ := pgtest.Schema(t)
	const n = 5
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(context.Background(), dsn)
		})
	}
	close(start)
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
	// Numbers may have gaps (branches take numbers ahead of merging): the
	// highest one is the last applied.
	names, err := migration.Read(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	last := names[len(names)-1].Version
	var count, maxV int
	if err := stores[0].pool.QueryRow(context.Background(),
		`SELECT count(*), max(version) FROM schema_migrations`).Scan(&count, &maxV); err != nil {
		t.Fatal(err)
	}
	if count != len(names) || maxV != last {
		t.Errorf("%d migrations recorded (max %d), want %d (max %d)", count, maxV, len(names), last)
	}
	// The instances work on the one schema.
	if err := stores[1].SetSpots(context.Background(), []string{"1"}, t0); err != nil {
		t.Fatal(err)
	}
	if ok, err := stores[4].Spot(context.Background(), "1"); !ok || err != nil {
		t.Errorf("Spot on another instance = %v, %v", ok, err)
	}
	// Opening again applies nothing.
	open(t, dsn)
	var again int
	stores[0].pool.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&again)
	if again != count {
		t.Errorf("reopen: %d migrations recorded, was %d", again, count)
	}
}

// TestConcurrentOpenFreshDatabase starts several instances at once on a
// database without btree_gist: they must not race on CREATE EXTENSION
// (two sessions creating one extension at once fail with a unique
// violation), which the migration lock prevents. Needs CREATEDB; skipped
// without it.
func TestConcurrentOpenFreshDatabase(t *testing.T) {
	base := pgtest.BaseDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	db := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+db); err != nil {
		t.Skipf("cannot create a database: %v", err)
	}
	defer func() {
		if _, err := conn.Exec(ctx, `DROP DATABASE `+db+` WITH (FORCE)`); err != nil {
			t.Error(err)
		}
	}()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 5 {
		wg.Go(func() {
			<-start
			s, err := Open(ctx, u.String())
			if err != nil {
				t.Errorf("Open #%d: %v", i, err)
				return
			}
			s.Close()
		})
	}
	close(start)
	wg.Wait()
	check, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close(ctx)
	var schema string
	if err := check.QueryRow(ctx, `SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'btree_gist'`).Scan(&schema); err != nil || schema != "public" {
		t.Errorf("btree_gist in %q, %v; want it in public", schema, err)
	}
}

// TestConcurrentSetSpots: instances starting at once each set the site's
// spots; each spot is logged as added once.
func TestConcurrentSetSpots(t *testing.T) {
	dsn, _ := pgtest.Schema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		s := open(t, dsn)
		wg.Go(func() {
			if err := s.SetSpots(ctx, []string{"1", "2", "3"}, t0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	cs, err := open(t, dsn).Changes(ctx, 0, 0)
	if err != nil || len(cs) != 3 {
		t.Errorf("changes = %+v, %v; want 3 spot.added", cs, err)
	}
}

// TestSearchPathWithoutPublic: the overlap constraint needs btree_gist's
// operator class, which PostgreSQL finds whatever the search_path, so a
// site kept in a schema of its own works without public on its path.
func TestSearchPathWithoutPublic(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	s := open(t, pgtest.WithSearchPath(t, dsn, schema))
	ctx := context.Background()
	if err := s.SetSpots(ctx, []string{"1"}, t0); err != nil {
		t.Fatal(err)
	}
	r := reservation.Reservation{ID: "a", SpotID: "1", State: reservation.Paid, Source: reservation.SourceDriver,
		From: t0, Until: t0.Add(time.Hour)}
	if err := s.Write(ctx, func(tx store.Tx) error { return tx.Insert(r) }); err != nil {
		t.Fatal(err)
	}
	r.ID = "b"
	err := s.Write(ctx, func(tx store.Tx) error { return tx.Insert(r) })
	if !errors.Is(err, store.ErrOverlap) {
		t.Errorf("overlapping insert: %v", err)
	}
}

// TestGuardWithoutStoreCode checks the rules live in the schema: raw SQL
// that bypasses Tx still cannot double-book or book a retired spot.
func TestGuardWithoutStoreCode(t *testing.T) {
	dsn, _ := pgtest.Schema(t)
	s := open(t, dsn)
	ctx := context.Background()
	if err := s.SetSpots(ctx, []string{"1", "2"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSpots(ctx, []string{"1"}, t0); err != nil {
		t.Fatal(err)
	}
	ins := `INSERT INTO reservations (id, spot_id, state, source, reserved_from, reserved_until)
		VALUES ($1, $2, 'paid', 'driver', $3, $4)`
	raw := func(id, spot string, from, until float64) error {
		_, err := s.pool.Exec(ctx, ins, id, spot, t0.Add(time.Duration(from*float64(time.Hour))),
			t0.Add(time.Duration(until*float64(time.Hour))))
		if err != nil {
			return mapErr(err, "raw", nil)
		}
		return nil
	}
	if err := raw("a", "1", 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := raw("b", "1", 1.5, 2.5); !errors.Is(err, store.ErrOverlap) {
		t.Errorf("raw overlapping insert: %v", err)
	}
	if err := raw("c", "1", 2, 3); err != nil {
		t.Errorf("adjacent raw insert: %v", err)
	}
	if err := raw("d", "2", 5, 6); !errors.Is(err, store.ErrUnknownSpot) {
		t.Errorf("raw insert on a retired spot: %v", err)
	}
	if err := raw("e", "9", 5, 6); !errors.Is(err, store.ErrUnknownSpot) {
		t.Errorf("raw insert on an unknown spot: %v", err)
	}
	if err := raw("f", "1", 7, 7); err == nil {
		t.Error("an empty window was stored")
	}
}

// TestRacingInstances: 64 clients on two instances book overlapping
// windows of three spots at once, with commits made slow (commit_delay, as
// on a loaded disk) so that transactions stay in progress long enough to
// collide. Whatever the mode, no two live reservations overlap, no window
// has two winners, and every created reservation is logged once.
//
//   - "spot lock", as shipped: every call books or gets ErrOverlap, each
//     contested window has exactly one winner, and no transaction is run
//     twice: the spot lock leaves nothing to deadlock.
//   - "two spots": bookings of two spots at once taken in cyclic orders,
//     which collide whatever the locks; the retry takes its spots in id
//     order, so none needs more than two runs.
//   - "no spot lock": the overlap constraint alone still refuses every
//     double booking. But inserts of overlapping windows then wait on each
//     other's uncommitted rows and deadlock, and the retries can collide
//     again (each check may meet another retry's row before the winner's),
//     so some callers can get a deadlock error after maxWriteAttempts runs
//     (seen under CI's load). That is why Insert and Update take the spot
//     lock; this mode asserts only what the constraint gives.
func TestRacingInstances(t *testing.T) {
	for _, c := range []struct {
		name       string
		noSpotLock bool
		twoSpots   bool
	}{{"spot lock", false, false}, {"no spot lock", true, false}, {"two spots", false, true}} {
		t.Run(c.name, func(t *testing.T) { testRacing(t, c.noSpotLock, c.twoSpots) })
	}
}

// slowCommits returns dsn with commits delayed by commit_delay, and
// deadlocks detected after 100ms rather than deadlock_timeout's default 1s
// (so that the no-spot-lock mode's deadlocks cost seconds, not tens of
// them). Only a superuser may change either; for another user it returns
// dsn as is.
func slowCommits(t *testing.T, dsn string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var super string
	if err := conn.QueryRow(ctx, `SELECT current_setting('is_superuser')`).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super != "on" {
		t.Logf("not a superuser: commits are not slowed, deadlock_timeout is the server's")
		return dsn
	}
	// commit_delay in µs; it applies when 5 other transactions are open.
	return pgtest.WithSettings(t, dsn, "commit_delay", "30000", "deadlock_timeout", "100ms")
}

func testRacing(t *testing.T, noSpotLock, twoSpots bool) {
	ctx := context.Background()
	dsn, _ := pgtest.Schema(t)
	dsn = slowCommits(t, dsn)
	a, b := open(t, dsn), open(t, dsn)
	a.noSpotLock, b.noSpotLock = noSpotLock, noSpotLock
	spots := []string{"1", "2", "3"}
	if err := a.SetSpots(ctx, spots, t0); err != nil {
		t.Fatal(err)
	}
	const (
		clients = 64
		slots   = 4 // contested windows per spot, far enough apart not to overlap
		rounds  = 3
	)
	// A booking takes one spot, or (twoSpots) spot g and the next one,
	// in one transaction, half of them in the opposite order. Its
	// windows overlap those of the other bookings of its group and slot
	// (they all contain the slot's middle) but no others': group g's
	// windows start at slot*10h + g*3h + (0, 15 or 30 min) and last 2h.
	type key struct{ group, slot int }
	wins := map[key][]string{}
	var (
		mu                 sync.Mutex
		booked, overlapped int
		gaveUp             int // deadlocked on every run (no spot lock only)
		mostRuns           int // of one Write's fn
	)
	start := time.Now()
	for round := range rounds {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range clients {
			s := a
			if i%2 == 1 {
				s = b
			}
			k := key{i % len(spots), (i/len(spots))%slots + round*slots}
			from := t0.Add(time.Duration(k.slot*10+k.group*3)*time.Hour + time.Duration(i%3)*15*time.Minute)
			var rs []reservation.Reservation
			for j, spot := range []string{spots[k.group], spots[(k.group+1)%len(spots)]} {
				if j == 1 && !twoSpots {
					break
				}
				rs = append(rs, reservation.Reservation{ID: fmt.Sprintf("r%d-%02d-%d", round, i, j), SpotID: spot,
					State: reservation.Reserved, Source: reservation.SourceDriver, From: from, Until: from.Add(2 * time.Hour),
					CreatedAt: t0})
			}
			if i%4 >= 2 {
				slices.Reverse(rs)
			}
			checkFirst := i%4 == 0 || i%4 == 3 // some look before they leap, as booking does
			wg.Go(func() {
				<-gate
				runs := 0
				err := s.Write(ctx, func(tx store.Tx) error {
					runs++
					for _, r := range rs {
						if checkFirst {
							live, err := tx.Live(r.SpotID, r.Window())
							if err != nil {
								return err
							}
							if len(live) > 0 {
								return store.ErrOverlap
							}
						}
						if err := tx.Insert(r); err != nil {
							return err
						}
						if err := tx.Log(store.Change{At: t0, Kind: store.KindCreated, SpotID: r.SpotID, ReservationID: r.ID,
							Actor: "driver", Reservation: &r}); err != nil {
							return err
						}
					}
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				mostRuns = max(mostRuns, runs)
				switch {
				case err == nil:
					booked += len(rs)
					wins[k] = append(wins[k], rs[0].ID)
				case errors.Is(err, store.ErrOverlap):
					overlapped++
				case noSpotLock && retryable(err) && runs == maxWriteAttempts:
					gaveUp++
				default:
					t.Errorf("%s: %v", rs[0].ID, err)
				}
			})
		}
		close(gate)
		wg.Wait()
	}
	elapsed := time.Since(start)
	perBooking := 1
	if twoSpots {
		perBooking = 2
	}
	if want := len(spots) * slots * rounds; len(wins) != want && gaveUp == 0 || len(wins) > want || booked != len(wins)*perBooking {
		t.Errorf("%d windows won, %d reservations booked: want %d windows", len(wins), booked, want)
	}
	switch {
	case !noSpotLock && !twoSpots && mostRuns != 1:
		t.Errorf("a transaction ran %d times under the spot lock, want once", mostRuns)
	case twoSpots && mostRuns > 2:
		t.Errorf("a transaction ran %d times, want at most twice (the retry takes its spots in order)", mostRuns)
	}
	for k, ids := range wins {
		if len(ids) != 1 {
			t.Errorf("group %d slot %d won by %v", k.group, k.slot, ids)
		}
	}
	all, err := b.List(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != booked {
		t.Errorf("%d stored, %d booked", len(all), booked)
	}
	for i, x := range all {
		for _, y := range all[i+1:] {
			if x.SpotID == y.SpotID && x.Window().Overlaps(y.Window()) {
				t.Errorf("double booking on spot %s: %s and %s", x.SpotID, x.ID, y.ID)
			}
		}
	}
	cs, err := a.Changes(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if created := len(cs) - len(spots); created != booked {
		t.Errorf("%d created entries logged, %d booked", created, booked)
	}
	t.Logf("%d bookings won, %d refused, %d gave up, %d transactions retried (at most %d runs of one), in %v", len(wins),
		overlapped, gaveUp, a.retries.Load()+b.retries.Load(), mostRuns, elapsed.Round(time.Millisecond))
}

// TestChangeLogAcrossInstances hammers the change log from several
// instances (separate pools, as separate centrald processes would be)
// while a follower on yet another one pages through it: the follower must
// see every entry, in version order, none after a higher one.
func TestChangeLogAcrossInstances(t *testing.T) {
	ctx := context.Background()
	dsn, _ := pgtest.Schema(t)
	const instances, writers, each = 3, 6, 40
	var ws []*Store
	for range instances {
		ws = append(ws, open(t, dsn))
	}
	if err := ws[0].SetSpots(ctx, []string{"1", "2", "3"}, t0); err != nil {
		t.Fatal(err)
	}
	follower := open(t, dsn)
	done := make(chan struct{})
	result := make(chan storetest.Followed, 1)
	go func() { result <- storetest.FollowLog(ctx, follower, 5, done) }()
	var wg sync.WaitGroup
	for w := range instances * writers {
		s := ws[w%instances]
		wg.Go(func() {
			for i := range each {
				// Some transactions log several entries, some also write a
				// reservation (row locks before the log lock), so that
				// transactions of different lengths interleave.
				err := s.Write(ctx, func(tx store.Tx) error {
					if i%3 == 0 {
						from := t0.Add(time.Duration(w*each+i) * time.Hour)
						r := reservation.Reservation{ID: fmt.Sprintf("w%d-%d", w, i), SpotID: fmt.Sprint(1 + i%3),
							State: reservation.Reserved, Source: reservation.SourceDriver, From: from, Until: from.Add(time.Hour)}
						if err := tx.Insert(r); err != nil {
							return err
						}
					}
					for j := range 1 + i%3 {
						if err := tx.Log(store.Change{At: t0, Kind: store.KindPaymentDeclined,
							Actor: fmt.Sprintf("w%d-%d-%d", w, i, j)}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	f := <-result
	if f.Err != nil {
		t.Fatal(f.Err)
	}
	seen := f.Changes
	all, err := follower.Changes(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(all) {
		t.Fatalf("the follower saw %d entries, the log has %d: an entry became visible after a higher version", len(seen), len(all))
	}
	for i, c := range all {
		if seen[i].Version != c.Version || seen[i].Actor != c.Actor {
			t.Fatalf("entry %d: the follower saw %d %s, the log has %d %s", i, seen[i].Version, seen[i].Actor, c.Version, c.Actor)
		}
		if i > 0 && c.Version <= all[i-1].Version {
			t.Fatalf("versions not increasing at %d: %d after %d", i, c.Version, all[i-1].Version)
		}
	}
	// Entries of one transaction are consecutive and in the order logged.
	for i := 1; i < len(all); i++ {
		var w, n, j, pw, pn, pj int
		fmt.Sscanf(all[i].Actor, "w%d-%d-%d", &w, &n, &j)
		fmt.Sscanf(all[i-1].Actor, "w%d-%d-%d", &pw, &pn, &pj)
		if j > 0 && (pw != w || pn != n || pj != j-1) {
			t.Fatalf("entry %s follows %s", all[i].Actor, all[i-1].Actor)
		}
	}
	want := 3 // the spots
	for i := range each {
		want += instances * writers * (1 + i%3)
	}
	if len(all) != want {
		t.Errorf("the log has %d entries, want %d", len(all), want)
	}
}

// TestWriteRetriesSwallowedDeadlock: a deadlock the transaction function
// turned into another error (or ignored) still makes Write run it again.
func TestWriteRetriesSwallowedDeadlock(t *testing.T) {
	ctx := context.Background()
	dsn, _ := pgtest.Schema(t)
	s := open(t, dsn)
	fake := func(st store.Tx, code string) error {
		return st.(*tx).exec(`DO $$ BEGIN RAISE EXCEPTION 'fake' USING ERRCODE = '` + code + `'; END $$`)
	}
	calls := 0
	err := s.Write(ctx, func(st store.Tx) error {
		calls++
		switch calls {
		case 1:
			if err := fake(st, "deadlock_detected"); err == nil {
				t.Fatal("no error")
			}
			return errors.New("something else entirely")
		case 2:
			fake(st, "serialization_failure")
			return nil // swallowed
		}
		return st.Log(store.Change{At: t0, Kind: store.KindPaymentDeclined, Actor: "x"})
	})
	if err != nil || calls != 3 {
		t.Fatalf("Write = %v after %d calls, want success after 3", err, calls)
	}
	if cs, err := s.Changes(ctx, 0, 0); err != nil || len(cs) != 1 {
		t.Errorf("changes = %+v, %v; want the one of the last run", cs, err)
	}
	// Another error is not retried.
	calls = 0
	err = s.Write(ctx, func(st store.Tx) error {
		calls++
		_, err := st.Get("nope")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) || calls != 1 {
		t.Errorf("Write = %v after %d calls", err, calls)
	}
	// Nor past the context.
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	err = s.Write(cctx, func(st store.Tx) error {
		calls++
		err := fake(st, "deadlock_detected")
		cancel()
		return err
	})
	if err == nil || !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("Write with a cancelled context = %v after %d calls", err, calls)
	}
	// Nor more than maxWriteAttempts times.
	calls = 0
	err = s.Write(ctx, func(st store.Tx) error {
		calls++
		return fake(st, "deadlock_detected")
	})
	if err == nil || calls != maxWriteAttempts {
		t.Errorf("Write = %v after %d calls, want failure after %d", err, calls, maxWriteAttempts)
	}
}

// BenchmarkConditionalInsert is storetest's booking write on PostgreSQL,
// with the transactions Write had to run again.
func BenchmarkConditionalInsert(b *testing.B) {
	storetest.BenchmarkConditionalInsert(b, func(b *testing.B) store.Store {
		dsn, _ := pgtest.Schema(b)
		return open(b, dsn)
	}, func(b *testing.B, s store.Store) {
		b.ReportMetric(float64(s.(*Store).retries.Load())/float64(b.N), "retries/op")
	})
}

// A change committed by one instance wakes the listener of another.
func TestChangeNotificationsAcrossInstances(t *testing.T) {
	dsn, _ := pgtest.Schema(t)
	storetest.Notified(t, open(t, dsn), open(t, dsn))
}
