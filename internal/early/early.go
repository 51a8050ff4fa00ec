// Package early forks `sandlock run`'s command as soon as the program
// starts (spawn.StartEarly), from its init: the command's first steps,
// which depend on nothing the command line says, then run on another CPU
// while the rest of the program initialises and parses the command line.
// Only cmd/sandlock imports it; the first sandbox it starts takes the
// child (sandbox.Options.InProcess), or ends it when it does not fit.
package early

import (
	"os"

	"github.com/sandlock/sandlock/internal/spawn"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "run" && Fits(os.Args[2:]) {
		// On error the sandbox forks as usual.
		_ = spawn.StartEarly()
	}
}

// Fits reports whether run's arguments may start the command in the early
// child: not when it needs no supervisor or the terminal, nor for help. (The
// sandbox checks the policy again and ends an early child that does not
// fit.)
func Fits(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return true
		case "--no-supervisor", "-i", "--interactive", "-h", "--help":
			return false
		}
	}
	return true
}
