// Package config is centrald's configuration (configs/centrald.yaml lists every key): the keys,
// their defaults and their validation. internal/configload reads it
// (defaults, then the YAML file given with --config, then PARKING_*
// environment variables); the rest of centrald receives a validated Config.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/retention"
	"github.com/parkgate/parkgate/internal/configload"
	"github.com/parkgate/parkgate/internal/mqtturl"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// Config is centrald's whole configuration.
type Config struct {
	Site         string       `mapstructure:"site"`
	HTTP         HTTP         `mapstructure:"http"`
	DB           DB           `mapstructure:"db"`
	Spots        Spots        `mapstructure:"spots"`
	MQTT         MQTT         `mapstructure:"mqtt"`
	Payment      Payment      `mapstructure:"payment"`
	Auth         Auth         `mapstructure:"auth"`
	Tickets      Tickets      `mapstructure:"tickets"`
	Reservations Reservations `mapstructure:"reservations"`
	Enroll       Enroll       `mapstructure:"enroll"`
	Retention    Retention    `mapstructure:"retention"`
	Log          Log          `mapstructure:"log"`
}

// Retention says how long personal data is kept.
type Retention struct {
	// PersonalData is how long a finished reservation keeps its personal
	// data (retention.ParseKeep: "90d", "2160h" or "off").
	PersonalData string `mapstructure:"personal_data"`
}

// PersonalDataKeep is retention.personal_data as a duration; 0 means off
// (validated at load).
func (c *Config) PersonalDataKeep() time.Duration {
	d, _ := retention.ParseKeep(c.Retention.PersonalData)
	return d
}

// HTTP is the API listener.
type HTTP struct {
	Addr string `mapstructure:"addr"`
}

// DB selects the store.
type DB struct {
	Driver string `mapstructure:"driver"`
	DSN    string `mapstructure:"dsn"`
	// GroupCommit (SQLite only): concurrent writes share one transaction
	// and one fsync, each request still failing alone and answered only
	// once its changes are on disk. Off, every write has its own fsync.
	GroupCommit bool `mapstructure:"group_commit"`
}

// Spots are the site's parking spots.
type Spots struct {
	Count int      `mapstructure:"count"`
	IDs   []string `mapstructure:"ids"`
}

// MQTT is the broker the gates sync through.
type MQTT struct {
	Embedded       bool   `mapstructure:"embedded"`
	Listen         string `mapstructure:"listen"`
	URL            string `mapstructure:"url"`
	Username       string `mapstructure:"username"`
	Password       string `mapstructure:"password"`
	AllowAnonymous bool   `mapstructure:"allow_anonymous"`
	// Shared subscribes to the gates' events through $share/centrald/…,
	// so that several centrald instances split them between them.
	Shared bool `mapstructure:"shared"`
	// CertFile and KeyFile turn the Listen listener itself into TLS (the
	// older way; mqtt.tls adds a TLS listener of its own instead).
	CertFile string  `mapstructure:"cert_file"`
	KeyFile  string  `mapstructure:"key_file"`
	TLS      MQTTTLS `mapstructure:"tls"`
}

// MQTTTLS is the embedded broker's TLS listener for the gates.
type MQTTTLS struct {
	// Listen is its address; empty: no TLS listener.
	Listen string `mapstructure:"listen"`
	// CertFile and KeyFile are the broker's certificate and key (PEM);
	// empty: centrald's own CA and certificate in Dir.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// CAFile is the CA certificate enrollment hands the gates with a
	// configured CertFile; empty: the gates' system roots.
	CAFile string `mapstructure:"ca_file"`
	// Dir keeps centrald's own CA and broker certificate.
	Dir string `mapstructure:"dir"`
	// Hosts are more names and addresses for centrald's own broker
	// certificate (the host name and the host's addresses are in it).
	Hosts []string `mapstructure:"hosts"`
}

// Payment configures prices and the provider.
type Payment struct {
	Provider     string        `mapstructure:"provider"`
	Stripe       Stripe        `mapstructure:"stripe"`
	Fake         Fake          `mapstructure:"fake"`
	PricePerHour float64       `mapstructure:"price_per_hour"`
	Currency     string        `mapstructure:"currency"`
	Timeout      time.Duration `mapstructure:"timeout"`
	RefundUnused bool          `mapstructure:"refund_unused"`
	NoShowFee    float64       `mapstructure:"noshow_fee"`
	// ActionTimeout is how long a payment may wait for the cardholder's
	// authentication (3-D Secure).
	ActionTimeout time.Duration `mapstructure:"action_timeout"`
	// OverstayPerHour is the overstay fee per started hour in the major
	// unit; empty means the reservation's own hourly price.
	OverstayPerHour string `mapstructure:"overstay_per_hour"`
}

// Stripe is the Stripe provider's account.
type Stripe struct {
	SecretKey string `mapstructure:"secret_key"`
	APIURL    string `mapstructure:"api_url"`
	// WebhookSecret is the signing secret (whsec_...) of the webhook
	// endpoint; empty disables POST /webhooks/stripe.
	WebhookSecret string `mapstructure:"webhook_secret"`
}

// Fake is the fake provider's memory.
type Fake struct {
	// StateFile keeps what the fake charged and refunded across restarts.
	StateFile string `mapstructure:"state_file"`
}

// Auth holds the operators' credential.
type Auth struct {
	AdminToken string `mapstructure:"admin_token"`
}

// Tickets configures ticket signing.
type Tickets struct {
	KeyFile string `mapstructure:"key_file"`
}

// Reservations are the booking rules.
type Reservations struct {
	PaymentHold   time.Duration `mapstructure:"payment_hold"`
	NoShowGrace   time.Duration `mapstructure:"noshow_grace"`
	EarlyArrival  time.Duration `mapstructure:"early_arrival"`
	MaxDuration   time.Duration `mapstructure:"max_duration"`
	MaxAdvance    time.Duration `mapstructure:"max_advance"`
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
	// OverstayGrace is how long after reservedUntil a car may leave before
	// it owes the overstay fee.
	OverstayGrace time.Duration `mapstructure:"overstay_grace"`
}

// Enroll configures gate enrollment (centrald gate enroll, POST /enroll).
type Enroll struct {
	// TTL is how long an enrollment code stays valid.
	TTL time.Duration `mapstructure:"ttl"`
	// KeyFile is central's enrollment signing key (Ed25519), created on
	// first use; codes carry its fingerprint.
	KeyFile string `mapstructure:"key_file"`
	// BrokerURL is the broker as enrolled gates are to reach it; empty:
	// ssl://{the host in gated enroll's --central URL}:{mqtt.tls.listen's
	// port}.
	BrokerURL string `mapstructure:"broker_url"`
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// defaults are the values used when neither file nor environment set a
// key. Every key must be here: only known keys are read from PARKING_*
// variables.
var defaults = map[string]any{
	"site":                          "demo",
	"http.addr":                     "127.0.0.1:8080",
	"db.driver":                     "sqlite",
	"db.dsn":                        "centrald.db",
	"db.group_commit":               true,
	"spots.count":                   10,
	"spots.ids":                     []string{},
	"mqtt.embedded":                 true,
	"mqtt.listen":                   "127.0.0.1:1884",
	"mqtt.url":                      "tcp://127.0.0.1:1883",
	"mqtt.username":                 "",
	"mqtt.password":                 "",
	"mqtt.allow_anonymous":          false,
	"mqtt.shared":                   true,
	"mqtt.cert_file":                "",
	"mqtt.key_file":                 "",
	"mqtt.tls.listen":               "",
	"mqtt.tls.cert_file":            "",
	"mqtt.tls.key_file":             "",
	"mqtt.tls.ca_file":              "",
	"mqtt.tls.dir":                  "mqtt-tls",
	"mqtt.tls.hosts":                []string{},
	"enroll.ttl":                    "24h",
	"enroll.key_file":               "enroll.key",
	"enroll.broker_url":             "",
	"payment.provider":              "fake",
	"payment.stripe.secret_key":     "",
	"payment.stripe.api_url":        "",
	"payment.stripe.webhook_secret": "",
	"payment.fake.state_file":       "fakepay.json",
	"payment.action_timeout":        "15m",
	"payment.overstay_per_hour":     "",
	"payment.price_per_hour":        2.50,
	"payment.currency":              "eur",
	"payment.timeout":               "10s",
	"payment.refund_unused":         true,
	"payment.noshow_fee":            2.50,
	"auth.admin_token":              "",
	"tickets.key_file":              "tickets.key",
	"reservations.payment_hold":     "15m",
	"reservations.noshow_grace":     "30m",
	"reservations.early_arrival":    "15m",
	"reservations.max_duration":     "168h",
	"reservations.max_advance":      "8760h",
	"reservations.sweep_interval":   "5s",
	"reservations.overstay_grace":   "15m",
	"retention.personal_data":       "90d",
	"log.level":                     "info",
	"log.format":                    "auto",
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
	spotRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	curRe  = regexp.MustCompile(`^[a-z]{3}$`)
	hostRe = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$`)
)

// Validate checks every value and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if syncmsg.ValidID(c.Site) != nil {
		bad("site %q: use 1-32 lower-case letters, digits, '-' or '_' (it names MQTT topics)", c.Site)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr %q: want host:port", c.HTTP.Addr)
	}
	switch c.DB.Driver {
	case "sqlite":
		if c.DB.DSN == "" {
			bad("db.dsn: give the SQLite file's path")
		}
	case "postgres":
		// The DSN may hold a password: never echo it.
		if u, err := url.Parse(c.DB.DSN); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			bad("db.dsn: with db.driver postgres, give a URL such as postgres://parkgate@db.example:5432/parkgate?sslmode=verify-full")
		}
	default:
		bad("db.driver %q: want sqlite or postgres", c.DB.Driver)
	}
	if len(c.Spots.IDs) > 0 {
		seen := map[string]bool{}
		for _, id := range c.Spots.IDs {
			if !spotRe.MatchString(id) {
				bad("spots.ids: %q is not a valid spot id (1-32 letters, digits, '-', '_')", id)
			}
			if seen[id] {
				bad("spots.ids: %q is listed twice", id)
			}
			seen[id] = true
		}
	} else if c.Spots.Count < 1 || c.Spots.Count > 100000 {
		bad("spots.count %d: want 1 to 100000 (or list spots.ids)", c.Spots.Count)
	}
	if c.MQTT.Embedded {
		if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
			bad("mqtt.listen %q: want host:port", c.MQTT.Listen)
		}
		if (c.MQTT.CertFile == "") != (c.MQTT.KeyFile == "") {
			bad("mqtt.cert_file and mqtt.key_file go together (TLS for the embedded broker)")
		}
		t := c.MQTT.TLS
		if t.Listen != "" {
			if _, _, err := net.SplitHostPort(t.Listen); err != nil {
				bad("mqtt.tls.listen %q: want host:port such as :8883, or empty for no TLS listener", t.Listen)
			}
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			bad("mqtt.tls.cert_file and mqtt.tls.key_file go together (both empty: centrald's own CA)")
		}
		if t.CAFile != "" && t.CertFile == "" {
			bad("mqtt.tls.ca_file: only with mqtt.tls.cert_file (centrald's own CA is handed to the gates by itself)")
		}
		if t.Listen != "" && t.CertFile == "" && t.Dir == "" {
			bad("mqtt.tls.dir: give a directory for centrald's own CA and broker certificate")
		}
		for _, h := range t.Hosts {
			if net.ParseIP(h) == nil && !hostRe.MatchString(h) {
				bad("mqtt.tls.hosts: %q is neither an IP address nor a host name", h)
			}
		}
	} else if _, err := mqtturl.Split(c.MQTT.URL); err != nil {
		bad("mqtt.url: %v; want tcp://host:port or ssl://host:port (a clustered broker's nodes separated by commas), or empty to run without gates", err)
	}
	switch c.Payment.Provider {
	case "fake":
		if c.Payment.Fake.StateFile == "" {
			bad("payment.fake.state_file: give a path for the fake provider's memory")
		}
	case "stripe":
		if c.Payment.Stripe.SecretKey == "" {
			bad("payment.stripe.secret_key: required with payment.provider stripe (set PARKING_PAYMENT_STRIPE_SECRET_KEY)")
		}
		if u := c.Payment.Stripe.APIURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			bad("payment.stripe.api_url %q: want an http(s) URL, or empty for Stripe itself", u)
		}
	default:
		bad("payment.provider %q: want fake or stripe", c.Payment.Provider)
	}
	if c.Payment.PricePerHour < 0 || c.Payment.PricePerHour > 10000 || math.IsNaN(c.Payment.PricePerHour) {
		bad("payment.price_per_hour %v: want 0 to 10000", c.Payment.PricePerHour)
	}
	if c.Payment.NoShowFee < 0 || c.Payment.NoShowFee > 10000 || math.IsNaN(c.Payment.NoShowFee) {
		bad("payment.noshow_fee %v: want 0 to 10000", c.Payment.NoShowFee)
	}
	if !curRe.MatchString(c.Payment.Currency) {
		bad("payment.currency %q: want a lower-case ISO 4217 code such as eur", c.Payment.Currency)
	}
	if c.Payment.Timeout < time.Second || c.Payment.Timeout > 2*time.Minute {
		bad("payment.timeout %s: want 1s to 2m", c.Payment.Timeout)
	}
	if c.Payment.ActionTimeout < time.Minute || c.Payment.ActionTimeout > 24*time.Hour {
		bad("payment.action_timeout %s: want 1m to 24h", c.Payment.ActionTimeout)
	}
	if _, err := c.OverstayPerHourMinor(); err != nil {
		bad("%v", err)
	}
	// The secret is never echoed, not even in part.
	if w := c.Payment.Stripe.WebhookSecret; w != "" && (!strings.HasPrefix(w, "whsec_") || strings.TrimSpace(w) != w) {
		bad("payment.stripe.webhook_secret: want the endpoint's signing secret, whsec_… (from the dashboard or `stripe listen`)")
	}
	if c.Auth.AdminToken != "" && len(c.Auth.AdminToken) < 16 {
		bad("auth.admin_token: use at least 16 characters")
	}
	if c.Tickets.KeyFile == "" {
		bad("tickets.key_file: give a path for the site's signing key")
	}
	if c.Enroll.TTL < time.Minute || c.Enroll.TTL > 30*24*time.Hour {
		bad("enroll.ttl %s: want 1m to 720h", c.Enroll.TTL)
	}
	if c.Enroll.KeyFile == "" {
		bad("enroll.key_file: give a path for central's enrollment key")
	}
	if u := c.Enroll.BrokerURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "ssl" && p.Scheme != "tcp") || p.Port() == "" || p.Hostname() == "" {
			bad("enroll.broker_url %q: want ssl://host:port (or tcp://host:port), or empty for the host gates enroll with and mqtt.tls.listen's port", u)
		}
	}
	r := c.Reservations
	for _, d := range []struct {
		key       string
		v, lo, hi time.Duration
	}{
		{"reservations.payment_hold", r.PaymentHold, time.Second, 24 * time.Hour},
		{"reservations.noshow_grace", r.NoShowGrace, time.Second, 24 * time.Hour},
		{"reservations.early_arrival", r.EarlyArrival, 0, 24 * time.Hour},
		{"reservations.max_duration", r.MaxDuration, time.Minute, 366 * 24 * time.Hour},
		{"reservations.max_advance", r.MaxAdvance, time.Minute, 5 * 366 * 24 * time.Hour},
		{"reservations.sweep_interval", r.SweepInterval, 100 * time.Millisecond, time.Hour},
		{"reservations.overstay_grace", r.OverstayGrace, 0, 24 * time.Hour},
	} {
		if d.v < d.lo || d.v > d.hi {
			bad("%s %s: want %s to %s", d.key, d.v, d.lo, d.hi)
		}
	}
	if _, err := retention.ParseKeep(c.Retention.PersonalData); err != nil {
		bad("%v", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration:\n  %w", joinIndented(errs))
	}
	return nil
}

func joinIndented(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}

// SpotIDs returns the configured spot ids: spots.ids, or "1".."N".
func (c *Config) SpotIDs() []string {
	if len(c.Spots.IDs) > 0 {
		return c.Spots.IDs
	}
	ids := make([]string, c.Spots.Count)
	for i := range ids {
		ids[i] = fmt.Sprint(i + 1)
	}
	return ids
}

// PricePerHourMinor is the hourly price in the currency's minor unit.
func (c *Config) PricePerHourMinor() int64 { return minor(c.Payment.PricePerHour) }

// NoShowFeeMinor is the no-show fee in the currency's minor unit.
func (c *Config) NoShowFeeMinor() int64 { return minor(c.Payment.NoShowFee) }

// OverstayPerHourMinor is the overstay fee per started hour in the minor
// unit, or -1 for the reservation's own hourly price.
func (c *Config) OverstayPerHourMinor() (int64, error) {
	v := strings.TrimSpace(c.Payment.OverstayPerHour)
	if v == "" {
		return -1, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 10000 || math.IsNaN(f) {
		return 0, fmt.Errorf("payment.overstay_per_hour %q: want 0 to 10000, or empty for the reservation's own hourly price", c.Payment.OverstayPerHour)
	}
	return minor(f), nil
}

// minor converts a major-unit amount to the minor unit, for the two-decimal
// currencies parkgate supports (zero-decimal ones such as JPY are not).
func minor(v float64) int64 { return int64(math.Round(v * 100)) }
