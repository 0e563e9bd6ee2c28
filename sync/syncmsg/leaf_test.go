package syncmsg_test

import (
	"go/build"
	"sort"
	"strings"
	"testing"
)

// The protocol package is what a third-party gate imports to speak to
// centrald, so it must stay a leaf: nothing of parkgate's but its own
// packages, and no third-party module, in its whole import graph (tests
// aside). A conversion to a database's types belongs to the side that owns
// that database (centralsync, gatesync).
func TestSyncmsgIsALeaf(t *testing.T) {
	const self = "github.com/parkgate/parkgate/sync/syncmsg"
	bad := map[string]string{} // import → who imports it
	seen := map[string]bool{}
	var walk func(path, dir, from string)
	walk = func(path, dir, from string) {
		if seen[path] {
			return
		}
		seen[path] = true
		p, err := build.Default.Import(path, dir, 0)
		if err != nil {
			t.Fatalf("import %s (from %s): %v", path, from, err)
		}
		if p.Goroot {
			return // the standard library
		}
		if path != self && !strings.HasPrefix(path, self+"/") {
			bad[path] = from
			return
		}
		for _, imp := range p.Imports {
			walk(imp, p.Dir, path)
		}
	}
	walk(self, ".", "the test")
	if !seen[self] || len(seen) < 5 {
		t.Fatalf("walked %d packages; the import graph was not read", len(seen))
	}
	var list []string
	for imp, from := range bad {
		list = append(list, imp+" (imported by "+from+")")
	}
	sort.Strings(list)
	if len(list) > 0 {
		t.Errorf("sync/syncmsg must import only the standard library and its own packages; it imports:\n  %s",
			strings.Join(list, "\n  "))
	}
}
