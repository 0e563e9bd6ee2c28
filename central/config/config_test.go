package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsWithoutFile(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "127.0.0.1:8080" || c.DB.Driver != "sqlite" || c.Reservations.NoShowGrace != 30*time.Minute {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if got := c.SpotIDs(); len(got) != 10 || got[0] != "1" || got[9] != "10" {
		t.Fatalf("SpotIDs = %v", got)
	}
	if c.PricePerHourMinor() != 250 {
		t.Fatalf("price = %d", c.PricePerHourMinor())
	}
}

// The shipped example must load as it is and say exactly the defaults, so
// that its comments stay true, except for the one value it documents as
// different: it is the packaged config, which turns on the embedded
// broker's TLS listener for the gates on 8883.
func TestExampleFileIsTheDefaults(t *testing.T) {
	file, err := Load("../../configs/centrald.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Load("", nil)
	if def.MQTT.TLS.Listen != "" {
		t.Errorf("built-in mqtt.tls.listen = %q: the binary's default stays plain TCP", def.MQTT.TLS.Listen)
	}
	if file.MQTT.TLS.Listen != ":8883" {
		t.Errorf("configs/centrald.yaml: mqtt.tls.listen = %q, want :8883 (TLS on in the package)", file.MQTT.TLS.Listen)
	}
	file.MQTT.TLS.Listen = ""
	if file.Site != def.Site || file.HTTP != def.HTTP || file.DB != def.DB || !reflect.DeepEqual(file.MQTT, def.MQTT) || file.Enroll != def.Enroll ||
		file.Payment != def.Payment || file.Auth != def.Auth || file.Tickets != def.Tickets ||
		file.Reservations != def.Reservations || file.Retention != def.Retention || file.Log != def.Log || file.Spots.Count != def.Spots.Count ||
		len(file.Spots.IDs) != 0 {
		t.Fatalf("configs/centrald.yaml differs from the defaults:\nfile %+v\ndef  %+v", file, def)
	}
	// And every default key appears in the example.
	raw, _ := os.ReadFile("../../configs/centrald.yaml")
	for k := range defaults {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(raw), leaf+":") {
			t.Errorf("configs/centrald.yaml does not document %s", k)
		}
	}
}

func TestFileThenEnvironment(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("site: north\nhttp:\n  addr: 127.0.0.1:9000\nspots:\n  ids: [A1, A2]\nreservations:\n  noshow_grace: 10m\n"), 0o600)
	c, err := Load(p, []string{
		"PARKING_HTTP_ADDR=127.0.0.1:9100",
		"PARKING_RESERVATIONS_NOSHOW_GRACE=2m",
		"PARKING_AUTH_ADMIN_TOKEN=0123456789abcdef",
		"PARKING_MQTT_ALLOW_ANONYMOUS=true",
		"PARKING_PAYMENT_PRICE_PER_HOUR=3.2",
		"PARKING_TEST_POSTGRES_DSN=ignored", // a test variable, not a key
		"HOME=/root",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "north" || c.HTTP.Addr != "127.0.0.1:9100" || c.Reservations.NoShowGrace != 2*time.Minute ||
		c.Auth.AdminToken != "0123456789abcdef" || !c.MQTT.AllowAnonymous || c.PricePerHourMinor() != 320 {
		t.Fatalf("got %+v", c)
	}
	if ids := c.SpotIDs(); len(ids) != 2 || ids[1] != "A2" {
		t.Fatalf("ids %v", ids)
	}
	c, err = Load(p, []string{"PARKING_SPOTS_IDS=x,y,z"})
	if err != nil || len(c.SpotIDs()) != 3 || c.SpotIDs()[2] != "z" {
		t.Fatalf("spots from env: %v %v", c.SpotIDs(), err)
	}
}

func TestBadConfigIsReportedClearly(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"sit: x\n", "sit"},
		{"http:\n  addr: nope\n", "http.addr"},
		{"db:\n  driver: mysql\n", "db.driver"},
		{"db:\n  driver: postgres\n", "db.dsn"}, // the default DSN is a SQLite path
		{"db:\n  driver: postgres\n  dsn: mysql://x/y\n", "postgres://"},
		{"spots:\n  count: 0\n", "spots.count"},
		{"spots:\n  ids: [a, a]\n", "listed twice"},
		{"spots:\n  ids: ['a/b']\n", "not a valid spot id"},
		{"reservations:\n  payment_hold: soon\n", "payment_hold"},
		{"reservations:\n  noshow_grace: 0s\n", "noshow_grace"},
		{"payment:\n  currency: EURO\n", "payment.currency"},
		{"payment:\n  provider: paypal\n", "payment.provider"},
		{"payment:\n  provider: stripe\n", "payment.stripe.secret_key"},
		{"payment:\n  provider: stripe\n  stripe:\n    secret_key: sk_test_x\n    api_url: ftp://x\n", "api_url"},
		{"payment:\n  noshow_fee: -1\n", "noshow_fee"},
		{"payment:\n  action_timeout: 10s\n", "payment.action_timeout"},
		{"payment:\n  overstay_per_hour: lots\n", "payment.overstay_per_hour"},
		{"payment:\n  overstay_per_hour: -2\n", "payment.overstay_per_hour"},
		{"payment:\n  stripe:\n    webhook_secret: sk_test_notAwebhookSecret\n", "payment.stripe.webhook_secret"},
		{"payment:\n  fake:\n    state_file: ''\n", "payment.fake.state_file"},
		{"reservations:\n  overstay_grace: 48h\n", "overstay_grace"},
		{"auth:\n  admin_token: short\n", "admin_token"},
		{"retention:\n  personal_data: 0\n", "retention.personal_data"},
		{"retention:\n  personal_data: 1d\n", "retention.personal_data"},
		{"retention:\n  personal_data: never\n", "retention.personal_data"},
		{"site: Big Site\n", "site"},
		{"log:\n  level: loud\n", ""}, // checked by logging, not here
		{": [\n", "reading"},
		{"mqtt:\n  tls:\n    listen: 8883\n", "mqtt.tls.listen"},
		{"mqtt:\n  tls:\n    cert_file: b.crt\n", "mqtt.tls.cert_file and mqtt.tls.key_file"},
		{"mqtt:\n  tls:\n    ca_file: ca.crt\n", "mqtt.tls.ca_file"},
		{"mqtt:\n  tls:\n    hosts: ['bad host']\n", "mqtt.tls.hosts"},
		{"mqtt:\n  tls:\n    listen: ':8883'\n    dir: ''\n", "mqtt.tls.dir"},
		{"enroll:\n  ttl: 0s\n", "enroll.ttl"},
		{"enroll:\n  key_file: ''\n", "enroll.key_file"},
		{"enroll:\n  broker_url: http://x:1\n", "enroll.broker_url"},
		{"enroll:\n  broker_url: ssl://x\n", "enroll.broker_url"},
	} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		_, err := Load(p, nil)
		if tc.want == "" {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := Load("/nonexistent/c.yaml", nil); err == nil {
		t.Error("missing file accepted")
	}
}

// retention.personal_data: 90 days by default, days or a duration, or off.
func TestRetentionKey(t *testing.T) {
	def, _ := Load("", nil)
	if def.PersonalDataKeep() != 90*24*time.Hour {
		t.Fatalf("default retention %s, want 90 days", def.PersonalDataKeep())
	}
	for v, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "4000h": 4000 * time.Hour, "off": 0, "OFF": 0} {
		c, err := Load("", []string{"PARKING_RETENTION_PERSONAL_DATA=" + v})
		if err != nil || c.PersonalDataKeep() != want {
			t.Errorf("%s: %s, %v; want %s", v, c.PersonalDataKeep(), err, want)
		}
	}
}

// The webhook secret is never repeated in an error, and the overstay fee
// defaults to the reservation's own price.
func TestPaymentKeys(t *testing.T) {
	_, err := Load("", []string{"PARKING_PAYMENT_STRIPE_WEBHOOK_SECRET=sk_test_pastedTheWrongKey"})
	if err == nil || strings.Contains(err.Error(), "pastedTheWrongKey") {
		t.Fatalf("err = %v", err)
	}
	c, err := Load("", []string{"PARKING_PAYMENT_STRIPE_WEBHOOK_SECRET=whsec_abc", "PARKING_PAYMENT_OVERSTAY_PER_HOUR=4.50"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.OverstayPerHourMinor(); v != 450 || c.Payment.Stripe.WebhookSecret != "whsec_abc" {
		t.Fatalf("overstay %d, secret set %v", v, c.Payment.Stripe.WebhookSecret != "")
	}
	def, _ := Load("", nil)
	if v, _ := def.OverstayPerHourMinor(); v != -1 || def.Payment.ActionTimeout != 15*time.Minute || def.Reservations.OverstayGrace != 15*time.Minute {
		t.Fatalf("defaults: overstay %d, action %s, grace %s", v, def.Payment.ActionTimeout, def.Reservations.OverstayGrace)
	}
}

// PostgreSQL is chosen from the environment, as the scale-out units do; a
// wrong DSN is reported without echoing it (it may hold a password).
func TestPostgres(t *testing.T) {
	c, err := Load("", []string{"PARKING_DB_DRIVER=postgres", "PARKING_DB_DSN=postgres://parkgate:s3cret@db:5432/parkgate", "PARKING_MQTT_SHARED=false"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DB.Driver != "postgres" || c.DB.DSN != "postgres://parkgate:s3cret@db:5432/parkgate" || c.MQTT.Shared {
		t.Fatalf("got %+v", c)
	}
	_, err = Load("", []string{"PARKING_DB_DRIVER=postgres", "PARKING_DB_DSN=host=db password=s3cret"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a keyword DSN: %v (want an error that does not show the password)", err)
	}
}
