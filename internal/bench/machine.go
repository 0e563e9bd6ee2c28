package bench

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs, GOMAXPROCS int
	OS, Arch         string
	CPUModel         string
	GoVersion        string // parkbench's toolchain
	CentraldGo       string // the toolchain centrald was built with
	CentraldVersion  string
	GatedGo          string // the toolchain gated was built with
	GatedVersion     string
	// DataDir is where the databases live (their parent directory),
	// DataFS its file system type, and Fsync what a 4 KiB append plus
	// fsync costs there: the floor under every committed write with
	// SQLite's synchronous=FULL.
	DataDir string
	DataFS  string
	Fsync   Latency
	FsyncN  int
}

// probeMachine describes the machine and the binaries (either may be
// empty when its part does not run), and probes fsync in dir.
func probeMachine(ctx context.Context, centrald, gated, dir string) Machine {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		CPUModel:   cpuModel("/proc/cpuinfo"),
		GoVersion:  runtime.Version(),
		DataDir:    filepath.Dir(dir),
		DataFS:     fsType(dir),
	}
	if centrald != "" {
		m.CentraldGo, m.CentraldVersion = binaryVersion(ctx, centrald)
	}
	if gated != "" {
		m.GatedGo, m.GatedVersion = binaryVersion(ctx, gated)
	}
	m.Fsync, m.FsyncN = fsyncProbe(dir, 200, 3*time.Second)
	return m
}

// binaryVersion returns the Go toolchain bin was built with and what
// `bin version` prints; with emulator set, bin runs under it.
func binaryVersion(ctx context.Context, bin string, emulator ...string) (goVersion, version string) {
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		goVersion = bi.GoVersion
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := append(append([]string(nil), emulator...), bin, "version")
	cmd := exec.CommandContext(vctx, argv[0], argv[1:]...)
	cmd.Env = baseEnv(os.Environ())
	if out, err := cmd.Output(); err == nil {
		version = strings.TrimSpace(string(out))
	} else {
		version = "unknown (" + err.Error() + ")"
	}
	return goVersion, version
}

// cpuModel reads the CPU's name from a /proc/cpuinfo-style file: "model
// name" on x86, "Model" or "Hardware" on ARM boards.
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	found := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := found[k]; !dup && v != "" {
			found[k] = v
		}
	}
	for _, k := range []string{"model name", "Model", "Hardware", "cpu model"} {
		if v, ok := found[k]; ok {
			return v
		}
	}
	return "unknown"
}

// fsyncProbe appends 4 KiB and fsyncs, up to n times or for at most
// budget, in a scratch file in dir, and returns what each round took.
func fsyncProbe(dir string, n int, budget time.Duration) (Latency, int) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return Latency{}, 0
	}
	defer os.Remove(filepath.Clean(f.Name()))
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	end := time.Now().Add(budget)
	for i := 0; i < n && time.Now().Before(end); i++ {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			break
		}
		if err := f.Sync(); err != nil {
			break
		}
		ds = append(ds, time.Since(t0))
	}
	return LatencyOf(ds), len(ds)
}
