package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The shipped example must load as it is and say exactly the defaults, so
// that its comments stay true, and it must mention every key.
func TestExampleFileIsTheDefaults(t *testing.T) {
	file, err := Load("../../configs/gated.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(file, def) {
		t.Fatalf("configs/gated.yaml differs from the defaults:\nfile %+v\ndef  %+v", file, def)
	}
	raw, _ := os.ReadFile("../../configs/gated.yaml")
	for k := range defaults {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(raw), leaf+":") {
			t.Errorf("configs/gated.yaml does not document %s", k)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	c, err := Load("", []string{"PARKING_GATE_ID=exit-2", "PARKING_GATE_ROLE=exit", "PARKING_HARDWARE_PULSE=800ms",
		"PARKING_TICKETS_PUBLIC_KEY=ed25519:dFcg0OsR9mjMg+XFwo7EAxdHnmUHK/XICtq41vMhc3E=, ed25519:dFcg0OsR9mjMg+XFwo7EAxdHnmUHK/XICtq41vMhc3E="})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := c.PublicKeys()
	if c.Gate.ID != "exit-2" || c.Gate.Role != "exit" || c.Hardware.Pulse.Milliseconds() != 800 || len(keys) != 2 {
		t.Fatalf("%+v keys %d", c, len(keys))
	}
}

// mqtt.url takes the nodes of a clustered broker separated by commas, in
// the file and in the environment alike; one URL stays one URL.
func TestBrokerList(t *testing.T) {
	nodes := "tcp://10.0.0.1:1883, tcp://10.0.0.2:1883,tcp://10.0.0.3:1883"
	c, err := Load("", []string{"PARKING_MQTT_URL=" + nodes})
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.URL != nodes {
		t.Fatalf("mqtt.url %q, want %q", c.MQTT.URL, nodes)
	}
	p := filepath.Join(t.TempDir(), "g.yaml")
	os.WriteFile(p, []byte("mqtt:\n  url: ssl://mqtt.example:8883\n"), 0o600)
	if c, err := Load(p, nil); err != nil || c.MQTT.URL != "ssl://mqtt.example:8883" {
		t.Fatalf("one URL: %q, %v", c.MQTT.URL, err)
	}
}

func TestBadConfigIsReportedClearly(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"gate:\n  role: middle\n", "gate.role"},
		{"gate:\n  id: Entry 1\n", "gate.id"},
		{"gate:\n  offline_policy: open\n", "offline_policy"},
		{"gate:\n  clock_floor: yesterday\n", "clock_floor"},
		{"hardware:\n  mode: arduino\n", "hardware.mode"},
		{"hardware:\n  pulse: 50ms\n", "hardware.pulse"},
		{"hardware:\n  mode: rpi\n  relay_pin: 'GPIO 17'\n", "relay_pin"},
		{"hardware:\n  mode: rpi\n  barrier_mode: hold\n", "hold_pin"},
		{"hardware:\n  reader_baud: 1234\n", "reader_baud"},
		{"tickets:\n  public_key: nonsense\n", "tickets.public_key"},
		{"anpr:\n  min_confidence: 2\n", "min_confidence"},
		{"gates:\n  id: x\n", "gates"},
		{"hardware:\n  mode: rpi\n  loop_pin: GPIO17\n", "hardware.relay_pin and hardware.loop_pin are both GPIO17"},
		{"hardware:\n  hold_pin: GPIO22\n  closed_status_pin: gpio22\n", "hardware.hold_pin and hardware.closed_status_pin"},
		{"hardware:\n  loop_pull: sideways\n", "hardware.loop_pull"},
		{"hardware:\n  relay_active_low: maybe\n", "hardware.relay_active_low"},
		{"hardware:\n  noise_limit: 10ms\n", "hardware.noise_limit"},
		{"mqtt:\n  url: mqtt.example:1883\n", "mqtt.url"},
		{"mqtt:\n  url: tcp://a:1883,,tcp://b:1883\n", "mqtt.url"},
		{"mqtt:\n  url: tcp://a:1883,http://b:1883\n", "mqtt.url"},
	} {
		p := filepath.Join(t.TempDir(), "g.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
}

// anpr.allow_from is a list in YAML and comma-separated in the
// environment; both give the same networks, and a bare address is one host.
func TestANPRAllowFrom(t *testing.T) {
	def, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(mustSources(t, def)); got != "[127.0.0.0/8 ::1/128]" {
		t.Fatalf("default allow_from = %s, want loopback only", got)
	}
	want := "[10.20.0.0/24 10.30.0.5/32 10.40.0.7/32]"
	env, err := Load("", []string{"PARKING_ANPR_ALLOW_FROM=10.20.0.0/24,10.30.0.5/32, 10.40.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(mustSources(t, env)); got != want {
		t.Fatalf("from the environment: %s, want %s", got, want)
	}
	p := filepath.Join(t.TempDir(), "g.yaml")
	os.WriteFile(p, []byte("anpr:\n  allow_from:\n    - 10.20.0.0/24\n    - 10.30.0.5/32\n    - 10.40.0.7\n"), 0o600)
	file, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(mustSources(t, file)); got != want {
		t.Fatalf("from YAML: %s, want %s", got, want)
	}
	none, err := Load("", []string{"PARKING_ANPR_ALLOW_FROM="})
	if err != nil || len(mustSources(t, none)) != 0 {
		t.Fatalf("empty allow_from: %v, %v", none.ANPR.AllowFrom, err)
	}
}

func mustSources(t *testing.T, c Config) []netip.Prefix {
	t.Helper()
	s, err := c.AllowedSources()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBadANPRConfigIsReportedClearly(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"PARKING_ANPR_ALLOW_FROM=10.20.0.0/33"}, `anpr.allow_from: "10.20.0.0/33" is not a network`},
		{[]string{"PARKING_ANPR_ALLOW_FROM=10.20.0.0/24,camera.local"}, `anpr.allow_from: "camera.local" is neither`},
		{[]string{"PARKING_ANPR_USERNAME=cam"}, "anpr.username and anpr.password: set both"},
		{[]string{"PARKING_ANPR_PASSWORD=s3cret-pw"}, "anpr.username and anpr.password: set both"},
		{[]string{"PARKING_ANPR_PRESET=acme"}, `anpr.preset "acme": want auto`},
		{[]string{"PARKING_HTTP_ANPR_ADDR=10.20.0.2"}, "http.anpr_addr"},
	} {
		_, err := Load("", tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want mention of %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("%v: the error quotes the password: %v", tc.env, err)
		}
	}
}

// hardware.active_low is the polarity of every role without a key of its
// own; the per-role keys override it, from the file or the environment.
func TestPolarityPerRole(t *testing.T) {
	for _, tc := range []struct {
		yaml        string
		env         []string
		relay, loop bool
	}{
		{"hardware:\n  active_low: false\n", nil, false, false},
		{"hardware:\n  active_low: true\n", nil, true, true},
		{"hardware:\n  active_low: false\n  loop_active_low: true\n  loop_pull: up\n", nil, false, true},
		{"hardware:\n  active_low: true\n  relay_active_low: false\n", nil, false, true},
		{"hardware:\n  active_low: true\n", []string{"PARKING_HARDWARE_RELAY_ACTIVE_LOW=false"}, false, true},
	} {
		p := filepath.Join(t.TempDir(), "g.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		c, err := Load(p, tc.env)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if c.Hardware.RelayLow() != tc.relay || c.Hardware.LoopLow() != tc.loop {
			t.Errorf("%q %v: relay active-low %v, loop active-low %v; want %v, %v", tc.yaml, tc.env, c.Hardware.RelayLow(), c.Hardware.LoopLow(), tc.relay, tc.loop)
		}
	}
}

// A relay on a pin whose power-on pull is its active level is energised
// until gated starts: the check warns and names the config.txt line.
func TestBootWarnings(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // "" for no warning
	}{
		{"hardware:\n  mode: rpi\n", ""},
		{"hardware:\n  mode: rpi\n  relay_pin: GPIO4\n", "gpio=4=op,dl"},
		{"hardware:\n  mode: rpi\n  relay_pin: GPIO4\n  relay_active_low: true\n", ""},
		{"hardware:\n  mode: rpi\n  relay_active_low: true\n", "gpio=17=op,dh"},
		{"hardware:\n  mode: rpi\n  barrier_mode: hold\n  hold_pin: GPIO5\n", "hardware.hold_pin GPIO5"},
		{"hardware:\n  mode: sim\n  relay_pin: GPIO4\n", ""},
	} {
		p := filepath.Join(t.TempDir(), "g.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		c, err := Load(p, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		ws := strings.Join(c.BootWarnings(), "\n")
		if tc.want == "" && ws != "" || tc.want != "" && !strings.Contains(ws, tc.want) {
			t.Errorf("%q: warnings %q, want %q", tc.yaml, ws, tc.want)
		}
	}
}

// mqtt.ca is what gated trusts for an ssl:// broker; a value that is not
// a PEM certificate is refused at load, naming the key.
func TestMQTTCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	c, err := Load("", []string{"PARKING_MQTT_URL=ssl://127.0.0.1:8883", "PARKING_MQTT_CA=" + caPEM})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := c.MQTT.TLSConfig()
	if err != nil || tc == nil || tc.RootCAs == nil {
		t.Fatalf("TLSConfig = %v, %v", tc, err)
	}
	if _, err := srv.Certificate().Verify(x509.VerifyOptions{Roots: tc.RootCAs}); err != nil {
		t.Errorf("the configured CA is not trusted: %v", err)
	}
	if def, _ := Load("", nil); func() bool { tc, _ := def.MQTT.TLSConfig(); return tc != nil }() {
		t.Error("without mqtt.ca the system's roots must be used (nil TLS config)")
	}
	for _, env := range []string{"PARKING_MQTT_CA=not a certificate", "PARKING_MQTT_CA_FILE=/nonexistent/ca.crt"} {
		if _, err := Load("", []string{env}); err == nil || !strings.Contains(err.Error(), "mqtt.ca") {
			t.Errorf("%s: err = %v, want a refusal naming mqtt.ca", env, err)
		}
	}
}
