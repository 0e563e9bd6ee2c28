package broker

import (
	"strings"
	"testing"
)

func TestGatePublishRules(t *testing.T) {
	r := newRules("lab")
	a := role{gate: "gate-a"}
	for topic, want := range map[string]bool{
		"parking/lab/gates/gate-a/status":     true,
		"parking/lab/gates/gate-a/events":     true,
		"parking/lab/gates/gate-a/sync":       true,
		"parking/lab/gates/gate-a/result":     true,
		"parking/lab/gates/gate-b/events":     false, // another gate
		"parking/lab/gates/gate-b/status":     false,
		"parking/lab/gates/gate-a/in/cmd":     false, // its own inbox is central's to write
		"parking/lab/gates/gate-a/in/ack":     false,
		"parking/lab/gates/gate-a/events/x":   false,
		"parking/lab/gates/gate-a":            false,
		"parking/lab/central/changes":         false,
		"parking/lab/central/status":          false,
		"parking/other/gates/gate-a/events":   false, // another site
		"parking/lab/gates/gate-a/status/../": false,
		"$SYS/broker/version":                 false,
	} {
		if got := r.canPublish(a, topic); got != want {
			t.Errorf("gate-a publish %q = %v, want %v", topic, got, want)
		}
	}
}

func TestGateSubscribeRules(t *testing.T) {
	r := newRules("lab")
	a := role{gate: "gate-a"}
	for filter, want := range map[string]bool{
		"parking/lab/gates/gate-a/in/#":        true,
		"parking/lab/gates/gate-a/in/cmd":      true,
		"parking/lab/gates/gate-a/in/+":        true,
		"parking/lab/gates/gate-a/in":          true,
		"parking/lab/central/#":                true,
		"parking/lab/central/changes":          true,
		"parking/lab/central/+":                true,
		"parking/lab/central":                  true,
		"parking/lab/gates/gate-b/in/#":        false, // another gate's inbox
		"parking/lab/gates/gate-b/in/cmd":      false,
		"parking/lab/gates/+/in/#":             false, // reaches every gate
		"parking/lab/gates/+/in/cmd":           false,
		"parking/lab/gates/gate-a/#":           false, // includes its status, written by itself only... and nothing to read
		"parking/lab/gates/gate-a/+/cmd":       false,
		"parking/lab/gates/gate-a/events":      false,
		"parking/lab/gates/#":                  false,
		"parking/lab/#":                        false,
		"parking/lab/+/changes":                false,
		"parking/+/central/#":                  false,
		"parking/#":                            false,
		"#":                                    false,
		"+/lab/central/#":                      false,
		"$SYS/#":                               false,
		"$share/g/parking/lab/central/#":       false, // no shared subscriptions for gates
		"$share/g/parking/lab/gates/gate-a/in": false,
		"parking/lab/centralx/#":               false,
		"parking/lab/gates/gate-ab/in/#":       false,
		"parking/other/central/#":              false,
	} {
		if got := r.canRead(a, filter); got != want {
			t.Errorf("gate-a subscribe %q = %v, want %v", filter, got, want)
		}
	}
}

func TestCentralRules(t *testing.T) {
	r := newRules("lab")
	c := role{}
	for filter, want := range map[string]bool{
		"parking/lab/#":                         true,
		"parking/lab/gates/+/events":            true,
		"parking/lab/gates/+/status":            true,
		"$share/centrald/parking/lab/gates/+/#": true,
		"parking/#":                             false,
		"#":                                     false,
		"+/lab/#":                               false,
		"parking/+/gates/#":                     false,
		"parking/labx/#":                        false,
		"$SYS/#":                                false,
		"$share/g/#":                            false,
		"$share/g":                              false,
	} {
		if got := r.canRead(c, filter); got != want {
			t.Errorf("central subscribe %q = %v, want %v", filter, got, want)
		}
	}
	for topic, want := range map[string]bool{
		"parking/lab/gates/gate-a/in/cmd": true,
		"parking/lab/central/status":      true,
		"parking/lab/gates/gate-a/events": true,
		"parking/lab/":                    false,
		"parking/labx/central/status":     false,
		"parking/other/central/status":    false,
		"$SYS/x":                          false,
	} {
		if got := r.canPublish(c, topic); got != want {
			t.Errorf("central publish %q = %v, want %v", topic, got, want)
		}
	}
}

func TestStatusTopics(t *testing.T) {
	r := newRules("lab")
	for topic, want := range map[string]bool{
		"parking/lab/central/status":         true,
		"parking/lab/gates/gate-a/status":    true,
		"parking/lab/gates/gate-a/events":    false,
		"parking/lab/gates/gate-a/in/status": false,
		"parking/lab/gates/a/b/status":       false,
		"parking/lab/gates//status":          false,
		"parking/other/central/status":       false,
		"parking/lab/central/changes":        false,
	} {
		if got := r.isStatusTopic(topic); got != want {
			t.Errorf("isStatusTopic(%q) = %v, want %v", topic, got, want)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(h), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q: want argon2id PHC string", h)
	}
	if !CheckPassword(h, "s3cret") {
		t.Error("right password refused")
	}
	for _, pw := range []string{"", "s3cret ", "S3cret", "s3cre"} {
		if CheckPassword(h, pw) {
			t.Errorf("password %q accepted", pw)
		}
	}
	h2, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if string(h) == string(h2) {
		t.Error("two hashes of one password are equal: no salt?")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password hashed")
	}
	for _, bad := range []string{
		"", "s3cret", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", // asks for 95 GiB
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5a2V5a2V5a2V5a2V5",
		strings.Replace(string(h), "$argon2id$", "$argon2id$$", 1),
	} {
		if CheckPassword([]byte(bad), "s3cret") {
			t.Errorf("malformed hash %q matched", bad)
		}
	}
}
