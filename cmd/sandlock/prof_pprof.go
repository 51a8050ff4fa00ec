//go:build pprof

package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on the default mux
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// profBuild is true in sandlock-prof (see profiling.go).
const profBuild = true

// startProfiling starts what f asks for and returns what finishes it.
func startProfiling(f *runFlags) (func() error, error) {
	var stops []func() error
	stopAll := func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		return errors.Join(errs...)
	}
	if f.cpuProfile != "" {
		out, err := os.Create(f.cpuProfile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			out.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		stops = append(stops, func() error {
			pprof.StopCPUProfile()
			return out.Close()
		})
	}
	if f.trace != "" {
		out, err := os.Create(f.trace)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("--trace: %w", err)
		}
		if err := trace.Start(out); err != nil {
			out.Close()
			stopAll()
			return nil, fmt.Errorf("--trace: %w", err)
		}
		stops = append(stops, func() error {
			trace.Stop()
			return out.Close()
		})
	}
	if f.memProfile != "" {
		path := f.memProfile
		stops = append(stops, func() error {
			out, err := os.Create(path)
			if err != nil {
				return fmt.Errorf("--memprofile: %w", err)
			}
			runtime.GC() // up-to-date statistics
			if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
				out.Close()
				return fmt.Errorf("--memprofile: %w", err)
			}
			return out.Close()
		})
	}
	if f.pprofAddr != "" {
		ln, err := net.Listen("tcp", f.pprofAddr)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("--pprof: %w", err)
		}
		if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
			ln.Close()
			stopAll()
			return nil, fmt.Errorf("--pprof: %s: not a loopback address", ln.Addr())
		}
		go http.Serve(ln, nil)
		stops = append(stops, ln.Close)
	}
	return stopAll, nil
}
