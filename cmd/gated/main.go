// Command gated is parkgate's gate controller, one per barrier lane. See
// README.md, docs/gated.md and configs/gated.yaml.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/gate/daemon"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/internal/logging"
	"github.com/parkgate/parkgate/internal/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: systemd restarts
	exitUsage   = 2 // bad flags or configuration: restarting will not help
)

func main() { os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr)) }

const usage = `usage: gated [--config PATH] [command]

commands:
  (none)        run the gate controller
  import FILE   replace the local reservation cache with FILE (JSON:
                {"version": N, "reservations": [...]}, "-" for stdin), for
                lanes without the sync
  check-config  validate the configuration (and warn about wiring risks)
                and exit
  safe          drive the relay outputs inactive and exit (systemd runs
                it after every stop of gated: ExecStopPost)
  version       print the version
`

// knownCommands are the commands in usage.
var knownCommands = map[string]bool{"import": true, "check-config": true, "safe": true, "version": true}

func run(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The flag package prints its error before calling Usage; parse
	// below prints the usage itself, to stdout for --help (asked for:
	// exit 0, like parkctl) and to stderr after a mistake (exit 2).
	fs.Usage = func() {}
	cfgPath := fs.String("config", "", "YAML configuration file")
	parse := func(args []string) (code int, ok bool) {
		switch err := fs.Parse(args); {
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprint(stdout, usage)
			return exitOK, false
		case err != nil:
			fmt.Fprint(stderr, usage)
			return exitUsage, false
		}
		return 0, true
	}
	if code, ok := parse(args); !ok {
		return code
	}
	var cmd string
	var rest []string
	if fs.NArg() > 0 {
		cmd = fs.Arg(0)
		// Flags may also follow the command's arguments.
		rest = fs.Args()[1:]
		var pos []string
		for len(rest) > 0 {
			if code, ok := parse(rest); !ok {
				return code
			}
			if fs.NArg() == 0 {
				break
			}
			pos = append(pos, fs.Arg(0))
			rest = fs.Args()[1:]
		}
		rest = pos
		if !knownCommands[cmd] {
			// Said before the configuration is read: a typo is a typo
			// whatever the config holds.
			fmt.Fprintf(stderr, "gated: unknown command %q\n%s", cmd, usage)
			return exitUsage
		}
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, version.Version)
		return exitOK
	}
	cfg, err := config.Load(*cfgPath, environ)
	if err != nil {
		fmt.Fprintln(stderr, "gated:", err)
		return exitUsage
	}
	log, err := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintln(stderr, "gated:", err)
		return exitUsage
	}
	switch {
	case cmd == "" && len(rest) == 0:
	case cmd == "check-config" && len(rest) == 0:
		for _, w := range cfg.BootWarnings() {
			fmt.Fprintln(stderr, "gated: warning:", w)
		}
		fmt.Fprintln(stdout, "configuration ok")
		return exitOK
	case cmd == "safe" && len(rest) == 0:
		if err := daemon.Safe(cfg, daemon.Options{Log: log}); err != nil {
			fmt.Fprintln(stderr, "gated safe:", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "relay outputs inactive (hardware.mode %s)\n", cfg.Hardware.Mode)
		return exitOK
	case cmd == "import" && len(rest) == 1:
		return importFile(cfg, rest[0], stdout, stderr)
	default: // a known command with the wrong arguments
		fmt.Fprint(stderr, usage)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = daemon.Run(ctx, cfg, daemon.Options{Log: log, Started: func(addr string) {
		fmt.Fprintf(stdout, "gated %s (%s) is serving on http://%s (try: curl http://%s/v1/status)\n", cfg.Gate.ID, cfg.Gate.Role, addr, addr)
	}})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("gated stopped", "err", err)
		return exitFailure
	}
	log.Info("gated stopped")
	return exitOK
}

// importFile replaces the cache with a snapshot file.
func importFile(cfg config.Config, path string, stdout, stderr io.Writer) int {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(stderr, "gated import:", err)
			return exitUsage
		}
		defer f.Close()
		r = f
	}
	imp, err := localdb.ReadImport(r)
	if err != nil {
		fmt.Fprintln(stderr, "gated import:", err)
		return exitUsage
	}
	ctx := context.Background()
	db, err := localdb.Open(ctx, cfg.DB.Path)
	if err != nil {
		fmt.Fprintln(stderr, "gated import:", err)
		return exitFailure
	}
	defer db.Close()
	if err := db.ApplySnapshot(ctx, imp.Version, imp.Entries); err != nil {
		fmt.Fprintln(stderr, "gated import:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "imported %d reservations at version %d into %s\n", len(imp.Entries), imp.Version, cfg.DB.Path)
	return exitOK
}
