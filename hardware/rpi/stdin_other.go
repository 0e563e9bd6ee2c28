//go:build !linux

package rpi

// restoreStdin has nothing to repair off Linux, where Init fails anyway.
func restoreStdin() {}
