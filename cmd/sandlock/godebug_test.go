package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestStartupGODEBUG checks the runtime settings main.go's //go:debug lines
// give sandlock: neither GOMAXPROCS sized by the cgroup's CPU quota nor its
// periodic update.
func TestStartupGODEBUG(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information")
	}
	var got string
	for _, s := range bi.Settings {
		if s.Key == "DefaultGODEBUG" {
			got = s.Value
		}
	}
	for _, want := range []string{"containermaxprocs=0", "updatemaxprocs=0"} {
		if !strings.Contains(","+got+",", ","+want+",") {
			t.Errorf("DefaultGODEBUG = %q, want it to hold %s", got, want)
		}
	}
}
