package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sandlock/sandlock/internal/loopback"
	"github.com/sandlock/sandlock/internal/spawn"
)

// Profiling sandlock itself (--cpuprofile, --memprofile, --trace, --pprof)
// needs runtime/pprof, runtime/trace and net/http, whose initialisation
// would cost every launch about a millisecond. So bin/sandlock does not
// link them: given one of these flags, it execs bin/sandlock-prof, the same
// program built with the "pprof" tag (make builds both), which does.

// profiling reports whether any profiling flag was given.
func (f *runFlags) profiling() bool {
	return f.cpuProfile != "" || f.memProfile != "" || f.trace != "" || f.pprofAddr != ""
}

// checkProfiling validates the profiling flags (in either build).
func checkProfiling(f *runFlags, stderr io.Writer) int {
	if f.pprofAddr != "" {
		if err := checkLoopback(f.pprofAddr); err != nil {
			return errorf(stderr, exitSandlock, "--pprof: %s: %v", f.pprofAddr, err)
		}
	}
	for _, p := range []struct{ flag, path string }{{"--cpuprofile", f.cpuProfile}, {"--memprofile", f.memProfile}, {"--trace", f.trace}, {"--stats", f.stats}} {
		if p.path == "" {
			continue
		}
		dir := filepath.Dir(p.path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return errorf(stderr, exitSandlock, "%s: %s: no such directory %s", p.flag, p.path, dir)
		}
	}
	return 0
}

// checkLoopback accepts HOST:PORT where HOST is a loopback address or
// "localhost": the profiling endpoint must not be reachable from outside.
func checkLoopback(addr string) error {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return fmt.Errorf("want HOST:PORT")
	}
	host, port := strings.Trim(addr[:i], "[]"), addr[i+1:]
	if port == "" || strings.Trim(port, "0123456789") != "" || len(port) > 5 {
		return fmt.Errorf("bad port %q", port)
	}
	if host == "localhost" {
		return nil
	}
	if !loopback.IsIP(host) {
		return fmt.Errorf("not a loopback address (use 127.0.0.1, [::1] or localhost)")
	}
	return nil
}

// profBinary is the profiling build's name, next to sandlock.
const profBinary = "sandlock-prof"

// execProfBuild replaces this process with sandlock-prof and the same
// arguments; it returns only on failure.
func execProfBuild(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("profiling: %w", err)
	}
	prof := filepath.Join(filepath.Dir(exe), profBinary)
	if _, err := os.Stat(prof); err != nil {
		return fmt.Errorf("profiling needs %s next to sandlock (make builds it): %w", profBinary, err)
	}
	// The early child would outlive the exec (it dies with the main
	// thread, which an exec keeps).
	spawn.AbortEarly()
	return fmt.Errorf("profiling: exec %s: %w", prof, syscall.Exec(prof, append([]string{prof}, args...), os.Environ()))
}
