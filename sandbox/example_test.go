package sandbox_test

import (
	"fmt"
	"os"

	"github.com/sandlock/sandlock/policy"
	"github.com/sandlock/sandlock/sandbox"
)

// A Go program confines a command without the CLI: read-only system
// directories, at most 8 processes and 64 MiB of writable memory.
func ExampleRun() {
	p := &policy.Policy{
		FSRead:       existing("/usr", "/lib", "/lib64", "/bin"),
		MaxProcesses: 8,
		MaxMemory:    64 << 20,
		Name:         "example",
		Env:          []string{"PATH=/usr/bin:/bin"},
	}
	cmd := sandbox.Command{Path: "sh", Args: []string{"sh", "-c", "echo hello from $(uname -n); cat /etc/passwd"}, Stdout: os.Stdout}
	res, err := sandbox.Run(p, cmd, nil)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("exit", res.ExitCode)
	// Output:
	// hello from example
	// exit 1
}

func existing(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}
