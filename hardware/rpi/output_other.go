//go:build !linux

package rpi

import (
	"errors"
	"runtime"
)

// requestOutput needs Linux's GPIO character device.
func requestOutput(chip string, offset uint32, high bool) (outputLine, error) {
	return nil, errors.New("rpi: GPIO outputs need Linux's GPIO character device, this is " + runtime.GOOS)
}
