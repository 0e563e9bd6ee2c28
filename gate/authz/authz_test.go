package authz

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/plate"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/ticket"
)

// fakeCache is a hand-written Cache over maps.
type fakeCache struct {
	entries   map[string]localdb.Entry
	presence  map[string]localdb.Presence
	err       error // returned by every method
	presErr   error // returned by Presence only
	lookups   int
	plateRead string
}

func newFake(entries []localdb.Entry, presence map[string]localdb.Presence) *fakeCache {
	f := &fakeCache{entries: map[string]localdb.Entry{}, presence: presence}
	for _, e := range entries {
		e.Plate = plate.Normalize(e.CarID)
		f.entries[e.ReservationID] = e
	}
	return f
}

func (f *fakeCache) Lookup(_ context.Context, id string) (localdb.Entry, bool, error) {
	f.lookups++
	if f.err != nil {
		return localdb.Entry{}, false, f.err
	}
	e, ok := f.entries[id]
	return e, ok, nil
}

func (f *fakeCache) ByPlate(_ context.Context, p string) ([]localdb.Entry, error) {
	f.plateRead = p
	if f.err != nil {
		return nil, f.err
	}
	var out []localdb.Entry
	for _, e := range f.entries {
		if e.Plate != "" && e.Plate == plate.Normalize(p) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b localdb.Entry) int { return a.From.Compare(b.From) })
	return out, nil
}

func (f *fakeCache) Presence(_ context.Context, id string) (localdb.Presence, error) {
	if f.err != nil {
		return localdb.Presence{}, f.err
	}
	if f.presErr != nil {
		return localdb.Presence{}, f.presErr
	}
	return f.presence[id], nil
}

// The reservation most cases are about: spot 7, 10:00 to 12:00, car K-LM 42.
var (
	from  = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	until = from.Add(2 * time.Hour)
	at    = func(hhmm string) time.Time {
		t, err := time.Parse("2006-01-02 15:04:05", "2026-05-01 "+hhmm)
		if err != nil {
			panic(err)
		}
		return t
	}
)

func signer(t testing.TB, seed byte) *ticket.Signer {
	t.Helper()
	s, err := ticket.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func issue(t testing.TB, s *ticket.Signer, id string) string {
	t.Helper()
	code, err := s.Issue(ticket.Ticket{ReservationID: id, SpotID: "7", From: from, Until: until, CarID: "K-LM 42"})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func cached(id string, st localdb.State) localdb.Entry {
	return localdb.Entry{ReservationID: id, SpotID: "7", From: from, Until: until, CarID: "K-LM 42", State: st}
}

func shifted(e localdb.Entry, d time.Duration) localdb.Entry {
	e.From, e.Until = e.From.Add(d), e.Until.Add(d)
	return e
}

var (
	in   = map[string]localdb.Presence{"r1": {Known: true, Inside: true, At: at("10:05:00"), EnteredAt: at("10:05:00")}}
	gone = map[string]localdb.Presence{"r1": {Known: true, Inside: false, At: at("11:00:00"), EnteredAt: at("10:05:00"), ExitedAt: at("11:00:00")}}
)

type testCase struct {
	name      string
	role      localdb.Role
	src       localdb.Source
	code      string // for qr: a key of codes, or a literal
	plate     string
	now       string // hh:mm:ss on the reservation's day; default 10:30:00
	untrusted bool
	floor     string
	policy    OfflinePolicy
	noKey     bool
	strict    bool
	exitGrace time.Duration
	entries   []localdb.Entry
	presence  map[string]localdb.Presence
	cacheErr  error
	presErr   error

	want     Reason
	resID    string // the reservation the decision names (default r1 when granted)
	overstay bool
	unknown  bool // PresenceUnknown
}

func cases() []testCase {
	const (
		E = localdb.RoleEntry
		X = localdb.RoleExit
		Q = localdb.SourceQR
		P = localdb.SourcePlate
	)
	paid := []localdb.Entry{cached("r1", localdb.StatePaid)}
	ioErr := errors.New("disk on fire")
	return []testCase{
		// Bad calls.
		{name: "invalid role", role: "side", src: Q, code: "valid", want: ReasonInvalidInput},
		{name: "invalid source", role: E, src: localdb.SourceRemote, code: "valid", want: ReasonInvalidInput},
		{name: "invalid policy", role: E, src: Q, code: "valid", untrusted: true, policy: "maybe", want: ReasonInvalidInput},

		// Entry, ticket, trusted clock.
		{name: "entry ticket not cached yet", role: E, src: Q, code: "valid", want: ReasonTicket},
		{name: "entry ticket cached paid", role: E, src: Q, code: "valid", entries: paid, want: ReasonTicket},
		{name: "entry ticket cached reserved", role: E, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateReserved)}, want: ReasonTicket},
		{name: "entry ticket after known exit", role: E, src: Q, code: "valid", entries: paid, presence: gone, want: ReasonTicket},
		{name: "entry ticket early arrival edge", role: E, src: Q, code: "valid", now: "09:45:00", want: ReasonTicket},
		{name: "entry ticket last second", role: E, src: Q, code: "valid", now: "11:59:59", want: ReasonTicket},
		{name: "entry ticket too early", role: E, src: Q, code: "valid", now: "09:44:59", want: ReasonTooEarly, resID: "r1"},
		{name: "entry ticket expired", role: E, src: Q, code: "valid", now: "12:00:00", want: ReasonExpired, resID: "r1"},
		{name: "entry ticket cache window wins", role: E, src: Q, code: "valid", entries: []localdb.Entry{shifted(cached("r1", localdb.StatePaid), time.Hour)}, want: ReasonTooEarly, resID: "r1"},
		{name: "entry ticket already inside", role: E, src: Q, code: "valid", presence: in, want: ReasonAlreadyInside, resID: "r1"},
		{name: "entry ticket taken at central", role: E, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonAlreadyInside, resID: "r1"},
		{name: "entry ticket cancelled", role: E, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateCancelled)}, want: ReasonRevoked, resID: "r1"},
		{name: "entry ticket no-show", role: E, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateNoShow)}, want: ReasonRevoked, resID: "r1"},
		{name: "entry ticket expired unpaid", role: E, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateExpired)}, want: ReasonRevoked, resID: "r1"},
		{name: "entry ticket left", role: E, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateLeft)}, want: ReasonAlreadyLeft, resID: "r1"},
		{name: "entry malformed", role: E, src: Q, code: "https://example.com/", want: ReasonMalformed},
		{name: "entry too short", role: E, src: Q, code: "short", want: ReasonTooShort},
		{name: "entry too long", role: E, src: Q, code: "long", want: ReasonTooLong},
		{name: "entry unknown key", role: E, src: Q, code: "foreign", want: ReasonUnknownKey},
		{name: "entry bad signature", role: E, src: Q, code: "altered", want: ReasonBadSignature},
		{name: "entry no key", role: E, src: Q, code: "valid", noKey: true, want: ReasonNoKey},
		{name: "entry cache error", role: E, src: Q, code: "valid", cacheErr: ioErr, want: ReasonCacheError},
		{name: "entry presence error", role: E, src: Q, code: "valid", presErr: ioErr, want: ReasonCacheError},

		// Entry, ticket, untrusted clock.
		{name: "entry untrusted signature_only ignores window", role: E, src: Q, code: "valid", untrusted: true, now: "03:00:00", policy: PolicySignatureOnly, want: ReasonTicket},
		{name: "entry untrusted default policy", role: E, src: Q, code: "valid", untrusted: true, now: "23:00:00", want: ReasonTicket},
		{name: "entry untrusted floor shows expired", role: E, src: Q, code: "valid", untrusted: true, now: "03:00:00", floor: "12:00:00", want: ReasonExpired, resID: "r1"},
		{name: "entry untrusted floor before end", role: E, src: Q, code: "valid", untrusted: true, now: "03:00:00", floor: "11:59:00", want: ReasonTicket},
		{name: "entry untrusted still anti-passback", role: E, src: Q, code: "valid", untrusted: true, presence: in, want: ReasonAlreadyInside, resID: "r1"},
		{name: "entry untrusted still revoked", role: E, src: Q, code: "valid", untrusted: true, entries: []localdb.Entry{cached("r1", localdb.StateCancelled)}, want: ReasonRevoked, resID: "r1"},
		{name: "entry untrusted still bad signature", role: E, src: Q, code: "altered", untrusted: true, want: ReasonBadSignature},
		{name: "entry untrusted deny", role: E, src: Q, code: "valid", untrusted: true, policy: PolicyDeny, want: ReasonClockUntrusted},
		{name: "entry untrusted deny before decoding", role: E, src: Q, code: "https://example.com/", untrusted: true, policy: PolicyDeny, want: ReasonClockUntrusted},
		{name: "entry untrusted exit_only", role: E, src: Q, code: "valid", untrusted: true, policy: PolicyExitOnly, want: ReasonClockUntrusted},

		// Entry, plate, trusted clock.
		{name: "entry plate paid", role: E, src: P, plate: "k-lm 42", entries: paid, want: ReasonPlate},
		{name: "entry plate early arrival", role: E, src: P, plate: "KLM42", now: "09:50:00", entries: paid, want: ReasonPlate},
		{name: "entry plate too early", role: E, src: P, plate: "KLM42", now: "09:40:00", entries: paid, want: ReasonTooEarly, resID: "r1"},
		{name: "entry plate expired", role: E, src: P, plate: "KLM42", now: "12:30:00", entries: paid, want: ReasonExpired, resID: "r1"},
		{name: "entry plate unknown", role: E, src: P, plate: "ZZ 999", entries: paid, want: ReasonUnknownPlate},
		{name: "entry plate empty read", role: E, src: P, plate: " - ", entries: paid, want: ReasonUnknownPlate},
		{name: "entry plate not paid", role: E, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateReserved)}, want: ReasonNotPaid, resID: "r1"},
		{name: "entry plate cancelled", role: E, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateCancelled)}, want: ReasonRevoked, resID: "r1"},
		{name: "entry plate left", role: E, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateLeft)}, want: ReasonAlreadyLeft, resID: "r1"},
		{name: "entry plate taken", role: E, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonAlreadyInside, resID: "r1"},
		{name: "entry plate inside", role: E, src: P, plate: "KLM42", entries: paid, presence: in, want: ReasonAlreadyInside, resID: "r1"},
		{name: "entry plate picks today's over yesterday's", role: E, src: P, plate: "KLM42",
			entries: []localdb.Entry{shifted(cached("r0", localdb.StateLeft), -24*time.Hour), cached("r1", localdb.StatePaid)}, want: ReasonPlate},
		{name: "entry plate next window before past one", role: E, src: P, plate: "KLM42", now: "13:00:00",
			entries: []localdb.Entry{cached("r0", localdb.StateLeft), shifted(cached("r1", localdb.StatePaid), 4*time.Hour)}, want: ReasonTooEarly, resID: "r1"},
		{name: "entry plate covering revocation before later window", role: E, src: P, plate: "KLM42",
			entries: []localdb.Entry{cached("r0", localdb.StateCancelled), shifted(cached("r1", localdb.StatePaid), 4*time.Hour)}, want: ReasonRevoked, resID: "r0"},
		{name: "entry plate cache error", role: E, src: P, plate: "KLM42", cacheErr: ioErr, want: ReasonCacheError},
		{name: "entry plate presence error", role: E, src: P, plate: "KLM42", entries: paid, presErr: ioErr, want: ReasonCacheError},

		// Entry, plate, untrusted clock: a plate has no signature.
		{name: "entry plate untrusted signature_only", role: E, src: P, plate: "KLM42", entries: paid, untrusted: true, policy: PolicySignatureOnly, want: ReasonClockUntrusted},
		{name: "entry plate untrusted deny", role: E, src: P, plate: "KLM42", entries: paid, untrusted: true, policy: PolicyDeny, want: ReasonClockUntrusted},
		{name: "entry plate untrusted exit_only", role: E, src: P, plate: "KLM42", entries: paid, untrusted: true, policy: PolicyExitOnly, want: ReasonClockUntrusted},

		// Exit, ticket, trusted clock.
		{name: "exit ticket inside", role: X, src: Q, code: "valid", presence: in, want: ReasonTicket},
		{name: "exit ticket taken at central", role: X, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonTicket},
		{name: "exit ticket presence unknown, paid", role: X, src: Q, code: "valid", entries: paid, want: ReasonTicket, unknown: true},
		{name: "exit ticket presence unknown, not cached", role: X, src: Q, code: "valid", want: ReasonTicket, unknown: true},
		{name: "exit ticket strict, unknown", role: X, src: Q, code: "valid", strict: true, entries: paid, want: ReasonNotInside, resID: "r1"},
		{name: "exit ticket strict, taken", role: X, src: Q, code: "valid", strict: true, entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonTicket},
		{name: "exit ticket already out", role: X, src: Q, code: "valid", presence: gone, entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonNotInside, resID: "r1"},
		{name: "exit ticket left at central", role: X, src: Q, code: "valid", presence: in, entries: []localdb.Entry{cached("r1", localdb.StateLeft)}, want: ReasonNotInside, resID: "r1"},
		{name: "exit ticket revoked", role: X, src: Q, code: "valid", entries: []localdb.Entry{cached("r1", localdb.StateCancelled)}, want: ReasonRevoked, resID: "r1"},
		{name: "exit ticket revoked but inside", role: X, src: Q, code: "valid", presence: in, entries: []localdb.Entry{cached("r1", localdb.StateNoShow)}, want: ReasonTicket},
		{name: "exit ticket within grace", role: X, src: Q, code: "valid", presence: in, now: "12:14:59", want: ReasonTicket},
		{name: "exit ticket overstay", role: X, src: Q, code: "valid", presence: in, now: "12:15:00", want: ReasonTicket, overstay: true},
		{name: "exit ticket overstay no grace", role: X, src: Q, code: "valid", presence: in, now: "12:00:00", exitGrace: -1, want: ReasonTicket, overstay: true},
		{name: "exit ticket overstay, presence unknown", role: X, src: Q, code: "valid", now: "18:00:00", want: ReasonTicket, overstay: true, unknown: true},
		{name: "exit ticket before its window", role: X, src: Q, code: "valid", now: "09:00:00", want: ReasonNotInside, resID: "r1"},
		{name: "exit ticket early arrival window", role: X, src: Q, code: "valid", now: "09:50:00", want: ReasonTicket, unknown: true},
		{name: "exit bad signature", role: X, src: Q, code: "altered", presence: in, want: ReasonBadSignature},
		{name: "exit unknown key", role: X, src: Q, code: "foreign", want: ReasonUnknownKey},
		{name: "exit malformed", role: X, src: Q, code: "hello", want: ReasonMalformed},
		{name: "exit too short", role: X, src: Q, code: "short", want: ReasonTooShort},
		{name: "exit too long", role: X, src: Q, code: "long", want: ReasonTooLong},
		{name: "exit no key", role: X, src: Q, code: "valid", noKey: true, want: ReasonNoKey},
		{name: "exit cache error", role: X, src: Q, code: "valid", cacheErr: ioErr, want: ReasonCacheError},

		// Exit, ticket, untrusted clock.
		{name: "exit untrusted signature_only", role: X, src: Q, code: "valid", untrusted: true, presence: in, now: "23:00:00", want: ReasonTicket},
		{name: "exit untrusted floor shows overstay", role: X, src: Q, code: "valid", untrusted: true, presence: in, now: "03:00:00", floor: "12:30:00", want: ReasonTicket, overstay: true},
		{name: "exit untrusted unknown presence, no window check", role: X, src: Q, code: "valid", untrusted: true, now: "03:00:00", want: ReasonTicket, unknown: true},
		{name: "exit untrusted still anti-passback", role: X, src: Q, code: "valid", untrusted: true, presence: gone, want: ReasonNotInside, resID: "r1"},
		{name: "exit untrusted exit_only", role: X, src: Q, code: "valid", untrusted: true, policy: PolicyExitOnly, presence: in, want: ReasonTicket},
		{name: "exit untrusted deny", role: X, src: Q, code: "valid", untrusted: true, policy: PolicyDeny, presence: in, want: ReasonClockUntrusted},

		// Exit, plate, trusted clock.
		{name: "exit plate taken", role: X, src: P, plate: "k lm-42", entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonPlate},
		{name: "exit plate inside", role: X, src: P, plate: "KLM42", entries: paid, presence: in, want: ReasonPlate},
		{name: "exit plate presence unknown", role: X, src: P, plate: "KLM42", entries: paid, want: ReasonPlate, unknown: true},
		{name: "exit plate overstay", role: X, src: P, plate: "KLM42", now: "13:00:00", entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonPlate, overstay: true},
		{name: "exit plate prefers the car inside", role: X, src: P, plate: "KLM42", now: "10:30:00",
			entries: []localdb.Entry{shifted(cached("r0", localdb.StateTaken), -24*time.Hour), cached("r1", localdb.StatePaid)},
			want:    ReasonPlate, resID: "r0", overstay: true},
		{name: "exit plate current window before future one", role: X, src: P, plate: "KLM42",
			entries: []localdb.Entry{shifted(cached("r0", localdb.StatePaid), 24*time.Hour), cached("r1", localdb.StatePaid)}, want: ReasonPlate, unknown: true},
		{name: "exit plate left", role: X, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateLeft)}, want: ReasonNotInside, resID: "r1"},
		{name: "exit plate exited here", role: X, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, presence: gone, want: ReasonNotInside, resID: "r1"},
		{name: "exit plate revoked", role: X, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateNoShow)}, want: ReasonRevoked, resID: "r1"},
		{name: "exit plate not paid", role: X, src: P, plate: "KLM42", entries: []localdb.Entry{cached("r1", localdb.StateReserved)}, want: ReasonNotPaid, resID: "r1"},
		{name: "exit plate only a future window", role: X, src: P, plate: "KLM42", now: "08:00:00", entries: paid, want: ReasonNotInside, resID: "r1"},
		{name: "exit plate strict, unknown", role: X, src: P, plate: "KLM42", strict: true, entries: paid, want: ReasonNotInside, resID: "r1"},
		{name: "exit plate unknown", role: X, src: P, plate: "AB 1", entries: paid, want: ReasonUnknownPlate},
		{name: "exit plate cache error", role: X, src: P, plate: "KLM42", cacheErr: ioErr, want: ReasonCacheError},

		// Exit, plate, untrusted clock.
		{name: "exit plate untrusted signature_only", role: X, src: P, plate: "KLM42", untrusted: true, policy: PolicySignatureOnly, entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonPlate},
		{name: "exit plate untrusted exit_only", role: X, src: P, plate: "KLM42", untrusted: true, policy: PolicyExitOnly, entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonPlate},
		{name: "exit plate untrusted deny", role: X, src: P, plate: "KLM42", untrusted: true, policy: PolicyDeny, entries: []localdb.Entry{cached("r1", localdb.StateTaken)}, want: ReasonClockUntrusted},
	}
}

func TestDecide(t *testing.T) {
	site, other := signer(t, 7), signer(t, 9)
	verifier, err := ticket.NewVerifier(site.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	valid := issue(t, site, "r1")
	// Change one character of the signature (the last ones are signature
	// bytes): still base32, still well formed, no longer authentic.
	i := len(valid) - 10
	c := byte('A')
	if valid[i] == 'A' {
		c = 'B'
	}
	altered := valid[:i] + string(c) + valid[i+1:]
	codes := map[string]string{
		"valid":   valid,
		"altered": altered,
		"foreign": issue(t, other, "r1"),
		"short":   valid[:30],
		"long":    strings.Repeat("A", ticket.MaxInputLen+1),
	}

	seen := map[Reason]bool{}
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			cache := newFake(tc.entries, tc.presence)
			cache.err, cache.presErr = tc.cacheErr, tc.presErr
			code := tc.code
			if c, ok := codes[code]; ok {
				code = c
			}
			now := "10:30:00"
			if tc.now != "" {
				now = tc.now
			}
			input := Input{
				Role: tc.role, Source: tc.src, Code: code, Plate: tc.plate, Now: at(now),
				ClockTrusted: !tc.untrusted, OfflinePolicy: tc.policy, Verifier: verifier,
				StrictExit: tc.strict, ExitGrace: tc.exitGrace, Cache: cache,
			}
			if tc.floor != "" {
				input.TimeFloor = at(tc.floor)
			}
			if tc.noKey {
				input.Verifier = nil
			}
			d := Decide(context.Background(), input)
			seen[d.Reason] = true

			granted := tc.want == ReasonTicket || tc.want == ReasonPlate
			if d.Reason != tc.want || d.Granted != granted {
				t.Fatalf("got granted=%v reason=%s (%s), want granted=%v reason=%s", d.Granted, d.Reason, d.Detail, granted, tc.want)
			}
			wantRes := tc.resID
			if wantRes == "" && granted {
				wantRes = "r1"
			}
			if d.ReservationID != wantRes {
				t.Errorf("reservation %q, want %q", d.ReservationID, wantRes)
			}
			if d.Overstay != tc.overstay || d.PresenceUnknown != tc.unknown {
				t.Errorf("overstay=%v presenceUnknown=%v, want %v %v (%s)", d.Overstay, d.PresenceUnknown, tc.overstay, tc.unknown, d.Detail)
			}
			wantChange := localdb.NoPresenceChange
			switch {
			case granted && tc.role == localdb.RoleEntry:
				wantChange = localdb.Entered
			case granted:
				wantChange = localdb.Exited
			}
			if d.Presence != wantChange {
				t.Errorf("presence change %s, want %s", d.Presence, wantChange)
			}
			if d.Detail == "" {
				t.Error("no detail")
			}
			if strings.Contains(d.Detail, valid) {
				t.Error("the detail holds the ticket")
			}
			// A plate goes in the decision's plate field, which central's
			// retention erases; free text would keep it.
			if n := plate.Normalize(tc.plate); n != "" && (strings.Contains(d.Detail, n) || strings.Contains(d.Detail, tc.plate)) {
				t.Errorf("the detail names the plate read: %q", d.Detail)
			}
			if d.Role != tc.role || d.Source != tc.src || !d.Time.Equal(at(now)) || d.ClockTrusted == tc.untrusted {
				t.Errorf("decision does not repeat its input: %+v", d)
			}
			if granted && (d.SpotID != "7" || d.CarID != "K-LM 42" || d.Plate != "KLM42") {
				t.Errorf("granted decision names spot %q car %q plate %q", d.SpotID, d.CarID, d.Plate)
			}
		})
	}
	for _, r := range Reasons {
		if !seen[r] {
			t.Errorf("no case produces reason %s", r)
		}
	}
}

func TestDecideWithoutTimeOrCache(t *testing.T) {
	v, _ := ticket.NewVerifier(signer(t, 7).PublicKey())
	if d := Decide(context.Background(), Input{Role: localdb.RoleEntry, Source: localdb.SourceQR, Verifier: v, Cache: newFake(nil, nil)}); d.Reason != ReasonInvalidInput {
		t.Errorf("no time: %s", d.Reason)
	}
	if d := Decide(context.Background(), Input{Role: localdb.RoleEntry, Source: localdb.SourceQR, Verifier: v, Now: from}); d.Reason != ReasonInvalidInput {
		t.Errorf("no cache: %s", d.Reason)
	}
}

func TestParseOfflinePolicy(t *testing.T) {
	for s, want := range map[string]OfflinePolicy{"": PolicySignatureOnly, "signature_only": PolicySignatureOnly, "deny": PolicyDeny, "exit_only": PolicyExitOnly} {
		if p, err := ParseOfflinePolicy(s); err != nil || p != want {
			t.Errorf("%q: %v %v", s, p, err)
		}
	}
	if _, err := ParseOfflinePolicy("Deny"); err == nil {
		t.Error("Deny accepted")
	}
}

func TestDecisionEvent(t *testing.T) {
	d := Decision{Granted: true, Reason: ReasonTicket, Detail: "x", Role: localdb.RoleExit, Source: localdb.SourceQR,
		Time: from, ClockTrusted: true, ReservationID: "r1", SpotID: "7", CarID: "K-LM 42", Plate: "KLM42",
		Overstay: true, PresenceUnknown: true, Presence: localdb.Exited}
	want := localdb.Event{Kind: localdb.KindDecision, GateID: "exit-1", Role: localdb.RoleExit, Time: from,
		Source: localdb.SourceQR, Granted: true, Reason: "ticket", ReservationID: "r1", SpotID: "7", CarID: "K-LM 42",
		Plate: "KLM42", Overstay: true, PresenceUnknown: true, ClockTrusted: true, Detail: "x"}
	if got := d.Event("exit-1"); got != want {
		t.Errorf("event %+v\nwant  %+v", got, want)
	}
}

// TestLaneOnRealDatabase runs decisions against localdb the way a lane
// does (Decide, then Record with the decision's presence change), for both
// gates of a site sharing nothing but central's cache updates.
func TestLaneOnRealDatabase(t *testing.T) {
	ctx := context.Background()
	site := signer(t, 7)
	v, _ := ticket.NewVerifier(site.PublicKey())
	code := issue(t, site, "r1")

	open := func(name string) *localdb.DB {
		db, err := localdb.Open(ctx, filepath.Join(t.TempDir(), name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	entryDB, exitDB := open("entry"), open("exit")
	step := func(db *localdb.DB, role localdb.Role, src localdb.Source, read string, now time.Time) Decision {
		t.Helper()
		in := Input{Role: role, Source: src, Now: now, ClockTrusted: true, Verifier: v, Cache: db}
		if src == localdb.SourceQR {
			in.Code = read
		} else {
			in.Plate = read
		}
		d := Decide(ctx, in)
		if _, err := db.Record(ctx, d.Event(string(role)+"-1"), d.Presence); err != nil {
			t.Fatal(err)
		}
		return d
	}
	expect := func(d Decision, want Reason) {
		t.Helper()
		if d.Reason != want {
			t.Fatalf("got %s (%s), want %s", d.Reason, d.Detail, want)
		}
	}

	// The ticket opens before its reservation reached either cache.
	expect(step(entryDB, localdb.RoleEntry, localdb.SourceQR, code, at("10:01:00")), ReasonTicket)
	expect(step(entryDB, localdb.RoleEntry, localdb.SourceQR, code, at("10:02:00")), ReasonAlreadyInside)
	// The plate of a ticket inside cannot enter either once the cache
	// has the reservation.
	if err := entryDB.ApplySnapshot(ctx, 1, []localdb.Entry{cached("r1", localdb.StatePaid)}); err != nil {
		t.Fatal(err)
	}
	expect(step(entryDB, localdb.RoleEntry, localdb.SourcePlate, "k-lm 42", at("10:03:00")), ReasonAlreadyInside)

	// The exit gate has the reservation but has heard nothing of the
	// entry: soft exit, flagged.
	if err := exitDB.ApplySnapshot(ctx, 1, []localdb.Entry{cached("r1", localdb.StatePaid)}); err != nil {
		t.Fatal(err)
	}
	d := step(exitDB, localdb.RoleExit, localdb.SourceQR, code, at("11:00:00"))
	expect(d, ReasonTicket)
	if !d.PresenceUnknown {
		t.Error("exit of an unknown car not flagged")
	}
	expect(step(exitDB, localdb.RoleExit, localdb.SourceQR, code, at("11:01:00")), ReasonNotInside)
	expect(step(exitDB, localdb.RoleExit, localdb.SourcePlate, "KLM42", at("11:02:00")), ReasonNotInside)

	// Central's word reaches the entry gate: the reservation is over.
	if _, err := entryDB.ApplyChange(ctx, localdb.Change{Prev: 1, Version: 2, Entry: cached("r1", localdb.StateLeft)}); err != nil {
		t.Fatal(err)
	}
	expect(step(entryDB, localdb.RoleEntry, localdb.SourceQR, code, at("11:30:00")), ReasonAlreadyLeft)

	// Every decision is in the outbox, in order.
	for db, want := range map[*localdb.DB][]string{
		entryDB: {"ticket", "already_inside", "already_inside", "already_left"},
		exitDB:  {"ticket", "not_inside", "not_inside"},
	} {
		evs, err := db.Pending(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range evs {
			got = append(got, ev.Reason)
		}
		if !slices.Equal(got, want) {
			t.Errorf("outbox %v, want %v", got, want)
		}
	}
}
