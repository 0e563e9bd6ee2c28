package mqtturl

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "tcp://127.0.0.1:1883", want: []string{"tcp://127.0.0.1:1883"}},
		{in: "tcp://a:1883, ssl://b:8883 ,tls://c:8883", want: []string{"tcp://a:1883", "ssl://b:8883", "tls://c:8883"}},
		{in: "tcp://a:1883,,tcp://b:1883", err: "empty entry"},
		{in: "tcp://a:1883,", err: "empty entry"},
		{in: "http://a:1883", err: "want tcp://host:port"},
		{in: "tcp://a", err: "want tcp://host:port"},
		{in: "a:1883", err: "want tcp://host:port"},
		{in: "tcp://user:pw@a:1883", err: "credentials are mqtt.username"},
		{in: "tcp://a:1883,tcp://a:1883", err: "listed twice"},
	} {
		got, err := Split(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Split(%q): err %v, want one saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestFrom(t *testing.T) {
	u := []string{"a", "b", "c"}
	for start, want := range map[int][]string{0: {"a", "b", "c"}, 1: {"b", "c", "a"}, 2: {"c", "a", "b"}, 3: {"a", "b", "c"}, -1: {"c", "a", "b"}} {
		if got := from(u, start); !slices.Equal(got, want) {
			t.Errorf("from(%d) = %q, want %q", start, got, want)
		}
	}
	if from(nil, 2) != nil {
		t.Error("from(nil) is not empty")
	}
}
