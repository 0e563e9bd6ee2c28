package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	for _, c := range []struct {
		describe string
		count    int
		want     string
	}{
		{"v0.6.0", 0, "0.6.0"},
		{"0.6.0", 0, "0.6.0"},
		{"v0.6.0-3-gabc1234", 0, "0.6.0+3.gabc1234"},
		{"v0.6.0-3-gabc1234-dirty", 0, "0.6.0+3.gabc1234.dirty"},
		{"v0.6.0-dirty", 0, "0.6.0+0.dirty"},
		{"v0.6.0-rc1", 0, "0.6.0~rc1"},
		{"v0.6.0-rc1-3-gabc1234", 0, "0.6.0~rc1+3.gabc1234"},
		{"84583fd", 187, "0.0.0+187.g84583fd"},
		{"84583fd-dirty", 187, "0.0.0+187.g84583fd.dirty"},
		{"v0.6.1\n", 0, "0.6.1"},
	} {
		got, err := Version(c.describe, c.count)
		if err != nil || got != c.want {
			t.Errorf("Version(%q, %d) = %q, %v; want %q", c.describe, c.count, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "dev", "release-x", "v0.6.0 rc1", "v0.6.0_1"} {
		if got, err := Version(bad, 1); err == nil {
			t.Errorf("Version(%q) = %q, want an error", bad, got)
		}
	}
}

// dpkg must take each build in this list as newer than the one before:
// that is what makes `apt install ./new.deb` an upgrade. Checked with
// dpkg itself where it is installed.
func TestVersionsSortAsBuilt(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg not installed: cannot compare Debian versions")
	}
	order := []struct {
		describe string
		count    int
	}{
		{"aaaa999", 9}, {"0000aaa", 10}, {"0000aaa-dirty", 10},
		{"v0.6.0-rc1", 0}, {"v0.6.0-rc1-2-gffff000", 0}, {"v0.6.0", 0},
		{"v0.6.0-dirty", 0}, {"v0.6.0-3-gfff0000", 0}, {"v0.6.0-12-g0000000", 0}, {"v0.6.1", 0},
	}
	prev := ""
	for _, o := range order {
		v, err := Version(o.describe, o.count)
		if err != nil {
			t.Fatal(err)
		}
		if prev != "" {
			if err := exec.Command(dpkg, "--compare-versions", v, "gt", prev).Run(); err != nil {
				t.Errorf("dpkg does not take %s (%s) as newer than %s", v, o.describe, prev)
			}
		}
		prev = v
	}
}

func TestChangelog(t *testing.T) {
	md := `# Changelog

Every release, newest first.

- **0.6** (unreleased) — safe for a real site.
  - Plates are personal data: see [docs/api.md](docs/api.md) and the
    [console](docs/console.md); a very-long-word-that-goes-on-and-on-and-on-and-on-and-on-and-on-and-on-beyond-the-width stays whole.
- **0.5** — scale-out.
`
	at := time.Date(2026, 12, 3, 8, 36, 43, 0, time.UTC)
	got, err := Changelog("parkgate-gated", "0.6.0+3.gabc1234", at, "parkgate maintainers <m@example.org>", md)
	if err != nil {
		t.Fatal(err)
	}
	want := `parkgate-gated (0.6.0+3.gabc1234) unstable; urgency=medium

  * Built from parkgate 0.6.0+3.gabc1234. Changes by release:
  * 0.6 (unreleased) — safe for a real site.
    - Plates are personal data: see docs/api.md and the console
      (docs/console.md); a
      very-long-word-that-goes-on-and-on-and-on-and-on-and-on-and-on-and-on-beyond-the-width
      stays whole.
  * 0.5 — scale-out.

 -- parkgate maintainers <m@example.org>  Thu, 03 Dec 2026 08:36:43 +0000
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []struct{ version, maint, md string }{
		{"0.6-1", "a <b@c>", md},
		{"0.6", "nobody", md},
		{"0.6", "a <b@c>", "# Changelog\n\nnothing yet\n"},
	} {
		if _, err := Changelog("p", bad.version, at, bad.maint, bad.md); err == nil {
			t.Errorf("Changelog(%q, %q, %q): want an error", bad.version, bad.maint, bad.md)
		}
	}
}

// The repository's own CHANGELOG.md renders, keeps every release, and
// passes dpkg-parsechangelog where that is installed.
func TestRepositoryChangelog(t *testing.T) {
	md, err := os.ReadFile("../../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"changelog", "parkgate-cli", "0.6.0", "1796200000", "parkgate maintainers <m@example.org>"},
		bytes.NewReader(md), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, rel := range []string{"0.1", "0.2", "0.3", "0.4", "0.5", "0.6"} {
		if !strings.Contains(out.String(), "  * "+rel+" ") {
			t.Errorf("release %s missing from\n%s", rel, out.String())
		}
	}
	for i, line := range strings.Split(out.String(), "\n") {
		if n := len([]rune(line)); n > 80 && strings.Contains(line, " ") {
			t.Errorf("line %d has %d characters: %q", i+1, n, line)
		}
	}
	parse, err := exec.LookPath("dpkg-parsechangelog")
	if err != nil {
		t.Log("dpkg-parsechangelog not installed: format not checked by dpkg")
		return
	}
	f := t.TempDir() + "/changelog"
	if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(parse, "-l", f, "-S", "Version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(res)) != "0.6.0" {
		t.Errorf("dpkg-parsechangelog: %v: %s", err, res)
	}
}

func TestManpage(t *testing.T) {
	help := "usage: gated [--config PATH] [command]\n\ncommands:\n  import FILE   replace the cache (\"-\" for stdin, C:\\path)\n.hidden request\n"
	at := time.Date(2026, 12, 3, 8, 36, 43, 0, time.UTC)
	got, err := Manpage("gated", "0.6.0", at, "parkgate gate controller", help,
		[]string{"/etc/parkgate/gated.yaml=the configuration"})
	if err != nil {
		t.Fatal(err)
	}
	want := `.TH GATED 1 "2026-12-03" "parkgate 0.6.0" "parkgate"
.SH NAME
gated \- parkgate gate controller
.SH DESCRIPTION
.nf
usage: gated [--config PATH] [command]

commands:
  import FILE   replace the cache ("-" for stdin, C:\epath)
\&.hidden request
.fi
.SH FILES
.TP
.I /etc/parkgate/gated.yaml
the configuration
.SH SEE ALSO
The README and docs of parkgate, https://github.com/parkgate/parkgate.
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, c := range []struct{ help, file string }{{"", "a=b"}, {"usage: other", "a=b"}, {"usage: gated", "no-description"}} {
		if _, err := Manpage("gated", "0.6.0", at, "s", c.help, []string{c.file}); err == nil {
			t.Errorf("help %q, file %q: want an error", c.help, c.file)
		}
	}
}
