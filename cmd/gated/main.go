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
	"strings"
	"syscall"

	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/gate/daemon"
	"github.com/parkgate/parkgate/gate/enroll"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/internal/cmdline"
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
  enroll --central URL --code CODE [--hardware sim|rpi]
                fetch this lane's configuration from centrald with the
                one-time code "centrald gate enroll" printed, and write it
                to --config (default /etc/parkgate/gated.yaml), mode 0600;
                a used, expired or wrong code writes nothing
  check-config  validate the configuration (and warn about wiring risks)
                and exit
  safe          drive the relay outputs inactive and exit (systemd runs
                it after every stop of gated: ExecStopPost)
  version       print the version
`

// knownCommands are the commands in usage.
var knownCommands = map[string]bool{"import": true, "enroll": true, "check-config": true, "safe": true, "version": true}

func run(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The flag package prints its error before calling Usage;
	// cmdline.Parse prints the usage itself, to stdout for --help (asked
	// for: exit 0, like parkctl) and to stderr after a mistake (exit 2).
	fs.Usage = func() {}
	cfgPath := fs.String("config", "", "YAML configuration file")
	central := fs.String("central", "", "enroll: centrald's HTTP API URL")
	enrollCode := fs.String("code", "", "enroll: the one-time enrollment code")
	hardware := fs.String("hardware", "", "enroll: hardware.mode to write (sim or rpi; default sim)")
	cmd, rest, code, ok := cmdline.Parse(fs, args, "gated", usage, knownCommands, stdout, stderr)
	if !ok {
		return code
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, version.Version)
		return exitOK
	}
	if (*central != "" || *enrollCode != "" || *hardware != "") && cmd != "enroll" {
		fmt.Fprintln(stderr, "gated: --central, --code and --hardware go with the enroll command")
		return exitUsage
	}
	if cmd == "enroll" {
		// Before loading any configuration: enroll writes it.
		if len(rest) != 0 || *central == "" || *enrollCode == "" {
			fmt.Fprintln(stderr, "usage: gated enroll --central URL --code CODE [--config PATH] [--hardware sim|rpi]")
			return exitUsage
		}
		return enrollLane(*central, *enrollCode, *cfgPath, *hardware, stdout, stderr)
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

// enrollLane runs gated enroll.
func enrollLane(central, code, path, hardware string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := enroll.Run(ctx, enroll.Options{Central: central, Code: code, Path: path, Hardware: hardware, Owner: enroll.ServiceUser})
	if err != nil {
		// Never the code itself: it may still be valid.
		fmt.Fprintln(stderr, "gated enroll:", err)
		fmt.Fprintf(stderr, "gated enroll: nothing was written to %s\n", res.Path)
		return exitFailure
	}
	fmt.Fprintf(stdout, "wrote %s: gate %s (%s) of site %s, broker %s, hardware.mode %s\n",
		res.Path, res.Bundle.GateID, res.Bundle.Role, res.Bundle.Site, res.BrokerURL, res.Hardware)
	if res.BrokerCheck != nil {
		fmt.Fprintf(stdout, "warning: the broker %s does not verify yet: %v\n(if its certificate lacks the name, add it to centrald's mqtt.tls.hosts and restart centrald; this file stays valid)\n",
			res.BrokerURL, res.BrokerCheck)
	} else if strings.HasPrefix(res.BrokerURL, "ssl://") {
		fmt.Fprintf(stdout, "the broker %s answers with a certificate this lane trusts\n", res.BrokerURL)
	}
	if res.Hardware == "sim" {
		fmt.Fprintln(stdout, "hardware.mode is sim: for a real barrier set hardware.mode: rpi and the pins of its wiring there (docs/gated.md), or enroll with --hardware rpi")
	}
	fmt.Fprintf(stdout, "check it with: gated check-config --config %s\nthen start the lane: systemctl enable --now gated\n", res.Path)
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
