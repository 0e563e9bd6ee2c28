package api

// QRPNG exposes qrPNG to the external tests.
var QRPNG = qrPNG

// RoutePatterns lists every route the handler serves, so the tests can
// check that each refuses unknown query parameters.
func RoutePatterns() []string {
	h := New(nil, Options{})
	var out []string
	for p := range h.params {
		out = append(out, p)
	}
	return out
}
