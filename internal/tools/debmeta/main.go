// Command debmeta computes what `make deb` (scripts/deb-build.sh) needs
// besides the binaries and nfpm: the Debian version of a build, derived from
// `git describe`, a package's Debian changelog, derived from CHANGELOG.md,
//
//	debmeta version DESCRIBE COUNT
//	debmeta changelog PACKAGE VERSION UNIX_TIME MAINTAINER < CHANGELOG.md
//	debmeta manpage NAME VERSION UNIX_TIME SUMMARY [FILE...] < HELP
//
// and each program's manual page, derived from its --help text.
//
// It lives here rather than in the shell script so that the version rules,
// which decide whether dpkg sees a build as an upgrade, have a unit test.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := "usage: debmeta version DESCRIBE COUNT | debmeta changelog PACKAGE VERSION UNIX_TIME MAINTAINER < CHANGELOG.md | debmeta manpage NAME VERSION UNIX_TIME SUMMARY [FILE...] < HELP"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch {
	case args[0] == "version" && len(args) == 3:
		count, err := strconv.Atoi(args[2])
		if err != nil || count < 0 {
			fmt.Fprintf(stderr, "debmeta: commit count %q is not a number\n", args[2])
			return 2
		}
		v, err := Version(args[1], count)
		if err != nil {
			fmt.Fprintln(stderr, "debmeta:", err)
			return 1
		}
		fmt.Fprintln(stdout, v)
		return 0
	case args[0] == "changelog" && len(args) == 5:
		sec, err := strconv.ParseInt(args[3], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "debmeta: time %q is not seconds since the epoch\n", args[3])
			return 2
		}
		md, err := io.ReadAll(stdin)
		if err != nil {
			fmt.Fprintln(stderr, "debmeta:", err)
			return 1
		}
		out, err := Changelog(args[1], args[2], time.Unix(sec, 0), args[4], string(md))
		if err != nil {
			fmt.Fprintln(stderr, "debmeta:", err)
			return 1
		}
		io.WriteString(stdout, out)
		return 0
	case args[0] == "manpage" && len(args) >= 5:
		sec, err := strconv.ParseInt(args[3], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "debmeta: time %q is not seconds since the epoch\n", args[3])
			return 2
		}
		help, err := io.ReadAll(stdin)
		if err != nil {
			fmt.Fprintln(stderr, "debmeta:", err)
			return 1
		}
		out, err := Manpage(args[1], args[2], time.Unix(sec, 0), args[4], string(help), args[5:])
		if err != nil {
			fmt.Fprintln(stderr, "debmeta:", err)
			return 1
		}
		io.WriteString(stdout, out)
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

// Manpage renders a program's --help text as its manual page (section 1),
// shown as written: the help is the one description of the commands that
// the code keeps up to date, so the page cannot drift from it. files are
// "PATH=WHAT" pairs, listed under FILES.
func Manpage(name, version string, at time.Time, summary, help string, files []string) (string, error) {
	help = strings.TrimSpace(help)
	if help == "" {
		return "", fmt.Errorf("%s printed no help", name)
	}
	if !strings.Contains(help, name) {
		return "", fmt.Errorf("the help text does not name %s: %.60q", name, help)
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 %q %q \"parkgate\"\n", strings.ToUpper(name), at.UTC().Format("2006-01-02"), "parkgate "+version)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", name, roff(summary))
	b.WriteString(".SH DESCRIPTION\n.nf\n")
	for _, line := range strings.Split(help, "\n") {
		b.WriteString(roff(line) + "\n")
	}
	b.WriteString(".fi\n")
	if len(files) > 0 {
		b.WriteString(".SH FILES\n")
		for _, f := range files {
			path, what, ok := strings.Cut(f, "=")
			if !ok {
				return "", fmt.Errorf("file %q: want PATH=WHAT", f)
			}
			fmt.Fprintf(&b, ".TP\n.I %s\n%s\n", roff(path), roff(what))
		}
	}
	fmt.Fprintf(&b, ".SH SEE ALSO\nThe README and docs of parkgate, https://github.com/parkgate/parkgate.\n")
	return b.String(), nil
}

// roff escapes text for a roff line: backslashes, and a dot or quote at
// the start that roff would take for a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, "\\", "\\e")
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = "\\&" + s
	}
	return s
}

var (
	// git describe's "-N-gHASH" after a tag.
	describeSince = regexp.MustCompile(`-([0-9]+)-g([0-9a-f]{4,40})$`)
	// An untagged repository: git describe --always gives the hash alone.
	describeHash = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	// A release tag: v1.2.3, or v1.2.3-rc1 for a pre-release.
	releaseTag = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-([0-9A-Za-z.]+))?$`)
	// What a Debian upstream version without a revision may hold.
	debianVersion = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`)
)

// Version maps the output of `git describe --tags --always --dirty` to a
// Debian version that sorts the way the builds were made, so that dpkg
// takes a later build as an upgrade:
//
//	v0.6.0                  0.6.0
//	v0.6.0-3-gabc1234       0.6.0+3.gabc1234  (after 0.6.0, before 0.6.1)
//	v0.6.0-rc1              0.6.0~rc1         (before 0.6.0)
//	v0.6.0-rc1-3-gabc1234   0.6.0~rc1+3.gabc1234
//	abc1234 (no tag)        0.0.0+COUNT.gabc1234, COUNT the commits in HEAD
//	v0.6.0-dirty            0.6.0+0.dirty
//	…-gabc1234-dirty        …-gabc1234.dirty
//
// The version has no Debian revision (no "-"): the packages are native.
func Version(describe string, count int) (string, error) {
	d := strings.TrimSpace(describe)
	d, dirty := strings.CutSuffix(d, "-dirty")
	var v string
	if describeHash.MatchString(d) {
		v = fmt.Sprintf("0.0.0+%d.g%s", count, d)
	} else {
		tag, since := d, ""
		if m := describeSince.FindStringSubmatch(d); m != nil {
			tag, since = strings.TrimSuffix(d, m[0]), m[1]+".g"+m[2]
		}
		m := releaseTag.FindStringSubmatch(tag)
		if m == nil {
			return "", fmt.Errorf("%q is not what git describe --tags --always --dirty prints for a release tag (want e.g. v0.6.0-3-gabc1234)", describe)
		}
		v = m[1]
		if m[2] != "" {
			v += "~" + m[2]
		}
		if since != "" {
			v += "+" + since
		}
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			// "+0": a later commit on this tag (+3.g…) still sorts after.
			v += "+0.dirty"
		}
	}
	if !debianVersion.MatchString(v) {
		return "", fmt.Errorf("%q gives %q, which is not a Debian version", describe, v)
	}
	return v, nil
}

// Changelog renders CHANGELOG.md (a list of releases, each "- **X.Y** …"
// with optional indented sub-items) as a Debian changelog of one entry for
// this build: Debian wants /usr/share/doc/PACKAGE/changelog.gz in its own
// format, and the project keeps one history, in CHANGELOG.md.
func Changelog(pkg, version string, at time.Time, maintainer, markdown string) (string, error) {
	if !debianVersion.MatchString(version) {
		return "", fmt.Errorf("version %q is not a Debian version", version)
	}
	if !strings.Contains(maintainer, "<") || !strings.HasSuffix(maintainer, ">") {
		return "", fmt.Errorf("maintainer %q: want \"Name <address>\"", maintainer)
	}
	type item struct {
		sub  bool
		text []string
	}
	var items []item
	sc := bufio.NewScanner(strings.NewReader(markdown))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case strings.HasPrefix(line, "- "):
			items = append(items, item{text: []string{trimmed[2:]}})
		case strings.HasPrefix(trimmed, "- ") && len(items) > 0:
			items = append(items, item{sub: true, text: []string{trimmed[2:]}})
		case len(items) > 0:
			items[len(items)-1].text = append(items[len(items)-1].text, trimmed)
		}
	}
	if len(items) == 0 {
		return "", errors.New("CHANGELOG.md lists no release (want lines \"- **X.Y** …\")")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) unstable; urgency=medium\n\n", pkg, version)
	fmt.Fprintf(&b, "  * Built from parkgate %s. Changes by release:\n", version)
	for _, it := range items {
		first, rest := "  * ", "    "
		if it.sub {
			first, rest = "    - ", "      "
		}
		wrap(&b, plain(strings.Join(it.text, " ")), first, rest, 78)
	}
	fmt.Fprintf(&b, "\n -- %s  %s\n", maintainer, at.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.String(), nil
}

var mdLink = regexp.MustCompile(`\[([^\]]+)\]\(([^)]+)\)`)

// plain drops the Markdown a terminal reader would see as noise: emphasis
// and links whose text is their target.
func plain(s string) string {
	s = strings.ReplaceAll(s, "**", "")
	s = strings.ReplaceAll(s, "*", "")
	return mdLink.ReplaceAllStringFunc(s, func(l string) string {
		m := mdLink.FindStringSubmatch(l)
		if m[1] == m[2] {
			return m[1]
		}
		return m[1] + " (" + m[2] + ")"
	})
}

// wrap writes text as lines of at most width runes (a longer word stands
// alone), the first prefixed with first and the others with rest.
func wrap(b *strings.Builder, text, first, rest string, width int) {
	line := first
	empty := true
	for _, w := range strings.Fields(text) {
		if !empty && len([]rune(line))+1+len([]rune(w)) > width {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += w
		empty = false
	}
	b.WriteString(line + "\n")
}
