// Package config is gated's configuration (PRODUCT.md §9): the keys, their
// defaults and their validation. internal/configload reads it (defaults,
// then the YAML file given with --config, then PARKING_* environment
// variables); the rest of gated receives a validated Config.
package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/parkgate/parkgate/internal/configload"
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
}

// Hardware says how the lane is wired.
type Hardware struct {
	Mode             string        `mapstructure:"mode"`
	RelayPin         string        `mapstructure:"relay_pin"`
	HoldPin          string        `mapstructure:"hold_pin"`
	LoopPin          string        `mapstructure:"loop_pin"`
	OpenStatusPin    string        `mapstructure:"open_status_pin"`
	ClosedStatusPin  string        `mapstructure:"closed_status_pin"`
	ActiveLow        bool          `mapstructure:"active_low"`
	Debounce         time.Duration `mapstructure:"debounce"`
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
	Preset        string        `mapstructure:"preset"`
	MinConfidence float64       `mapstructure:"min_confidence"`
	DedupWindow   time.Duration `mapstructure:"dedup_window"`
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
	"db.path":                     "gated.db",
	"mqtt.url":                    "tcp://127.0.0.1:1884",
	"mqtt.username":               "",
	"mqtt.password":               "",
	"mqtt.keepalive":              "15s",
	"hardware.mode":               "sim",
	"hardware.relay_pin":          "GPIO17",
	"hardware.hold_pin":           "",
	"hardware.loop_pin":           "GPIO27",
	"hardware.open_status_pin":    "",
	"hardware.closed_status_pin":  "",
	"hardware.active_low":         false,
	"hardware.debounce":           "50ms",
	"hardware.barrier_mode":       "pulse",
	"hardware.pulse":              "500ms",
	"hardware.no_vehicle_timeout": "30s",
	"hardware.close_timeout":      "20s",
	"hardware.reader_device":      "",
	"hardware.reader_baud":        9600,
	"tickets.public_key":          "",
	"anpr.preset":                 "plain",
	"anpr.min_confidence":         0.8,
	"anpr.dedup_window":           "5s",
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
	if u := c.MQTT.URL; u != "" && !strings.HasPrefix(u, "tcp://") && !strings.HasPrefix(u, "ssl://") && !strings.HasPrefix(u, "tls://") {
		bad("mqtt.url %q: want tcp://host:port or ssl://host:port, or empty to run the lane alone", u)
	}
	if c.MQTT.Keepalive < time.Second || c.MQTT.Keepalive > 10*time.Minute || c.MQTT.Keepalive%time.Second != 0 {
		bad("mqtt.keepalive %s: want whole seconds from 1s to 10m (MQTT counts it in seconds)", c.MQTT.Keepalive)
	}
	if c.DB.Path == "" {
		bad("db.path: give the local database file's path")
	}
	h := c.Hardware
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
	if len(errs) > 0 {
		return errors.New("invalid configuration:\n  " + strings.Join(errs, "\n  "))
	}
	return nil
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
