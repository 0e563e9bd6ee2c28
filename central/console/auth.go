package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
)

// Cookie and header names.
const (
	sessionCookie = "parkgate_session"
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
)

var operatorName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckName reports whether name can be an operator account's name.
func CheckName(name string) error {
	if !operatorName.MatchString(name) {
		return fmt.Errorf("operator name %q: use 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// AddOperator creates (or gives a new password to) operator name and
// returns the password, which is shown once and stored only as its
// argon2id hash.
func AddOperator(ctx context.Context, st store.Store, name string, now time.Time) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := broker.HashPassword(pw)
	if err != nil {
		return "", err
	}
	err = st.Write(ctx, func(tx store.Tx) error {
		return tx.PutOperator(store.Operator{Name: name, PasswordHash: hash, CreatedAt: now.UTC()})
	})
	return pw, err
}

// session is one signed-in operator. Sessions live in this process's
// memory: a restart signs everybody out.
type session struct {
	operator string
	csrf     string
	lastSeen time.Time
}

// sessions holds the open sessions by the SHA-256 of their cookie (a
// memory dump does not give working cookies away).
type sessions struct {
	clk  clock.Clock
	idle time.Duration

	mu sync.Mutex
	m  map[[32]byte]*session
}

func newSessions(clk clock.Clock, idle time.Duration) *sessions {
	return &sessions{clk: clk, idle: idle, m: map[[32]byte]*session{}}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// open starts a session and returns its cookie value.
func (s *sessions) open(operator string) (string, *session) {
	id := randomToken()
	ss := &session{operator: operator, csrf: randomToken(), lastSeen: s.clk.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	for k, v := range s.m { // forget the expired ones
		if now.Sub(v.lastSeen) > s.idle {
			delete(s.m, k)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = ss
	return id, ss
}

// use returns the session of cookie id and marks it used now; nil if
// there is none or it was idle too long (then it is closed).
func (s *sessions) use(id string) *session {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[k]
	if ss == nil {
		return nil
	}
	now := s.clk.Now()
	if now.Sub(ss.lastSeen) > s.idle {
		delete(s.m, k)
		return nil
	}
	ss.lastSeen = now
	c := *ss
	return &c
}

// alive reports whether cookie id's session is still open, without
// counting this as use (an open event stream is not activity).
func (s *sessions) alive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[sha256.Sum256([]byte(id))]
	return ss != nil && s.clk.Now().Sub(ss.lastSeen) <= s.idle
}

func (s *sessions) close(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

// caller is who an authorised request comes from.
type caller struct {
	name    string // the operator's name; "" for the admin token
	session string // the session cookie; "" for the admin token
	csrf    string
}

// errNotSignedIn: neither the admin token nor a live session.
var errNotSignedIn = errors.New("not signed in")

// who identifies the caller: the admin token (Authorization: Bearer) or a
// session cookie.
func (c *Console) who(r *http.Request) (caller, error) {
	if a := r.Header.Get("Authorization"); a != "" {
		tok := ""
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			tok = strings.TrimSpace(a[7:])
		}
		if c.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(c.cfg.AdminToken)) == 1 {
			return caller{}, nil
		}
		return caller{}, errBadToken
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return caller{}, errNotSignedIn
	}
	ss := c.sessions.use(ck.Value)
	if ss == nil {
		return caller{}, errNotSignedIn
	}
	return caller{name: ss.operator, session: ck.Value, csrf: ss.csrf}, nil
}

var errBadToken = errors.New("bad token")

// authorize checks a JSON route's caller and, for a state change by a
// session, its CSRF token; it answers the refusal itself.
func (c *Console) authorize(w http.ResponseWriter, r *http.Request) (caller, bool) {
	who, err := c.who(r)
	switch {
	case errors.Is(err, errBadToken):
		api.WriteError(w, http.StatusForbidden, "not_operator", "this endpoint needs the admin token or a console session")
		return who, false
	case err != nil:
		api.WriteError(w, http.StatusUnauthorized, "not_signed_in", "sign in at /console/login, or send the admin token as 'Authorization: Bearer <token>'")
		return who, false
	}
	if who.session != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		tok := r.Header.Get(csrfHeader)
		if subtle.ConstantTimeCompare([]byte(tok), []byte(who.csrf)) != 1 {
			api.WriteError(w, http.StatusForbidden, "csrf", "the request lacks this session's "+csrfHeader+" header; reload the console")
			return who, false
		}
	}
	return who, true
}

// checkPassword checks an operator's password. An unknown name costs the
// same hashing as a known one, so timing does not tell names apart.
func (c *Console) checkPassword(ctx context.Context, name, pw string) (bool, error) {
	o, err := c.svc.Store().Operator(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		broker.CheckPassword(c.dummyHash, pw)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return broker.CheckPassword(o.PasswordHash, pw), nil
}

// setSession sets (value "") or clears the session cookie.
func setSession(w http.ResponseWriter, r *http.Request, value string) {
	ck := &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil}
	if value == "" {
		ck.MaxAge = -1
	}
	http.SetCookie(w, ck)
}
