// Package doccheck holds repository-wide checks that run as tests: every
// package has a doc comment (after tailscale's pkgdoc test), every
// exported identifier of a library package is documented, and the worked
// examples of docs/sync.md and docs/tickets.md (fenced blocks marked
// doccheck=NAME) decode with the real codec and ticket verifier to what
// the text says.
package doccheck
