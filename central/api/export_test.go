package api

// QRPNG exposes qrPNG to the external tests.
var QRPNG = qrPNG
