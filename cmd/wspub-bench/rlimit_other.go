//go:build !unix

package main

import "errors"

// raiseNoFile is not supported here: the system's limit on open files applies.
func raiseNoFile() (soft, hard uint64, err error) {
	return 0, 0, errors.New("raising the open-file limit is not supported on this system")
}
