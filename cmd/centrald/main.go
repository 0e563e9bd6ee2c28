// Command centrald is parkgate's central reservation server. See README.md
// and configs/centrald.yaml.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parkgate/parkgate/central/config"
	"github.com/parkgate/parkgate/central/console"
	"github.com/parkgate/parkgate/central/daemon"
	"github.com/parkgate/parkgate/central/enroll"
	"github.com/parkgate/parkgate/internal/cmdline"
	"github.com/parkgate/parkgate/internal/logging"
	"github.com/parkgate/parkgate/internal/version"
	"github.com/parkgate/parkgate/ticket"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: systemd restarts
	exitUsage   = 2 // bad flags or configuration: restarting will not help
)

func main() { os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr)) }

const usage = `usage: centrald [--config PATH] [command]

commands:
  (none)        run the server
  check-config  validate the configuration and exit
  pubkey        print the site's ticket public key (creating the key on
                first use), in the form gated's tickets.public_key takes
  gate add ID --role entry|exit
                provision gate ID: records its role (which its events are
                checked against; required for a new gate) and prints a new
                password (again: rotates it) for gated's mqtt.password with
                the embedded MQTT broker
  gate enroll ID --role entry|exit
                provision gate ID as gate add does and print a one-time
                enrollment code (valid for enroll.ttl) as the last line;
                on the gate, gated enroll --central URL --code CODE
                fetches its whole configuration with it
  operator add NAME
                create operator account NAME for the console at /console/
                and print its password (again: a new password)
  prune [--dry-run]
                erase now the personal data of reservations finished longer
                ago than retention.personal_data (the server does so hourly);
                --dry-run only prints what it would erase
  version       print the version
`

// knownCommands are the commands in usage.
var knownCommands = map[string]bool{"check-config": true, "pubkey": true, "gate": true, "operator": true, "prune": true, "version": true}

func run(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("centrald", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The flag package prints its error before calling Usage;
	// cmdline.Parse prints the usage itself, to stdout for --help (asked
	// for: exit 0, like parkctl) and to stderr after a mistake (exit 2).
	fs.Usage = func() {}
	cfgPath := fs.String("config", "", "YAML configuration file")
	role := fs.String("role", "", "gate add, gate enroll: the gate's role, entry or exit")
	dryRun := fs.Bool("dry-run", false, "prune: print what would be erased, change nothing")
	cmd, rest, code, ok := cmdline.Parse(fs, args, "centrald", usage, knownCommands, stdout, stderr)
	if !ok {
		return code
	}
	if cmd != "" && (cmd != "gate" && cmd != "operator" && len(rest) > 0 || cmd != "gate" && *role != "") {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if cmd != "prune" && *dryRun {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, version.Version)
		return exitOK
	}
	cfg, err := config.Load(*cfgPath, environ)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitUsage
	}
	log, err := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitUsage
	}
	switch cmd {
	case "":
	case "check-config":
		fmt.Fprintln(stdout, "configuration ok")
		return exitOK
	case "pubkey":
		s, err := daemon.Signer(cfg)
		if err != nil {
			fmt.Fprintln(stderr, "centrald:", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "# key id %s, from %s\n%s\n", s.KeyID(), cfg.Tickets.KeyFile, ticket.FormatPublicKey(s.PublicKey()))
		return exitOK
	case "gate":
		if len(rest) != 2 || rest[0] != "add" && rest[0] != "enroll" {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		if *role != "" && *role != "entry" && *role != "exit" {
			fmt.Fprintf(stderr, "centrald gate %s: --role %q: want entry or exit\n", rest[0], *role)
			return exitUsage
		}
		if rest[0] == "enroll" {
			return enrollGate(cfg, rest[1], *role, stdout, stderr)
		}
		return addGate(cfg, rest[1], *role, stdout, stderr)
	case "operator":
		if len(rest) != 2 || rest[0] != "add" {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		return addOperator(cfg, rest[1], stdout, stderr)
	case "prune":
		if err := daemon.Prune(context.Background(), cfg, time.Now(), *dryRun, stdout); err != nil {
			fmt.Fprintln(stderr, "centrald prune:", err)
			return exitFailure
		}
		return exitOK
	default:
		fmt.Fprintf(stderr, "centrald: unknown command %q\n", cmd)
		fmt.Fprint(stderr, usage)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = daemon.Run(ctx, cfg, daemon.Options{Log: log, Started: func(addr, mqtt, mqttTLS string) {
		fmt.Fprintf(stdout, "centrald is serving the parking API on http://%s (try: curl http://%s/parkings)\n", addr, addr)
		if mqtt != "" {
			fmt.Fprintf(stdout, "centrald's MQTT broker for the gates listens on %s\n", mqtt)
		}
		if mqttTLS != "" {
			fmt.Fprintf(stdout, "centrald's MQTT broker for the gates listens with TLS on %s\n", mqttTLS)
		}
	}})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("centrald stopped", "err", err)
		return exitFailure
	}
	log.Info("centrald stopped")
	return exitOK
}

// addGate provisions a gate and prints its password as the last line.
func addGate(cfg config.Config, id, role string, stdout, stderr io.Writer) int {
	ctx := context.Background()
	st, err := daemon.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitFailure
	}
	defer st.Close()
	pw, err := daemon.AddGate(ctx, st, id, role, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "centrald gate add:", err)
		return exitUsage
	}
	g, err := st.Gate(ctx, id)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "# gate %s (%s): its MQTT user is %q; set this as its mqtt.password (shown once)\n%s\n", id, g.Role, id, pw)
	return exitOK
}

// enrollGate provisions a gate and prints its one-time enrollment code as
// the last line.
func enrollGate(cfg config.Config, id, role string, stdout, stderr io.Writer) int {
	if !cfg.MQTT.Embedded {
		fmt.Fprintln(stderr, "centrald gate enroll: needs the embedded broker (mqtt.embedded: true), which centrald gives the gates' passwords to; with an external broker, use centrald gate add and the broker's own password file")
		return exitUsage
	}
	ctx := context.Background()
	st, err := daemon.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitFailure
	}
	defer st.Close()
	key, err := daemon.EnrollKey(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitFailure
	}
	now := time.Now()
	code, err := enroll.Issue(ctx, st, key.Public().(ed25519.PublicKey), id, role, cfg.Enroll.TTL, now)
	if err != nil {
		fmt.Fprintln(stderr, "centrald gate enroll:", err)
		return exitUsage
	}
	g, err := st.Gate(ctx, id)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitFailure
	}
	if cfg.MQTT.TLS.Listen == "" && cfg.Enroll.BrokerURL == "" {
		fmt.Fprintln(stderr, "centrald gate enroll: warning: mqtt.tls.listen is empty: the gate will be told to use the plain TCP listener (mqtt.listen), without TLS")
	}
	fmt.Fprintf(stdout, "# gate %s (%s): one-time enrollment code, valid until %s. On the gate run:\n#   gated enroll --central %s --code CODE\n%s\n",
		id, g.Role, now.Add(cfg.Enroll.TTL).UTC().Format(time.RFC3339), centralURLHint(cfg.HTTP.Addr), code)
	return exitOK
}

// centralURLHint guesses the URL a gate reaches this centrald's API by,
// for the hint only: the gate must be given the URL it really uses.
func centralURLHint(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://CENTRAL:PORT"
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || ip != nil && ip.IsUnspecified():
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	case host == "localhost" || ip != nil && ip.IsLoopback():
		// Behind a reverse proxy: its URL is what the gate needs.
		return "http://CENTRAL-URL"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// addOperator creates a console account and prints its password as the
// last line.
func addOperator(cfg config.Config, name string, stdout, stderr io.Writer) int {
	if err := console.CheckName(name); err != nil {
		fmt.Fprintln(stderr, "centrald operator add:", err)
		return exitUsage
	}
	ctx := context.Background()
	st, err := daemon.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "centrald:", err)
		return exitFailure
	}
	defer st.Close()
	pw, err := console.AddOperator(ctx, st, name, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "centrald operator add:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "# operator %s: sign in at /console/ with this password (shown once)\n%s\n", name, pw)
	return exitOK
}
