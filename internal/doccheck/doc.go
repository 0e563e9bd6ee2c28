// Package doccheck holds repository-wide checks that run as tests: every
// package has a doc comment (after tailscale's pkgdoc test), and every
// exported identifier of a library package is documented.
package doccheck
