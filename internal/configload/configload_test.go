package configload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Site string `mapstructure:"site"`
	HTTP struct {
		Addr string `mapstructure:"addr"`
	} `mapstructure:"http"`
	Reservations struct {
		NoShowGrace time.Duration `mapstructure:"noshow_grace"`
		MaxDuration time.Duration `mapstructure:"max_duration"`
	} `mapstructure:"reservations"`
}

var testDefaults = map[string]any{
	"site":                      "demo",
	"http.addr":                 "127.0.0.1:8080",
	"reservations.noshow_grace": "30m",
	"reservations.max_duration": "168h",
}

// A key the program does not know is named with the file, its full dotted
// path and the nearest known key; a misspelt section is named once, as the
// section. Nothing is loaded.
func TestUnknownKeysNamedWithFileAndPath(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want []string
	}{
		{"htp:\n  addr: 127.0.0.1:9000\n", []string{`: unknown key "htp" (did you mean "http"?)`}},
		{"http:\n  adr: 127.0.0.1:9000\n", []string{`: unknown key "http.adr" (did you mean "http.addr"?)`}},
		{"reservations:\n  noshow_grac: 5m\n  max_duration: 1h\nsite: x\nflavour: mint\n", []string{
			`: unknown key "flavour"` + "\n",
			`: unknown key "reservations.noshow_grac" (did you mean "reservations.noshow_grace"?)`,
		}},
		{"addr: 127.0.0.1:9000\n", []string{`: unknown key "addr" (did you mean "http.addr"?)`}},
	} {
		path := filepath.Join(t.TempDir(), "x.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var c testConfig
		err := Load(path, nil, testDefaults, &c)
		if err == nil {
			t.Fatalf("%q: loaded", tc.yaml)
		}
		msg := err.Error() + "\n"
		for _, w := range tc.want {
			if !strings.Contains(msg, path+w) {
				t.Errorf("%q: error %q lacks %q", tc.yaml, msg, path+w)
			}
		}
		if strings.Contains(msg, "invalid keys") || c.Site != "" {
			t.Errorf("%q: error %q, config %+v", tc.yaml, msg, c)
		}
	}
	// Known keys still load, including a section left empty.
	path := filepath.Join(t.TempDir(), "ok.yaml")
	os.WriteFile(path, []byte("http:\nreservations:\n  noshow_grace: 5m\n"), 0o600)
	var c testConfig
	if err := Load(path, nil, testDefaults, &c); err != nil || c.Reservations.NoShowGrace != 5*time.Minute || c.HTTP.Addr != "127.0.0.1:8080" {
		t.Fatalf("err %v, config %+v", err, c)
	}
}

// A value of the wrong type is named with where values come from, one
// line per problem, without mapstructure's preamble.
func TestBadValueNamesSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.yaml")
	os.WriteFile(path, []byte("reservations:\n  noshow_grace: soon\n"), 0o600)
	var c testConfig
	err := Load(path, []string{"PARKING_HTTP_ADDR=x"}, testDefaults, &c)
	want := path + " (or PARKING_* environment): 'reservations.noshow_grace' time: invalid duration"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
