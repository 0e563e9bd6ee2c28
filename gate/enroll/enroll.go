// Package enroll is `gated enroll`: it redeems a one-time code at central
// (internal/enrollment) and writes the lane's complete configuration
// file. Nothing is written unless everything succeeded, and the file
// appears at once or not at all (a temporary file renamed over it), so
// an existing configuration survives a used, expired or wrong code, or a
// central that is not the one the code came from.
package enroll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/internal/enrollment"
)

// DefaultPath is where the packaged gated reads its configuration.
const DefaultPath = "/etc/parkgate/gated.yaml"

// Options are gated enroll's flags.
type Options struct {
	// Central is central's HTTP API URL (--central).
	Central string
	// Code is the one-time code (--code).
	Code string
	// Path is the configuration file to write (--config).
	Path string
	// Hardware is hardware.mode for the file (sim or rpi; empty: gated's
	// default, sim).
	Hardware string
	// HTTP is the client for central (nil: one with a 30 s timeout).
	HTTP *http.Client
	// Owner, when the process may (as root), is the user who gets the
	// file (gated's service user); without such a user, an existing
	// file's owner and group are kept.
	Owner string
}

// ServiceUser is the user the packaged gated runs as.
const ServiceUser = "parkgate"

// Result says what was written.
type Result struct {
	Path   string
	Bundle enrollment.Bundle
	// BrokerURL is the broker the file points the lane to.
	BrokerURL string
	Hardware  string
	// BrokerCheck is the outcome of a TLS handshake with the broker,
	// trusting the CA written (nil: it verified). A failure does not undo
	// the enrollment: the usual cause, a name central's certificate lacks,
	// is fixed on central (mqtt.tls.hosts, then a restart).
	BrokerCheck error
}

// Run enrolls the gate and writes its configuration.
func Run(ctx context.Context, opt Options) (Result, error) {
	res := Result{Path: opt.Path}
	if res.Path == "" {
		res.Path = DefaultPath
	}
	code, err := enrollment.ParseCode(opt.Code)
	if err != nil {
		return res, err
	}
	base, err := url.Parse(strings.TrimSpace(opt.Central))
	if _, uerr := enrollment.EndpointURL(opt.Central); err != nil || uerr != nil {
		return res, fmt.Errorf("--central %q: want central's HTTP API URL, e.g. http://central.example:8080", opt.Central)
	}
	// The lane's own settings (hardware, paths, camera) come from the file
	// being replaced, when there is one: the package installs one set for
	// a Pi (hardware.mode rpi, the database under /var/lib/parkgate), and
	// an operator may have wired the lane before enrolling it. Only what
	// central hands over is new.
	def, err := config.Load("", nil)
	if err != nil {
		return res, err
	}
	if _, serr := os.Stat(res.Path); serr == nil {
		if def, err = config.Load(res.Path, nil); err != nil {
			return res, fmt.Errorf("%s is there but does not load, so its settings cannot be kept (nothing written; fix or remove it): %w", res.Path, err)
		}
	}
	res.Hardware = def.Hardware.Mode
	if opt.Hardware != "" {
		if opt.Hardware != "sim" && opt.Hardware != "rpi" {
			return res, fmt.Errorf("--hardware %q: want sim or rpi", opt.Hardware)
		}
		res.Hardware = opt.Hardware
	}
	// The file must be writable before the code is spent on central.
	w, err := newAtomicFile(res.Path, opt.Owner)
	if err != nil {
		return res, err
	}
	defer w.abort()

	hc := opt.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	b, err := enrollment.Enroll(ctx, hc, opt.Central, code)
	if err != nil {
		return res, err
	}
	res.Bundle = b
	res.BrokerURL, err = brokerURL(b.MQTT, base)
	if err != nil {
		return res, err
	}
	text, err := render(b, res.BrokerURL, res.Hardware, def)
	if err != nil {
		return res, err
	}
	if err := w.write(text); err != nil {
		return res, err
	}
	// What was written must be a configuration gated starts with.
	cfg, err := config.Load(w.tmp, nil)
	if err != nil {
		return res, fmt.Errorf("central's answer does not make a valid configuration (nothing written): %w", err)
	}
	if err := w.commit(); err != nil {
		return res, err
	}
	res.BrokerCheck = checkBroker(ctx, cfg.MQTT)
	return res, nil
}

// checkBroker shakes hands with an ssl:// broker as the lane will,
// trusting what the config trusts; nil for other schemes.
func checkBroker(ctx context.Context, m config.MQTT) error {
	u, err := url.Parse(m.URL)
	if err != nil || u.Scheme != "ssl" && u.Scheme != "tls" {
		return nil
	}
	tc, err := m.TLSConfig()
	if err != nil {
		return err
	}
	if tc == nil {
		tc = &tls.Config{}
	}
	tc.ServerName = u.Hostname()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	return c.Close()
}

// brokerURL is central's announced broker URL, or the host the gate
// reached central by with the broker's TLS port: the host the gate
// already reaches, and which central's own certificate names
// (mqtt.tls.hosts for a name central cannot know by itself).
func brokerURL(m enrollment.MQTT, central *url.URL) (string, error) {
	if m.URL != "" {
		return m.URL, nil
	}
	host := central.Hostname()
	switch {
	case m.TLSPort > 0:
		return "ssl://" + net.JoinHostPort(host, strconv.Itoa(m.TLSPort)), nil
	case m.PlainPort > 0:
		return "tcp://" + net.JoinHostPort(host, strconv.Itoa(m.PlainPort)), nil
	}
	return "", errors.New("central announced no broker (enroll.broker_url empty and no broker listener)")
}

// atomicFile is the configuration being written: a temporary file next to
// the target, renamed over it only at commit.
type atomicFile struct {
	path, tmp string
	f         *os.File
	done      bool
}

func newAtomicFile(path, owner string) (*atomicFile, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("--config %s: not a regular file", path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	// CreateTemp makes the file with mode 0600 before anything is in it:
	// it will hold the gate's password.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("--config %s: cannot write there (run as root for %s): %w", path, DefaultPath, err)
	}
	a := &atomicFile{path: path, tmp: f.Name(), f: f}
	if err := a.chown(owner); err != nil {
		a.abort()
		return nil, err
	}
	return a, nil
}

// chown gives the new file, when the process may (as root), to owner
// (gated's service user: mode 0600 lets nobody else read it, and gated
// must), or, if there is no such user here, to the existing file's owner
// and group.
func (a *atomicFile) chown(owner string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if owner != "" {
		if u, err := user.Lookup(owner); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			return a.f.Chown(uid, gid)
		}
	}
	if fi, err := os.Stat(a.path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return a.f.Chown(int(st.Uid), int(st.Gid))
		}
	}
	return nil
}

func (a *atomicFile) write(text string) error {
	if _, err := a.f.WriteString(text); err != nil {
		return fmt.Errorf("writing %s: %w", a.tmp, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", a.tmp, err)
	}
	return nil
}

func (a *atomicFile) commit() error {
	if err := a.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(a.tmp, a.path); err != nil {
		return fmt.Errorf("--config %s: %w", a.path, err)
	}
	a.done = true
	if d, err := os.Open(filepath.Dir(a.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// abort removes the temporary file unless it was committed.
func (a *atomicFile) abort() {
	if a.done {
		return
	}
	a.f.Close()
	os.Remove(a.tmp)
}

// q quotes a string for YAML: a JSON string is a YAML double-quoted
// scalar, and Go's quoting of printable ASCII is JSON's.
func q(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		s = strings.Map(func(r rune) rune {
			if r < 0x20 || r > 0x7e {
				return -1
			}
			return r
		}, s)
	}
	return strconv.Quote(s)
}

// block indents a multi-line value for a YAML literal block (|).
func block(s, indent string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = indent + strings.TrimRight(l, "\r")
	}
	return strings.Join(lines, "\n")
}

type view struct {
	B         enrollment.Bundle
	BrokerURL string
	Mode      string
	Def       config.Config
	When      string
}

var tmpl = template.Must(template.New("gated.yaml").Funcs(template.FuncMap{
	"q": q, "indent": block, "join": strings.Join,
	"dur": func(d time.Duration) string { return d.String() },
}).Parse(configTemplate))

func render(b enrollment.Bundle, broker, mode string, def config.Config) (string, error) {
	var sb strings.Builder
	err := tmpl.Execute(&sb, view{B: b, BrokerURL: broker, Mode: mode, Def: def, When: time.Now().UTC().Format(time.RFC3339)})
	return sb.String(), err
}

const configTemplate = `# gated — the gate controller of this lane. Written by ` + "`gated enroll`" + `
# at {{.When}} from central's answer and the settings of the file it
# replaced (or gated's defaults); edit the hardware section
# for the lane's wiring (docs/gated.md). Keys not listed keep gated's defaults
# (every key is described in configs/gated.yaml of the parkgate sources).
# Any key can be overridden from the environment (PARKING_ + the key
# upper-cased, "." → "_"). This file holds the gate's broker password:
# keep it mode 0600, readable by gated's user only.

# The site, as central names it (the MQTT topics parking/{site}/...).
site: {{q .B.Site}}

gate:
  # This lane, as central provisioned it; its events are checked against
  # the role.
  id: {{q .B.GateID}}
  role: {{q .B.Role}}
  # What the lane does while its clock is not trusted yet: signature_only,
  # deny or exit_only.
  offline_policy: {{q .Def.Gate.OfflinePolicy}}

http:
  # The local API (status, metrics; the simulator in sim mode). Keep it on
  # loopback.
  addr: {{q .Def.HTTP.Addr}}
  # The camera's own listener for POST /v1/anpr (empty: on addr).
  anpr_addr: {{q .Def.HTTP.ANPRAddr}}

db:
  # The lane's SQLite file, relative to the working directory
  # (/var/lib/parkgate under systemd).
  path: {{q .Def.DB.Path}}

# Central's MQTT broker. The password is this gate's own, made at
# enrollment; the CA is the one central's broker certificate is issued by,
# the only one trusted for it.
mqtt:
  url: {{q .BrokerURL}}
  username: {{q .B.MQTT.Username}}
  password: {{q .B.MQTT.Password}}
  keepalive: {{dur .Def.MQTT.Keepalive}}
{{- if .B.MQTT.CA}}
  ca: |
{{indent .B.MQTT.CA "    "}}
{{- else}}
  # No CA from central: the system's CAs are trusted.
  ca: ""
{{- end}}

tickets:
  # The site's ticket verification key(s), comma-separated.
  public_key: {{q (join .B.TicketPublicKeys ",")}}

hardware:
  # sim (the simulator, driven over HTTP) or rpi (GPIO). The pins below are
  # gated's defaults: check them against the wiring before the lane
  # drives a barrier (gated check-config warns about risky pins).
  mode: {{q .Mode}}
  # The relay on the barrier board's OPEN input (never START).
  relay_pin: {{q .Def.Hardware.RelayPin}}
  hold_pin: {{q .Def.Hardware.HoldPin}}
  # The vehicle loop detector's output.
  loop_pin: {{q .Def.Hardware.LoopPin}}
  open_status_pin: {{q .Def.Hardware.OpenStatusPin}}
  closed_status_pin: {{q .Def.Hardware.ClosedStatusPin}}
  active_low: {{.Def.Hardware.ActiveLow}}
  relay_active_low: {{q .Def.Hardware.RelayActiveLow}}
  loop_active_low: {{q .Def.Hardware.LoopActiveLow}}
  loop_pull: {{q .Def.Hardware.LoopPull}}
  debounce: {{dur .Def.Hardware.Debounce}}
  noise_limit: {{dur .Def.Hardware.NoiseLimit}}
  # pulse (a pulse on OPEN) or hold (hold_pin held while open).
  barrier_mode: {{q .Def.Hardware.BarrierMode}}
  pulse: {{dur .Def.Hardware.Pulse}}
  no_vehicle_timeout: {{dur .Def.Hardware.NoVehicleTimeout}}
  close_timeout: {{dur .Def.Hardware.CloseTimeout}}
  # The ticket scanner's serial device (empty: none), e.g. /dev/ttyACM0.
  reader_device: {{q .Def.Hardware.ReaderDevice}}
  reader_baud: {{.Def.Hardware.ReaderBaud}}

anpr:
  # The plate camera's pushes: the formats taken (auto: every supported
  # one), the networks they are taken from, and an optional HTTP Basic
  # login (docs/gated.md).
  preset: {{q .Def.ANPR.Preset}}
  min_confidence: {{.Def.ANPR.MinConfidence}}
  dedup_window: {{dur .Def.ANPR.DedupWindow}}
  allow_from: [{{range $i, $n := .Def.ANPR.AllowFrom}}{{if $i}}, {{end}}{{q $n}}{{end}}]
  username: {{q .Def.ANPR.Username}}
  password: {{q .Def.ANPR.Password}}

log:
  level: {{q .Def.Log.Level}}
  format: {{q .Def.Log.Format}}
`
