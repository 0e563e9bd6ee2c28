// Package config is gated's configuration (configs/gated.yaml lists every key): the keys, their
// defaults and their validation. internal/configload reads it (defaults,
// then the YAML file given with --config, then PARKING_* environment
// variables); the rest of gated receives a validated Config.
package config

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/hardware/anpr"
	"github.com/parkgate/parkgate/internal/configload"
	"github.com/parkgate/parkgate/internal/mqtturl"
	"github.com/parkgate/parkgate/sync/syncmsg"
	"github.com/parkgate/parkgate/ticket"
)

// Config is gated's whole configuration.
type Config struct {
	Site     string   `mapstructure:"site"`
	Gate     Gate     `mapstructure:"gate"`
	HTTP     HTTP     `mapstructure:"http"`
	DB       DB       `mapstructure:"db"`
	MQTT     MQTT     `mapstructure:"mqtt"`
	Hardware Hardware `mapstructure:"hardware"`
	Tickets  Tickets  `mapstructure:"tickets"`
	ANPR     ANPR     `mapstructure:"anpr"`
	Log      Log      `mapstructure:"log"`
}

// Gate is this lane's identity and rules.
type Gate struct {
	ID            string        `mapstructure:"id"`
	Role          string        `mapstructure:"role"`
	OfflinePolicy string        `mapstructure:"offline_policy"`
	EarlyArrival  time.Duration `mapstructure:"early_arrival"`
	// ClockFloor is a time before which the wall clock is certainly
	// wrong (a Pi without RTC boots in 1970 or at its last shutdown).
	ClockFloor string `mapstructure:"clock_floor"`
	// RepeatWindow: the same code or plate read again within it is one
	// read (a ticket held in front of the scanner reads many times).
	RepeatWindow time.Duration `mapstructure:"repeat_window"`
	// StrictExit lets out only cars the gate knows are inside.
	StrictExit bool `mapstructure:"strict_exit"`
}

// HTTP is the local API listener.
type HTTP struct {
	Addr string `mapstructure:"addr"`
	// ANPRAddr, when set, is the camera's own listener: POST /v1/anpr is
	// served there and only there, so that the local API (status,
	// metrics, simulator) can stay on loopback while the camera reaches
	// the gate over the lane network. Empty: /v1/anpr is on Addr.
	ANPRAddr string `mapstructure:"anpr_addr"`
}

// DB is the local SQLite file (cache and outbox).
type DB struct {
	Path string `mapstructure:"path"`
}

// MQTT is the broker gated syncs through (used by the sync).
type MQTT struct {
	URL      string `mapstructure:"url"`
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// Keepalive is the MQTT keepalive: a silently dead connection is
	// noticed by the gate within about it, and by the broker (which then
	// publishes the gate's will) within one and a half times it.
	Keepalive time.Duration `mapstructure:"keepalive"`
	// CA (PEM, inline) and CAFile are the CA certificates trusted for an
	// ssl:// broker instead of the system's: `gated enroll` writes
	// central's own CA into CA. See TLSConfig.
	CA     string `mapstructure:"ca"`
	CAFile string `mapstructure:"ca_file"`
}

// Hardware says how the lane is wired.
type Hardware struct {
	Mode            string `mapstructure:"mode"`
	RelayPin        string `mapstructure:"relay_pin"`
	HoldPin         string `mapstructure:"hold_pin"`
	LoopPin         string `mapstructure:"loop_pin"`
	OpenStatusPin   string `mapstructure:"open_status_pin"`
	ClosedStatusPin string `mapstructure:"closed_status_pin"`
	// ActiveLow is the polarity of every pin whose own key is empty.
	ActiveLow bool `mapstructure:"active_low"`
	// RelayActiveLow and LoopActiveLow override ActiveLow for the relay
	// outputs (relay_pin, hold_pin) and the loop input: "", "true" or
	// "false" (see RelayLow, LoopLow).
	RelayActiveLow string `mapstructure:"relay_active_low"`
	LoopActiveLow  string `mapstructure:"loop_active_low"`
	// LoopPull is the loop input's pull resistor: up, down, none, or
	// empty to leave the pin's as it is.
	LoopPull string        `mapstructure:"loop_pull"`
	Debounce time.Duration `mapstructure:"debounce"`
	// NoiseLimit: an input that changes for this long without holding a
	// level for the debounce time is reported noisy; 0 turns it off.
	NoiseLimit       time.Duration `mapstructure:"noise_limit"`
	BarrierMode      string        `mapstructure:"barrier_mode"`
	Pulse            time.Duration `mapstructure:"pulse"`
	NoVehicleTimeout time.Duration `mapstructure:"no_vehicle_timeout"`
	CloseTimeout     time.Duration `mapstructure:"close_timeout"`
	ReaderDevice     string        `mapstructure:"reader_device"`
	ReaderBaud       int           `mapstructure:"reader_baud"`
}

// Tickets holds the site's public key(s).
type Tickets struct {
	// PublicKey is one key in the form `centrald pubkey` prints, or
	// several separated by commas (during a key rotation).
	PublicKey string `mapstructure:"public_key"`
}

// ANPR configures the plate camera input.
type ANPR struct {
	// Preset is "auto" (every supported format, recognised by itself) or
	// the one format to accept (see anpr.Presets).
	Preset        string        `mapstructure:"preset"`
	MinConfidence float64       `mapstructure:"min_confidence"`
	DedupWindow   time.Duration `mapstructure:"dedup_window"`
	// AllowFrom lists the networks (CIDR; a bare address is one host)
	// whose pushes are taken: a plate pushed to the gate opens the
	// barrier, so nobody else may push one. See AllowedSources.
	AllowFrom []string `mapstructure:"allow_from"`
	// Username and Password, when set, are HTTP Basic credentials every
	// push must carry as well.
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

var defaults = map[string]any{
	"site":                        "demo",
	"gate.id":                     "entry-1",
	"gate.role":                   "entry",
	"gate.offline_policy":         "signature_only",
	"gate.early_arrival":          "15m",
	"gate.clock_floor":            "2026-01-01T00:00:00Z",
	"gate.repeat_window":          "5s",
	"gate.strict_exit":            false,
	"http.addr":                   "127.0.0.1:8081",
	"http.anpr_addr":              "",
	"db.path":                     "gated.db",
	"mqtt.url":                    "tcp://127.0.0.1:1884",
	"mqtt.username":               "",
	"mqtt.password":               "",
	"mqtt.keepalive":              "15s",
	"mqtt.ca":                     "",
	"mqtt.ca_file":                "",
	"hardware.mode":               "sim",
	"hardware.relay_pin":          "GPIO17",
	"hardware.hold_pin":           "",
	"hardware.loop_pin":           "GPIO27",
	"hardware.open_status_pin":    "",
	"hardware.closed_status_pin":  "",
	"hardware.active_low":         false,
	"hardware.relay_active_low":   "",
	"hardware.loop_active_low":    "",
	"hardware.loop_pull":          "",
	"hardware.debounce":           "50ms",
	"hardware.noise_limit":        "5s",
	"hardware.barrier_mode":       "pulse",
	"hardware.pulse":              "500ms",
	"hardware.no_vehicle_timeout": "30s",
	"hardware.close_timeout":      "20s",
	"hardware.reader_device":      "",
	"hardware.reader_baud":        9600,
	"tickets.public_key":          "",
	"anpr.preset":                 "auto",
	"anpr.min_confidence":         0.8,
	"anpr.dedup_window":           "5s",
	"anpr.allow_from":             []string{"127.0.0.0/8", "::1/128"},
	"anpr.username":               "",
	"anpr.password":               "",
	"log.level":                   "info",
	"log.format":                  "auto",
}

// Load reads the configuration: path may be empty (defaults and
// environment only). environ is the process environment as os.Environ
// returns it.
func Load(path string, environ []string) (Config, error) {
	var c Config
	if err := configload.Load(path, environ, defaults, &c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var (
	pinRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)
)

// Validate checks every value and reports all problems at once.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if syncmsg.ValidID(c.Site) != nil {
		bad("site %q: use 1-32 lower-case letters, digits, '-' or '_' (it names MQTT topics)", c.Site)
	}
	if syncmsg.ValidID(c.Gate.ID) != nil {
		bad("gate.id %q: use 1-32 lower-case letters, digits, '-' or '_' (it names MQTT topics)", c.Gate.ID)
	}
	if c.Gate.Role != "entry" && c.Gate.Role != "exit" {
		bad("gate.role %q: want entry or exit", c.Gate.Role)
	}
	switch c.Gate.OfflinePolicy {
	case "signature_only", "deny", "exit_only":
	default:
		bad("gate.offline_policy %q: want signature_only, deny or exit_only", c.Gate.OfflinePolicy)
	}
	if c.Gate.EarlyArrival < 0 || c.Gate.EarlyArrival > 24*time.Hour {
		bad("gate.early_arrival %s: want 0 to 24h", c.Gate.EarlyArrival)
	}
	if c.Gate.RepeatWindow < 100*time.Millisecond || c.Gate.RepeatWindow > time.Minute {
		bad("gate.repeat_window %s: want 100ms to 1m", c.Gate.RepeatWindow)
	}
	if _, err := c.ClockFloor(); err != nil {
		bad("gate.clock_floor %q: want an RFC 3339 time", c.Gate.ClockFloor)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr %q: want host:port", c.HTTP.Addr)
	}
	if a := c.HTTP.ANPRAddr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			bad("http.anpr_addr %q: want host:port, or empty to serve the camera on http.addr", a)
		} else if a == c.HTTP.Addr && port != "0" {
			bad("http.anpr_addr %q: the same as http.addr; leave it empty to serve the camera there", a)
		}
	}
	if _, err := mqtturl.Split(c.MQTT.URL); err != nil {
		bad("mqtt.url: %v; want tcp://host:port or ssl://host:port (a clustered broker's nodes separated by commas), or empty to run the lane alone", err)
	}
	if c.MQTT.Keepalive < time.Second || c.MQTT.Keepalive > 10*time.Minute || c.MQTT.Keepalive%time.Second != 0 {
		bad("mqtt.keepalive %s: want whole seconds from 1s to 10m (MQTT counts it in seconds)", c.MQTT.Keepalive)
	}
	if _, err := c.MQTT.TLSConfig(); err != nil {
		bad("%v", err)
	}
	if c.DB.Path == "" {
		bad("db.path: give the local database file's path")
	}
	h := c.Hardware
	for key, v := range map[string]string{"hardware.relay_active_low": h.RelayActiveLow, "hardware.loop_active_low": h.LoopActiveLow} {
		if _, err := parseBoolOr(v, false); err != nil {
			bad("%s %q: want true, false, or empty for hardware.active_low's value", key, v)
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.LoopPull)) {
	case "", "up", "down", "none", "float":
	default:
		bad("hardware.loop_pull %q: want up (a dry contact to ground), down, none, or empty to leave the pin as it is", h.LoopPull)
	}
	if dup := h.duplicatePins(); dup != "" {
		bad("%s", dup)
	}
	switch h.Mode {
	case "sim":
	case "rpi":
		for key, pin := range map[string]string{"hardware.relay_pin": h.RelayPin, "hardware.loop_pin": h.LoopPin} {
			if !pinRe.MatchString(pin) {
				bad("%s %q: want a GPIO line name such as GPIO17", key, pin)
			}
		}
		for key, pin := range map[string]string{"hardware.hold_pin": h.HoldPin, "hardware.open_status_pin": h.OpenStatusPin, "hardware.closed_status_pin": h.ClosedStatusPin} {
			if pin != "" && !pinRe.MatchString(pin) {
				bad("%s %q: want a GPIO line name such as GPIO22, or empty", key, pin)
			}
		}
	default:
		bad("hardware.mode %q: want sim or rpi", h.Mode)
	}
	switch h.BarrierMode {
	case "pulse":
	case "hold":
		if h.Mode == "rpi" && h.HoldPin == "" {
			bad("hardware.barrier_mode hold needs hardware.hold_pin")
		}
	default:
		bad("hardware.barrier_mode %q: want pulse or hold", h.BarrierMode)
	}
	if h.Pulse < 200*time.Millisecond || h.Pulse > 2*time.Second {
		bad("hardware.pulse %s: want 200ms to 2s", h.Pulse)
	}
	if h.Debounce < 0 || h.Debounce > time.Second {
		bad("hardware.debounce %s: want 0 to 1s", h.Debounce)
	}
	if h.NoiseLimit != 0 && (h.NoiseLimit < time.Second || h.NoiseLimit > 10*time.Minute) {
		bad("hardware.noise_limit %s: want 1s to 10m, or 0 to turn the noise fault off", h.NoiseLimit)
	}
	if h.NoVehicleTimeout < time.Second || h.NoVehicleTimeout > 10*time.Minute {
		bad("hardware.no_vehicle_timeout %s: want 1s to 10m", h.NoVehicleTimeout)
	}
	if h.CloseTimeout < time.Second || h.CloseTimeout > 10*time.Minute {
		bad("hardware.close_timeout %s: want 1s to 10m", h.CloseTimeout)
	}
	switch h.ReaderBaud {
	case 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200:
	default:
		bad("hardware.reader_baud %d: want a standard rate such as 9600 or 115200", h.ReaderBaud)
	}
	if _, err := c.PublicKeys(); err != nil {
		bad("tickets.public_key: %v", err)
	}
	if c.ANPR.MinConfidence < 0 || c.ANPR.MinConfidence > 1 {
		bad("anpr.min_confidence %v: want 0 to 1", c.ANPR.MinConfidence)
	}
	if c.ANPR.DedupWindow < 0 || c.ANPR.DedupWindow > time.Hour {
		bad("anpr.dedup_window %s: want 0 to 1h", c.ANPR.DedupWindow)
	}
	if err := (anpr.Options{Preset: c.ANPR.Preset}).Check(); err != nil {
		bad("anpr.preset %q: want auto (every supported format) or one of %s", c.ANPR.Preset, strings.Join(anpr.Presets(), ", "))
	}
	if _, err := c.AllowedSources(); err != nil {
		bad("anpr.allow_from: %v", err)
	}
	if (c.ANPR.Username == "") != (c.ANPR.Password == "") {
		// Never quote the password.
		bad("anpr.username and anpr.password: set both (the camera's HTTP Basic login) or neither")
	}
	if len(errs) > 0 {
		return errors.New("invalid configuration:\n  " + strings.Join(errs, "\n  "))
	}
	return nil
}

// TLSConfig is the TLS setup for an ssl:// broker: nil (the system's
// roots) unless mqtt.ca or mqtt.ca_file name CA certificates, which are
// then the only ones trusted.
func (m MQTT) TLSConfig() (*tls.Config, error) {
	if strings.TrimSpace(m.CA) == "" && m.CAFile == "" {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if strings.TrimSpace(m.CA) != "" && !pool.AppendCertsFromPEM([]byte(m.CA)) {
		return nil, errors.New("mqtt.ca: no PEM certificate in it (want -----BEGIN CERTIFICATE----- ...)")
	}
	if m.CAFile != "" {
		b, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("mqtt.ca_file %s: no PEM certificate in it", m.CAFile)
		}
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// RelayLow is the relay outputs' polarity: hardware.relay_active_low,
// else hardware.active_low. Valid after Validate.
func (h Hardware) RelayLow() bool {
	v, _ := parseBoolOr(h.RelayActiveLow, h.ActiveLow)
	return v
}

// LoopLow is the loop input's polarity: hardware.loop_active_low, else
// hardware.active_low. Valid after Validate.
func (h Hardware) LoopLow() bool {
	v, _ := parseBoolOr(h.LoopActiveLow, h.ActiveLow)
	return v
}

// parseBoolOr parses a per-role boolean; empty is def. (A YAML true
// arrives here as "1", as viper decodes weakly.)
func parseBoolOr(s string, def bool) (bool, error) {
	if s = strings.TrimSpace(s); s == "" {
		return def, nil
	}
	return strconv.ParseBool(s)
}

// duplicatePins names two roles given the same line: the second claim
// would take the line from the first (a relay line turned into an input).
func (h Hardware) duplicatePins() string {
	roles := []struct{ key, pin string }{
		{"hardware.relay_pin", h.RelayPin}, {"hardware.hold_pin", h.HoldPin}, {"hardware.loop_pin", h.LoopPin},
		{"hardware.open_status_pin", h.OpenStatusPin}, {"hardware.closed_status_pin", h.ClosedStatusPin},
	}
	seen := map[string]string{}
	for _, r := range roles {
		if r.pin == "" {
			continue
		}
		p := strings.ToUpper(r.pin)
		if first, ok := seen[p]; ok {
			return fmt.Sprintf("%s and %s are both %s: each role needs a line of its own", first, r.key, r.pin)
		}
		seen[p] = r.key
	}
	return ""
}

// BootWarnings are wiring risks the configuration shows but cannot rule
// out: a relay on a pin whose power-on pull is its active level is
// energised from power-on until gated claims the line. On the Raspberry
// Pi 4 (BCM2711) and earlier, GPIO0-8 are pulled up at power-on and
// GPIO9-27 pulled down.
func (c *Config) BootWarnings() []string {
	h := c.Hardware
	if h.Mode != "rpi" {
		return nil
	}
	var ws []string
	low := h.RelayLow()
	for _, r := range []struct{ key, pin string }{{"hardware.relay_pin", h.RelayPin}, {"hardware.hold_pin", h.HoldPin}} {
		n, ok := bcmNumber(r.pin)
		if !ok || n > 27 {
			continue
		}
		pulledUp := n <= 8
		if pulledUp == low {
			continue // the power-on level is the inactive one
		}
		level, drive := "high", "dl"
		if low {
			level, drive = "low", "dh"
		}
		ws = append(ws, fmt.Sprintf("%s %s: this pin is pulled %s at power-on on a Raspberry Pi 4 (BCM2711) and earlier, which is the relay's active level: the barrier is asked to open from power-on until gated starts. Use another pin, or hold it inactive from the firmware on with the line gpio=%d=op,%s in /boot/firmware/config.txt",
			r.key, r.pin, level, n, drive))
	}
	return ws
}

// bcmNumber is n for a line called GPIOn.
func bcmNumber(pin string) (int, bool) {
	rest, ok := strings.CutPrefix(strings.ToUpper(pin), "GPIO")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

// ClockFloor parses gate.clock_floor.
func (c *Config) ClockFloor() (time.Time, error) {
	return time.Parse(time.RFC3339, c.Gate.ClockFloor)
}

// PublicKeys parses tickets.public_key (empty: none yet; the lane denies
// tickets with reason no_key until one is configured or synced).
func (c *Config) PublicKeys() ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, s := range strings.Split(c.Tickets.PublicKey, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		k, err := ticket.ParsePublicKey(s)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// AllowedSources parses anpr.allow_from: CIDR prefixes such as
// 10.20.0.0/24, or bare addresses, which stand for that one host (/32,
// /128). Entries may carry spaces around them (the environment form is
// comma-separated); empty entries are skipped. An empty list is valid and
// refuses every push.
func (c *Config) AllowedSources() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.ANPR.AllowFrom {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a network in CIDR form such as 10.20.0.0/24 or ::1/128", s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is neither an IP address nor a network in CIDR form such as 10.20.0.0/24", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
