package gatesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/parkgate/parkgate/internal/atomicfile"
)

// FileSessions keeps the session counter in a small text file at path
// (the number in decimal), for as long as gate/localdb keeps none. Put it
// next to the database (db.path + ".session"): it must survive restarts
// as the database does, and a counter that went back would let a late
// will mark a newer connection offline.
//
// Each NextSession writes the file anew and renames it into place, with
// fsyncs, so that a power cut leaves the old number or the new one.
func FileSessions(path string) SessionCounter {
	return &fileSessions{path: path}
}

type fileSessions struct {
	mu   sync.Mutex
	path string
}

func (f *fileSessions) NextSession(ctx context.Context, atLeast int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	b, err := os.ReadFile(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, err
	default:
		if n, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil || n < 0 {
			return 0, fmt.Errorf("session file %s: %q is not a session number", f.path, b)
		}
	}
	n = max(n+1, atLeast)
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	if err := atomicfile.Write(f.path, []byte(strconv.FormatInt(n, 10)+"\n"), 0o600); err != nil {
		return 0, err
	}
	return n, nil
}
