package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/parkgate/parkgate/central/config"
)

// A key root creates in the service's state directory belongs to the
// directory's owner, so that the service (not root) can read it.
func TestEnrollKeyOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it checks the owner root gives the key")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const svc = 65534 // nobody
	if err := os.Chown(dir, svc, svc); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{Enroll: config.Enroll{KeyFile: filepath.Join(dir, "enroll.key")}}
	k1, err := EnrollKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.Enroll.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != svc || fi.Mode().Perm() != 0o600 {
		t.Fatalf("enroll.key: owner %d, mode %v; want %d and 0600", st.Uid, fi.Mode().Perm(), svc)
	}
	k2, err := EnrollKey(cfg)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("the key changed between loads: %v", err)
	}
}
