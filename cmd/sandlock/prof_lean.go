//go:build !pprof

package main

import "errors"

// profBuild is false in the lean build (see profiling.go).
const profBuild = false

func startProfiling(*runFlags) (func() error, error) {
	return nil, errors.New("profiling: not in this build")
}
