package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	var b bytes.Buffer
	log, err := New(&b, "info", "auto") // a buffer is not a terminal: JSON
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("hello", "k", 1)
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["msg"] != "hello" {
		t.Fatalf("not one JSON line: %q", b.String())
	}
	b.Reset()
	log, _ = New(&b, "debug", "text")
	log.Debug("shown")
	if !strings.Contains(b.String(), "msg=shown") {
		t.Fatalf("text: %q", b.String())
	}
	if _, err := New(&b, "loud", "json"); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := New(&b, "info", "xml"); err == nil {
		t.Fatal("bad format accepted")
	}
}

// Durations read as a person writes them, in JSON (journald) as in text,
// also inside groups and when passed through slog.Any: "in":"100ms", not
// "in":100000000.
func TestDurationsAreHuman(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var b bytes.Buffer
		log, err := New(&b, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		log.Warn("mqtt connection lost; reconnecting", "in", 100*time.Millisecond,
			slog.Group("retry", "down_for", 90*time.Second), slog.Any("wait", 1500*time.Microsecond))
		out := b.String()
		want := []string{`"in":"100ms"`, `"down_for":"1m30s"`, `"wait":"1.5ms"`}
		if format == "text" {
			want = []string{"in=100ms", "retry.down_for=1m30s", "wait=1.5ms"}
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %q lacks %s", format, out, w)
			}
		}
		if strings.Contains(out, "100000000") {
			t.Errorf("%s: raw nanoseconds in %q", format, out)
		}
	}
}
