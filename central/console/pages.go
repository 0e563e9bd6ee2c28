package console

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/parkgate/parkgate/internal/throttle"
)

// page renders one template; pages are never cached (they hold the CSRF
// token).
func (c *Console) page(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := c.pages.ExecuteTemplate(&b, name, data); err != nil {
		c.log.Error("console: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

type loginData struct {
	Site, Name, Error string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.page(w, http.StatusOK, "login.html", loginData{Site: c.cfg.Site})
}

// login checks a name and password and opens a session. Failures are
// throttled by name and by client address.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		c.page(w, http.StatusForbidden, "login.html", loginData{Site: c.cfg.Site, Error: "Sign in from the console's own page."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		c.page(w, http.StatusBadRequest, "login.html", loginData{Site: c.cfg.Site, Error: "The form could not be read."})
		return
	}
	name, pw := r.PostForm.Get("name"), r.PostForm.Get("password")
	keys := []string{"name:" + name, "addr:" + throttle.ClientAddr(r)}
	if d := c.throttle.Wait(keys...); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds()+0.999)))
		c.page(w, http.StatusTooManyRequests, "login.html", loginData{Site: c.cfg.Site, Name: name,
			Error: "Too many failed sign-ins. Try again in " + d.Round(time.Second).String() + "."})
		return
	}
	ok := false
	if CheckName(name) == nil && pw != "" {
		var err error
		if ok, err = c.checkPassword(r.Context(), name, pw); err != nil {
			c.log.Error("console: checking a password", "err", err)
			c.page(w, http.StatusServiceUnavailable, "login.html", loginData{Site: c.cfg.Site, Name: name, Error: "The database does not answer; try again."})
			return
		}
	}
	if !ok {
		c.throttle.Fail(keys...)
		c.log.Warn("console: failed sign-in", "operator", name, "addr", throttle.ClientAddr(r))
		c.page(w, http.StatusUnauthorized, "login.html", loginData{Site: c.cfg.Site, Name: name, Error: "Wrong name or password."})
		return
	}
	c.throttle.Succeed(keys[0])
	id, _ := c.sessions.open(name)
	setSession(w, r, id)
	c.log.Info("console: signed in", "operator", name)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// sameOrigin refuses a form posted from another site (login CSRF): the
// browser names the page's origin in Origin or, failing that, Referer.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true // not a browser
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	who, err := c.who(r)
	if err != nil || who.session == "" {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	if r.ParseForm() != nil || r.PostForm.Get(csrfField) != who.csrf {
		http.Error(w, "the form lacks this session's CSRF token; reload the console", http.StatusForbidden)
		return
	}
	c.sessions.close(who.session)
	setSession(w, r, "")
	c.log.Info("console: signed out", "operator", who.name)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

type indexData struct {
	Site, Operator, CSRF string
	IdleMinutes          int
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	who, err := c.who(r)
	if errors.Is(err, errBadToken) || err == nil && who.session == "" {
		// The page is for people: scripts use the JSON routes.
		http.Error(w, "the console is for signed-in operators; sign in at /console/login", http.StatusForbidden)
		return
	}
	if err != nil {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	c.page(w, http.StatusOK, "index.html", indexData{Site: c.cfg.Site, Operator: who.name, CSRF: who.csrf,
		IdleMinutes: int(c.cfg.IdleTimeout / time.Minute)})
}
