package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parkgate/parkgate/central/client"
	"github.com/parkgate/parkgate/internal/version"
)

// Exit codes. 2 means nothing was sent to the server, so a script can
// tell "fix the command" from "the server said no" (1).
const (
	exitOK      = 0
	exitFailure = 1 // the request failed or the server refused it
	exitUsage   = 2 // bad command line or input file; nothing was sent
)

// defaultServer is where centrald listens out of the box (http.addr).
const defaultServer = "http://127.0.0.1:8080"

// Environment variables. The admin token's is the one centrald reads, so
// an operator on the server's host needs no extra setup.
const (
	envServer = "PARKING_SERVER"
	envToken  = "PARKING_TOKEN"
	envAdmin  = "PARKING_AUTH_ADMIN_TOKEN"
)

const usage = `usage: parkctl [global flags] command [args] [flags]

parkctl talks to centrald's HTTP API. Times are RFC 3339, e.g.
2026-11-26T14:00:00Z; they are printed in UTC so they can be pasted back.

drivers:
  spots                           list spots: id, status, window, car
  spot ID                         show one spot
  reserve ID --from T --until T   reserve spot ID; prints the token
  reserve ID [--from T] --for D   ... for a duration (from now by default)
  pay ID --car PLATE [--method PM] [--idempotency-key K]
                                  pay (default method pm_card_visa)
  park ID                         check in
  leave ID [--at T]               check out (now, or at T)
  show RESERVATION_ID             show a reservation
  cancel RESERVATION_ID           cancel a reservation not yet used
  ticket ID                       print the QR ticket payload
  ticket ID --qr                  ... drawn as a QR code in the terminal
  ticket ID --png FILE [--size N]
                                  ... saved as a QR code PNG (- for stdout)

operators (admin token):
  status ID free|reserved|taken   force a spot's status
  push FILE.csv                   push paid reservations from a CSV file
                                  (header: spot,from,until[,car][,reference])
  reservations [--spot ID] [--state S,S] [--limit N]
                                  list reservations
  changes [--after N] [--limit N] read the change log
  gate open ID                    open gate ID's barrier remotely (over MQTT)
  gate resync ID                  make gate ID reload its reservation list

  version                         print the version
  help [command]                  print this help, or one command's

global flags (anywhere on the line):
  --server URL         centrald's URL (env PARKING_SERVER, else ` + defaultServer + `)
  --token TOKEN        the reservation's token (env PARKING_TOKEN)
  --admin-token TOKEN  the operator token (env PARKING_AUTH_ADMIN_TOKEN)
  --json               print the server's JSON answer instead of a summary

Prefer the environment variables to --token and --admin-token: command
lines show up in ps and in shell history. park, leave, show and cancel
fall back to the admin token when no reservation token is set, to act as
an operator.

exit status: 0 ok, 1 the request failed, 2 usage error (nothing was sent)
`

// helps is each command's usage, shown by "parkctl help CMD", "CMD -h"
// and after a usage error.
var helps = map[string]string{
	"spots":        "spots\n\nLists every spot with its status as of now and its current or next\nreservation's window and car (a plate is shown with the admin token, or\nwith a reservation's token for its own reservation; never anonymously).",
	"spot":         "spot ID\n\nShows one spot.",
	"reserve":      "reserve ID (--from T --until T | [--from T] --for D)\n\nReserves spot ID for a time window and prints the reservation id, the\ntoken (shown only this once: keep it), the amount and when payment is\ndue. --for takes a Go duration such as 2h or 90m.",
	"pay":          "pay ID --car PLATE [--method pm_card_visa] [--idempotency-key K]\n\nPays the reservation that the token opens. --method is a payment method\nreference, never a card number. Without --idempotency-key a random key\nis made and printed first: retrying with that key never charges twice.",
	"park":         "park ID\n\nChecks the car of the paid reservation of spot ID in.",
	"leave":        "leave ID [--at T]\n\nChecks the car out of spot ID, now or at T (early is fine: the spot is\nfree again at once).",
	"show":         "show RESERVATION_ID\n\nShows a reservation to its token holder or an operator.",
	"cancel":       "cancel RESERVATION_ID\n\nCancels a reservation whose car has not checked in.",
	"ticket":       "ticket ID [--qr | --png FILE [--size N]]\n\nPrints the QR ticket payload of the paid (or checked-in) reservation of\nspot ID: the string a gate scans. --qr draws it as a QR code in the\nterminal, black on white, for a phone to photograph from the screen\n(with NO_COLOR set, without colours: light modules as blocks, for a dark\nbackground); piped or redirected, without escape codes and with the dark\nmodules as blocks, for paper or a light background. --png saves the server's QR code PNG to FILE (- writes it to\nstdout), N pixels wide with --size (128 to 1024; by default 8 pixels a\nmodule). See docs/tickets.md.",
	"status":       "status ID free|reserved|taken\n\nForces spot ID's status (operators): free releases it (a car inside\nleaves, a paid no-show is released), taken checks the current\nreservation in, reserved undoes a check-in.",
	"push":         "push FILE.csv\n\nPushes paid operator reservations (operators). The file has a header\nrow naming the columns spot, from, until and optionally car and\nreference; '#' starts a comment line. Every row is checked first and\nbad rows are reported by line; the server then creates all rows or\nnone. Prints each new reservation's id and token.",
	"reservations": "reservations [--spot ID] [--state S,S] [--limit N]\n\nLists reservations (operators). States: reserved, paid, taken, left,\nexpired, no_show, cancelled.",
	"changes":      "changes [--after N] [--limit N]\n\nReads the change log (operators), oldest first, from the entry after\nversion N.",
	"gate":         "gate open ID\ngate resync ID\n\nopen asks gate ID to open its barrier (operators). centrald sends the\ncommand over MQTT with an id and a short expiry; the gate records it as a\ndecision and opens, or says why not.\n\nresync makes gate ID ask central for a snapshot of the reservation list\n(operators), e.g. after repairing its database; it returns once the gate\nhas asked.",
	"version":      "version\n\nPrints parkctl's version.",
	"help":         "help [command]\n\nPrints the usage of parkctl or of one command.",
}

// cli is one invocation's state.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	ctx            context.Context
	name           string // the command running

	// Global flags; the environment fills in what they leave empty.
	server, token, admin string
	json                 bool

	last []byte // the body of the last answer, printed by --json
}

// run executes parkctl with args (without the program name), reading the
// environment through getenv, and returns the exit status. It is main
// without the process: tests call it directly.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cl := &cli{stdout: stdout, stderr: stderr, getenv: getenv, ctx: context.Background()}
	fs := cl.flags("")
	if err := fs.Parse(args); err != nil {
		return cl.usageErr(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cl.name = fs.Arg(0)
	args = fs.Args()[1:]
	switch cl.name {
	case "help":
		return cl.help(args)
	case "version":
		if _, err := cl.parse(args, 0); err != nil {
			return cl.usageErr(err)
		}
		fmt.Fprintln(stdout, version.Version)
		return exitOK
	case "spots":
		return cl.spots(args)
	case "spot":
		return cl.spot(args)
	case "reserve":
		return cl.reserve(args)
	case "pay":
		return cl.pay(args)
	case "park":
		return cl.park(args)
	case "leave":
		return cl.leave(args)
	case "show":
		return cl.show(args)
	case "cancel":
		return cl.cancel(args)
	case "ticket":
		return cl.ticket(args)
	case "status":
		return cl.status(args)
	case "push":
		return cl.push(args)
	case "reservations":
		return cl.reservations(args)
	case "changes":
		return cl.changes(args)
	case "gate":
		return cl.gate(args)
	}
	fmt.Fprintf(stderr, "parkctl: unknown command %q; run 'parkctl help' for the list\n", cl.name)
	return exitUsage
}

// errUsage is a command-line mistake found after flag parsing.
type errUsage struct{ msg string }

func (e *errUsage) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &errUsage{fmt.Sprintf(format, args...)}
}

// flags returns a flag set for the current command with the global flags
// registered too, so they may be given before or after the command. Flags
// report their errors through usageErr, not on their own.
func (cl *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("parkctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// The defaults are the values parsed so far, so that a later flag set
	// does not reset what an earlier one read.
	fs.StringVar(&cl.server, "server", cl.server, "")
	fs.StringVar(&cl.token, "token", cl.token, "")
	fs.StringVar(&cl.admin, "admin-token", cl.admin, "")
	fs.BoolVar(&cl.json, "json", cl.json, "")
	return fs
}

// parse parses args with the global flags and wants exactly n positional
// arguments, which may stand between flags ("reserve 1 --for 2h").
func (cl *cli) parse(args []string, n int, define ...func(*flag.FlagSet)) ([]string, error) {
	fs := cl.flags(cl.name)
	for _, d := range define {
		d(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is positional
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < n:
		return nil, usagef("%s needs %d argument(s)", cl.name, n)
	case len(pos) > n:
		return nil, usagef("unexpected argument %q", pos[n])
	}
	return pos, nil
}

// usageErr reports a command-line mistake; -h is not one: it prints the
// help asked for.
func (cl *cli) usageErr(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		if h, ok := helps[cl.name]; ok {
			fmt.Fprintf(cl.stdout, "usage: parkctl %s\n", h)
		} else {
			fmt.Fprint(cl.stdout, usage)
		}
		return exitOK
	}
	fmt.Fprintf(cl.stderr, "parkctl: %v\n", err)
	if h, ok := helps[cl.name]; ok {
		syn, _, _ := strings.Cut(h, "\n")
		fmt.Fprintf(cl.stderr, "usage: parkctl %s\n", syn)
	} else {
		fmt.Fprintln(cl.stderr, "run 'parkctl help' for usage")
	}
	return exitUsage
}

func (cl *cli) help(args []string) int {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		args = []string{"help"} // "help -h": the help of help
	}
	if len(args) == 0 {
		fmt.Fprint(cl.stdout, usage)
		return exitOK
	}
	h, ok := helps[args[0]]
	if !ok || len(args) > 1 {
		fmt.Fprintf(cl.stderr, "parkctl: no help for %q; run 'parkctl help' for the list\n", strings.Join(args, " "))
		return exitUsage
	}
	fmt.Fprintf(cl.stdout, "usage: parkctl %s\n", h)
	return exitOK
}

// Which credential a command needs, checked before sending so the user
// is told which variable to set, not just that the server said 401.
const (
	needNone   = iota
	needDriver // the reservation's token
	needEither // the reservation's token, or the admin token to act as operator
	needAdmin  // the admin token
)

// connect resolves the global settings against the environment and
// returns the client.
func (cl *cli) connect(need int) (*client.Client, error) {
	if cl.server == "" {
		cl.server = cl.getenv(envServer)
	}
	if cl.server == "" {
		cl.server = defaultServer
	}
	if cl.token == "" {
		cl.token = cl.getenv(envToken)
	}
	if cl.admin == "" {
		cl.admin = cl.getenv(envAdmin)
	}
	switch {
	case need == needDriver && cl.token == "":
		return nil, usagef("%s needs the reservation's token: set %s (reserve prints it) or --token", cl.name, envToken)
	case need == needEither && cl.token == "" && cl.admin == "":
		return nil, usagef("%s needs the reservation's token (%s or --token), or an operator's admin token (%s or --admin-token)", cl.name, envToken, envAdmin)
	case need == needAdmin && cl.admin == "":
		return nil, usagef("%s is for operators: set %s or --admin-token", cl.name, envAdmin)
	}
	tok := cl.token
	if need == needAdmin {
		tok = "" // an operator command has no business sending a driver's token
	}
	c, err := client.New(cl.server,
		client.WithToken(tok),
		client.WithAdminToken(cl.admin),
		client.WithUserAgent("parkctl/"+version.Version),
		client.WithResponseHook(func(_ *http.Response, b []byte) { cl.last = b }),
	)
	if err != nil {
		return nil, usagef("--server: %v", err)
	}
	return c, nil
}

// fail reports a request that failed: the server's refusal as
// "<message> (<code>, HTTP <status>)", anything else as it came.
func (cl *cli) fail(err error) int {
	var e *client.Error
	var op *net.OpError
	switch {
	case errors.As(err, &e):
		fmt.Fprintf(cl.stderr, "parkctl: %s\n", e)
	case errors.As(err, &op) && op.Op == "dial":
		fmt.Fprintf(cl.stderr, "parkctl: %v\nparkctl: is centrald running there? (set --server or %s)\n", err, envServer)
	default:
		fmt.Fprintf(cl.stderr, "parkctl: %v\n", err)
	}
	return exitFailure
}

// done prints the answer: the server's JSON as it came with --json, else
// the summary.
func (cl *cli) done(summary func(w io.Writer)) int {
	if cl.json {
		cl.stdout.Write(cl.last)
		if n := len(cl.last); n > 0 && cl.last[n-1] != '\n' {
			fmt.Fprintln(cl.stdout)
		}
		return exitOK
	}
	summary(cl.stdout)
	return exitOK
}

// setup parses the command line and connects; code is the exit status
// when ok is false.
func (cl *cli) setup(args []string, n, need int, define ...func(*flag.FlagSet)) (c *client.Client, pos []string, code int, ok bool) {
	pos, err := cl.parse(args, n, define...)
	if err != nil {
		return nil, nil, cl.usageErr(err), false
	}
	c, err = cl.connect(need)
	if err != nil {
		return nil, nil, cl.usageErr(err), false
	}
	return c, pos, 0, true
}

func (cl *cli) spots(args []string) int {
	c, _, code, ok := cl.setup(args, 0, needNone)
	if !ok {
		return code
	}
	ps, err := c.Spots(cl.ctx)
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) {
		tw := table(w, "ID", "STATUS", "FROM", "UNTIL", "CAR")
		for _, p := range ps {
			if p.ReservationStatus == client.StateLeft {
				// A booking that ended early: its window and car are not
				// the spot's; `parkctl spot ID` still shows it, labelled.
				row(tw, p.ID, p.Status, "", "", "")
				continue
			}
			row(tw, p.ID, p.Status, ts(p.ReservedFrom), ts(p.ReservedUntil), p.CarID)
		}
		tw.Flush()
	})
}

func (cl *cli) spot(args []string) int {
	c, pos, code, ok := cl.setup(args, 1, needNone)
	if !ok {
		return code
	}
	p, err := c.Spot(cl.ctx, pos[0])
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) { printSpot(w, p) })
}

func printSpot(w io.Writer, p client.Parking) {
	kv := pairs(w)
	kv("spot", p.ID)
	kv("status", p.Status)
	if p.ReservationID != "" {
		kv("reservation", p.ReservationID+" ("+p.ReservationStatus+")")
	}
	kv("from", ts(p.ReservedFrom))
	kv("until", ts(p.ReservedUntil))
	kv("car", p.CarID)
	kv("reserved at", ts(p.ReservationCreatedAt))
	kv("paid at", ts(p.PaidAt))
	kv("left at", ts(p.LeftAt))
}

func (cl *cli) reserve(args []string) int {
	var from, until string
	var dur time.Duration
	c, pos, code, ok := cl.setup(args, 1, needNone, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "")
		fs.StringVar(&until, "until", "", "")
		fs.DurationVar(&dur, "for", 0, "")
	})
	if !ok {
		return code
	}
	start, end, err := window(from, until, dur, time.Now())
	if err != nil {
		return cl.usageErr(err)
	}
	r, err := c.Reserve(cl.ctx, pos[0], start, end)
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) {
		fmt.Fprintf(w, "reserved spot %s from %s until %s\n", r.SpotID, ts(r.ReservedFrom), ts(r.ReservedUntil))
		kv := pairs(w)
		kv("reservation", r.ReservationID)
		kv("token", r.Token)
		kv("amount", money(r.Amount, r.Currency))
		kv("pay by", ts(r.PaymentDueBy))
		fmt.Fprintf(w, "\nThe token is shown only this once; paying, parking, leaving and\ncancelling need it. Keep it, then pay:\n\n  export %s=%s\n  parkctl pay %s --car PLATE\n", envToken, r.Token, r.SpotID)
	})
}

// window works out the reservation window from --from, --until and --for.
func window(from, until string, dur time.Duration, now time.Time) (time.Time, time.Time, error) {
	var start, end time.Time
	var err error
	if from != "" {
		if start, err = parseTime("--from", from); err != nil {
			return start, end, err
		}
	}
	switch {
	case until != "" && dur != 0:
		return start, end, usagef("give --until or --for, not both")
	case until != "":
		if from == "" {
			return start, end, usagef("--until needs --from (or use --for)")
		}
		end, err = parseTime("--until", until)
	case dur > 0:
		if from == "" {
			start = now.UTC().Truncate(time.Second)
		}
		end = start.Add(dur)
	case dur < 0:
		err = usagef("--for must be positive")
	default:
		err = usagef("give the window: --from T --until T, or --for D")
	}
	return start, end, err
}

func parseTime(flagName, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, usagef("%s %q is not an RFC 3339 time such as 2026-11-26T14:00:00Z", flagName, s)
	}
	return t, nil
}

func (cl *cli) pay(args []string) int {
	var car, method, key string
	c, pos, code, ok := cl.setup(args, 1, needDriver, func(fs *flag.FlagSet) {
		fs.StringVar(&car, "car", "", "")
		fs.StringVar(&method, "method", "pm_card_visa", "")
		fs.StringVar(&key, "idempotency-key", "", "")
	})
	if !ok {
		return code
	}
	switch {
	case strings.TrimSpace(car) == "":
		return cl.usageErr(usagef("--car PLATE is required: the gate checks the plate"))
	case !strings.HasPrefix(method, "pm_"):
		// Refuse here, so that a card number typed by mistake never leaves
		// this machine (the server would refuse it too, after receiving it).
		return cl.usageErr(usagef("--method takes a payment method reference such as pm_card_visa, never a card number"))
	}
	if key == "" {
		key = newKey()
		// Printed before sending: if this command fails or hangs, the
		// retry must reuse the key to be sure of never paying twice.
		fmt.Fprintf(cl.stderr, "parkctl: idempotency key %s (to retry this payment safely, add --idempotency-key %s)\n", key, key)
	}
	r, err := c.Pay(cl.ctx, pos[0], "", car, method, key)
	if err != nil {
		code := cl.fail(err)
		var e *client.Error
		if errors.As(err, &e) && e.Status == http.StatusPaymentRequired {
			fmt.Fprintln(cl.stderr, "parkctl: nothing was charged and the reservation is still yours until payment is due; try another --method (with a new idempotency key: the same key repeats this answer)")
		}
		return code
	}
	return cl.done(func(w io.Writer) {
		fmt.Fprintf(w, "paid reservation %s for car %s\n", r.ReservationID, r.CarID)
		kv := pairs(w)
		kv("spot", r.SpotID)
		kv("from", ts(r.ReservedFrom))
		kv("until", ts(r.ReservedUntil))
		kv("amount", money(r.Amount, r.Currency))
		kv("paid at", ts(r.PaidAt))
		kv("ticket", r.Ticket)
	})
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "parkctl-" + hex.EncodeToString(b[:])
}

func (cl *cli) park(args []string) int {
	c, pos, code, ok := cl.setup(args, 1, needEither)
	if !ok {
		return code
	}
	r, err := c.CheckIn(cl.ctx, pos[0], "")
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) {
		fmt.Fprintf(w, "checked in on spot %s at %s; the reservation ends at %s\n", r.SpotID, ts(r.CheckedInAt), ts(r.ReservedUntil))
		kv := pairs(w)
		kv("reservation", r.ReservationID)
		kv("car", r.CarID)
	})
}

func (cl *cli) leave(args []string) int {
	var at string
	c, pos, code, ok := cl.setup(args, 1, needEither, func(fs *flag.FlagSet) {
		fs.StringVar(&at, "at", "", "")
	})
	if !ok {
		return code
	}
	var when time.Time
	if at != "" {
		var err error
		if when, err = parseTime("--at", at); err != nil {
			return cl.usageErr(err)
		}
	}
	r, err := c.CheckOut(cl.ctx, pos[0], "", when)
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) {
		fmt.Fprintf(w, "checked out of spot %s at %s; the spot is free\n", r.SpotID, ts(r.LeftAt))
		kv := pairs(w)
		kv("reservation", r.ReservationID)
		kv("car", r.CarID)
	})
}

func (cl *cli) show(args []string) int {
	c, pos, code, ok := cl.setup(args, 1, needEither)
	if !ok {
		return code
	}
	r, err := c.Reservation(cl.ctx, pos[0], "")
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) { printReservation(w, r) })
}

func printReservation(w io.Writer, r client.Reservation) {
	kv := pairs(w)
	kv("reservation", r.ReservationID)
	kv("spot", r.SpotID)
	kv("status", r.Status)
	kv("source", r.Source)
	kv("from", ts(r.ReservedFrom))
	kv("until", ts(r.ReservedUntil))
	kv("amount", money(r.Amount, r.Currency))
	kv("car", r.CarID)
	kv("reference", r.Reference)
	kv("reserved at", ts(r.ReservationCreatedAt))
	kv("pay by", ts(r.PaymentDueBy))
	kv("paid at", ts(r.PaidAt))
	kv("checked in", ts(r.CheckedInAt))
	kv("left at", ts(r.LeftAt))
	kv("ended at", ts(r.EndedAt))
}

func (cl *cli) cancel(args []string) int {
	c, pos, code, ok := cl.setup(args, 1, needEither)
	if !ok {
		return code
	}
	r, err := c.Cancel(cl.ctx, pos[0], "")
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) {
		fmt.Fprintf(w, "cancelled reservation %s of spot %s (%s to %s)\n", r.ReservationID, r.SpotID, ts(r.ReservedFrom), ts(r.ReservedUntil))
	})
}

func (cl *cli) ticket(args []string) int {
	var qr bool
	var pngFile string
	var size int
	c, pos, code, ok := cl.setup(args, 1, needDriver, func(fs *flag.FlagSet) {
		fs.BoolVar(&qr, "qr", false, "")
		fs.StringVar(&pngFile, "png", "", "")
		fs.IntVar(&size, "size", 0, "")
	})
	if !ok {
		return code
	}
	switch {
	case qr && pngFile != "":
		return cl.usageErr(usagef("give --qr or --png, not both"))
	case cl.json && (qr || pngFile != ""):
		return cl.usageErr(usagef("--json prints the ticket as JSON; it does not go with --qr or --png"))
	case size != 0 && pngFile == "":
		return cl.usageErr(usagef("--size goes with --png"))
	case size < 0:
		return cl.usageErr(usagef("--size must be positive"))
	}
	if pngFile != "" {
		return cl.ticketPNG(c, pos[0], pngFile, size)
	}
	t, err := c.Ticket(cl.ctx, pos[0], "")
	if err != nil {
		return cl.fail(err)
	}
	if qr {
		// Colour only on a terminal, and not with NO_COLOR set and not
		// empty (no-color.org): piped or redirected, no escape codes.
		style := qrDarkBlocks
		switch {
		case isTerminal(cl.stdout) && cl.getenv("NO_COLOR") == "":
			style = qrColour
		case isTerminal(cl.stdout):
			style = qrLightBlocks
		}
		if err := drawQR(cl.stdout, t, style); err != nil {
			return cl.fail(err)
		}
		return exitOK
	}
	// The bare string, so it pipes into a QR encoder.
	return cl.done(func(w io.Writer) { fmt.Fprintln(w, t) })
}

// ticketPNG saves the QR code PNG of spot's ticket to name, or writes it
// to stdout if name is "-".
func (cl *cli) ticketPNG(c *client.Client, spot, name string, size int) int {
	b, err := c.TicketPNG(cl.ctx, spot, "", size)
	if err != nil {
		return cl.fail(err)
	}
	if name == "-" {
		if _, err := cl.stdout.Write(b); err != nil {
			return cl.fail(err)
		}
		return exitOK
	}
	// 0600: the ticket opens the barrier, so it is no one else's to read.
	if err := os.WriteFile(name, b, 0o600); err != nil {
		return cl.fail(err)
	}
	dim := ""
	if cfg, err := png.DecodeConfig(bytes.NewReader(b)); err == nil {
		dim = fmt.Sprintf(", %d×%d pixels", cfg.Width, cfg.Height)
	}
	fmt.Fprintf(cl.stdout, "saved the ticket of spot %s as a QR code to %s (%d bytes%s)\n", spot, name, len(b), dim)
	return exitOK
}

func (cl *cli) status(args []string) int {
	c, pos, code, ok := cl.setup(args, 2, needAdmin)
	if !ok {
		return code
	}
	switch pos[1] {
	case client.StatusFree, client.StatusReserved, client.StatusTaken:
	default:
		return cl.usageErr(usagef("status must be free, reserved or taken, not %q", pos[1]))
	}
	p, err := c.ForceStatus(cl.ctx, pos[0], pos[1])
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) { printSpot(w, p) })
}

func (cl *cli) push(args []string) int {
	c, pos, code, ok := cl.setup(args, 1, needAdmin)
	if !ok {
		return code
	}
	name := pos[0]
	f, err := os.Open(name)
	if err != nil {
		return cl.usageErr(err)
	}
	rows, err := readPushCSV(f)
	f.Close()
	if err != nil {
		var bad *csvErrors
		if errors.As(err, &bad) {
			for _, p := range bad.problems {
				fmt.Fprintf(cl.stderr, "parkctl: %s:%d: %s\n", name, p.line, p.msg)
			}
			fmt.Fprintf(cl.stderr, "parkctl: %s: %d bad row(s); nothing was pushed\n", name, len(bad.problems))
			return exitUsage
		}
		fmt.Fprintf(cl.stderr, "parkctl: %s: %v\n", name, err)
		return exitUsage
	}
	items := make([]client.PushItem, len(rows))
	for i, r := range rows {
		items[i] = r.item
	}
	rs, err := c.Push(cl.ctx, items)
	if err != nil {
		code := cl.fail(err)
		var e *client.Error
		if errors.As(err, &e) && e.Status < 500 {
			// The server names the item; the operator edits a line.
			var n int
			if _, serr := fmt.Sscanf(e.Message, "reservation %d:", &n); serr == nil && n >= 1 && n <= len(rows) {
				fmt.Fprintf(cl.stderr, "parkctl: reservation %d is %s:%d\n", n, name, rows[n-1].line)
			}
			fmt.Fprintln(cl.stderr, "parkctl: nothing was pushed")
		}
		return code
	}
	return cl.done(func(w io.Writer) {
		fmt.Fprintf(w, "pushed %d reservation(s); each token is shown only this once\n", len(rs))
		tw := table(w, "LINE", "SPOT", "FROM", "UNTIL", "CAR", "RESERVATION", "TOKEN")
		for i, r := range rs {
			line := ""
			if i < len(rows) {
				line = strconv.Itoa(rows[i].line)
			}
			row(tw, line, r.SpotID, ts(r.ReservedFrom), ts(r.ReservedUntil), r.CarID, r.ReservationID, r.Token)
		}
		tw.Flush()
	})
}

func (cl *cli) reservations(args []string) int {
	var spot, states string
	var limit int
	c, _, code, ok := cl.setup(args, 0, needAdmin, func(fs *flag.FlagSet) {
		fs.StringVar(&spot, "spot", "", "")
		fs.StringVar(&states, "state", "", "")
		fs.IntVar(&limit, "limit", 0, "")
	})
	if !ok {
		return code
	}
	if limit < 0 {
		return cl.usageErr(usagef("--limit must be positive"))
	}
	var ss []string
	for s := range strings.SplitSeq(states, ",") {
		if s = strings.TrimSpace(s); s != "" {
			ss = append(ss, s)
		}
	}
	rs, err := c.Reservations(cl.ctx, spot, ss, limit)
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) {
		tw := table(w, "RESERVATION", "SPOT", "STATUS", "SOURCE", "FROM", "UNTIL", "CAR", "REFERENCE")
		for _, r := range rs {
			row(tw, r.ReservationID, r.SpotID, r.Status, r.Source, ts(r.ReservedFrom), ts(r.ReservedUntil), r.CarID, r.Reference)
		}
		tw.Flush()
	})
}

func (cl *cli) changes(args []string) int {
	var after int64
	var limit int
	c, _, code, ok := cl.setup(args, 0, needAdmin, func(fs *flag.FlagSet) {
		fs.Int64Var(&after, "after", 0, "")
		fs.IntVar(&limit, "limit", 0, "")
	})
	if !ok {
		return code
	}
	if after < 0 || limit < 0 {
		return cl.usageErr(usagef("--after and --limit must not be negative"))
	}
	cs, err := c.Changes(cl.ctx, after, limit)
	if err != nil {
		return cl.fail(err)
	}
	return cl.done(func(w io.Writer) {
		tw := table(w, "VERSION", "AT", "KIND", "SPOT", "RESERVATION", "ACTOR")
		for _, ch := range cs {
			row(tw, strconv.FormatInt(ch.Version, 10), ts(ch.At), ch.Kind, ch.SpotID, ch.ReservationID, ch.Actor)
		}
		tw.Flush()
		if len(cs) > 0 {
			fmt.Fprintf(w, "\nnext page: parkctl changes --after %d\n", cs[len(cs)-1].Version)
		}
	})
}

// table starts a tab-aligned table with a header row.
func table(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row(tw, header...)
	return tw
}

// row writes a table row; an empty cell shows as "-" so columns stay
// readable and splittable by whitespace.
func row(tw *tabwriter.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		// Tabs and newlines in a value (a reference, say) would break
		// the table.
		c = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
		if i > 0 {
			tw.Write([]byte{'\t'})
		}
		tw.Write([]byte(c))
	}
	tw.Write([]byte{'\n'})
}

// pairs returns a printer of aligned "key  value" lines that skips empty
// values, so summaries show only what is set.
func pairs(w io.Writer) func(k, v string) {
	return func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-12s %s\n", k, v)
		}
	}
}

// ts formats a time as the API does (RFC 3339, UTC), "" when unset.
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// zeroDecimal lists the currencies that have no minor unit (Stripe's
// list), whose amounts are not in hundredths.
var zeroDecimal = map[string]bool{
	"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true,
	"krw": true, "mga": true, "pyg": true, "rwf": true, "ugx": true, "vnd": true,
	"vuv": true, "xaf": true, "xof": true, "xpf": true,
}

// money formats an amount in minor units, e.g. 500 eur as "5.00 EUR".
func money(amount int64, currency string) string {
	cur := strings.ToUpper(currency)
	if zeroDecimal[strings.ToLower(currency)] {
		return fmt.Sprintf("%d %s", amount, cur)
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return strings.TrimSpace(fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, cur))
}

func (cl *cli) gate(args []string) int {
	c, pos, code, ok := cl.setup(args, 2, needAdmin)
	if !ok {
		return code
	}
	switch pos[0] {
	case "open":
		if err := c.OpenGate(cl.ctx, pos[1]); err != nil {
			return cl.fail(err)
		}
		return cl.done(func(w io.Writer) { fmt.Fprintf(w, "gate %s opened\n", pos[1]) })
	case "resync":
		if err := c.ResyncGate(cl.ctx, pos[1]); err != nil {
			return cl.fail(err)
		}
		return cl.done(func(w io.Writer) { fmt.Fprintf(w, "gate %s asked central for a snapshot\n", pos[1]) })
	}
	return cl.usageErr(usagef("gate takes a subcommand: open ID or resync ID"))
}
