// Package cmdline parses the command lines of the daemons (centrald,
// gated): flags before or after a command and its arguments, --help to
// stdout with exit 0, and a mistake or an unknown command named on stderr
// before the usage, exit 2.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit codes of a command line that is not run.
const (
	ExitOK    = 0
	ExitUsage = 2
)

// Parse parses args with fs: flags may come before the command, and after
// the command and between its arguments (centrald gate add entry-1
// --config x). It returns the command ("" for none) and its positional
// arguments; ok is false when the program must exit with code instead:
// after --help (usage on stdout, ExitOK), a bad flag, or a command not in
// known (said before the configuration is read: a typo is a typo whatever
// the config holds). fs's errors go to its own output; set fs.Usage to do
// nothing, since Parse prints the usage itself.
func Parse(fs *flag.FlagSet, args []string, name, usage string, known map[string]bool, stdout, stderr io.Writer) (cmd string, rest []string, code int, ok bool) {
	parse := func(args []string) bool {
		switch err := fs.Parse(args); {
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprint(stdout, usage)
			code = ExitOK
			return false
		case err != nil:
			fmt.Fprint(stderr, usage)
			code = ExitUsage
			return false
		}
		return true
	}
	if !parse(args) {
		return "", nil, code, false
	}
	if fs.NArg() == 0 {
		return "", nil, 0, true
	}
	cmd = fs.Arg(0)
	for more := fs.Args()[1:]; len(more) > 0; more = fs.Args()[1:] {
		if !parse(more) {
			return "", nil, code, false
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
	}
	if !known[cmd] {
		fmt.Fprintf(stderr, "%s: unknown command %q\n%s", name, cmd, usage)
		return "", nil, ExitUsage, false
	}
	return cmd, rest, 0, true
}
