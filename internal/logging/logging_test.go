package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
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
