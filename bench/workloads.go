package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// env is what a workload runs in: its own writable directory.
type env struct {
	Dir   string
	Tools map[string]string
	Quick bool
	// RunTimeout bounds one run (0: none).
	RunTimeout time.Duration
}

// workload is one benchmark: a command run bare and under each sandbox.
type workload struct {
	Name string `json:"name"`
	Desc string `json:"description"`
	// Argv is the command, inside the sandbox.
	Argv func(e *env) []string `json:"-"`
	// Reps and QuickReps are the runs per sandbox (interleaved).
	Reps, QuickReps int `json:"-"`
	// SkipQuick leaves the workload out of -quick.
	SkipQuick bool `json:"-"`
	// Setup prepares e.Dir once; Before runs (untimed) before each run.
	Setup, Before func(e *env) error `json:"-"`
	// SelfTimed workloads print ns_per_op=X: that is the sample, not the
	// wall time of the whole command.
	SelfTimed bool `json:"self_timed,omitempty"`
	// Memory is the -m of sandlock-limits for this workload.
	Memory string `json:"-"`
	// Needs lists programs the workload requires.
	Needs []string `json:"-"`
}

func (w *workload) memory() string {
	if w.Memory == "" {
		return "512M"
	}
	return w.Memory
}

func (w *workload) reps(quick bool) int {
	if quick {
		return w.QuickReps
	}
	return w.Reps
}

// spawnLoop is the shell loop of n fork+execs of /bin/true.
func spawnLoop(n int) string {
	return fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", n)
}

func workloads() []*workload {
	n := func(e *env, full, quick int) int {
		if e.Quick {
			return quick
		}
		return full
	}
	return []*workload{
		{Name: "launch", Desc: "/bin/true started once (per run)", Reps: 200, QuickReps: 15,
			Argv: func(*env) []string { return []string{"/bin/true"} }},
		{Name: "spawn-loop", Desc: "a shell loop of 1000 fork+exec of /bin/true", Reps: 10, QuickReps: 2,
			Argv: func(e *env) []string { return []string{"/bin/sh", "-c", spawnLoop(n(e, 1000, 100))} }},
		{Name: "spawn-loop-x2", Desc: "two such loops in parallel in one sandbox", Reps: 10, QuickReps: 2,
			Argv: func(e *env) []string {
				l := spawnLoop(n(e, 1000, 100))
				return []string{"/bin/sh", "-c", "(" + l + ") & (" + l + "); wait"}
			}},
		{Name: "xargs", Desc: "xargs -P $(nproc) over 2000 short processes", Reps: 10, QuickReps: 2,
			Argv: func(e *env) []string {
				return []string{"/bin/sh", "-c", fmt.Sprintf("seq %d | xargs -P %d -n 1 /bin/true", n(e, 2000, 200), runtime.NumCPU())}
			}},
		{Name: "notify", Desc: "one notified syscall in a loop (mmap of 4 KiB + munmap; ns per call)", Reps: 5, QuickReps: 1,
			SelfTimed: true, Memory: "1G",
			Argv: func(e *env) []string {
				return []string{e.Tools["notifloop"], "mmap", strconv.Itoa(n(e, 100000, 5000))}
			}},
		{Name: "memory-churn", Desc: "256 KiB mmap+touch+munmap and a 64 KiB brk up and down, in a loop (ns per round)", Reps: 5, QuickReps: 1,
			SelfTimed: true, Memory: "512M",
			Argv: func(e *env) []string {
				return []string{e.Tools["notifloop"], "churn", strconv.Itoa(n(e, 20000, 1000))}
			}},
		{Name: "c-build", Desc: "make -j$(nproc) of a generated C project (200 files)", Reps: 3, QuickReps: 1,
			Needs: []string{"cc", "make"}, Memory: "2G",
			Setup: func(e *env) error { return genCProject(filepath.Join(e.Dir, "cproj"), n(e, 200, 10)) },
			Before: func(e *env) error {
				return exec.Command("make", "-s", "-C", filepath.Join(e.Dir, "cproj"), "clean").Run()
			},
			Argv: func(e *env) []string {
				// cc writes its temporaries under TMPDIR: the workload's
				// directory, the one place every sandbox lets it write.
				return []string{"/usr/bin/env", "TMPDIR=" + e.Dir, "make", "-s", "-C", filepath.Join(e.Dir, "cproj"), "-j" + strconv.Itoa(runtime.NumCPU())}
			}},
		{Name: "go-build", Desc: "go build -a of a small module with a fresh GOCACHE", Reps: 3, SkipQuick: true,
			Needs: []string{"go"}, Memory: "2G",
			Setup: func(e *env) error { return genGoModule(filepath.Join(e.Dir, "gomod")) },
			Before: func(e *env) error {
				return os.RemoveAll(filepath.Join(e.Dir, "gocache"))
			},
			Argv: func(e *env) []string {
				d := filepath.Join(e.Dir, "gomod")
				return []string{"/usr/bin/env", "GOCACHE=" + filepath.Join(e.Dir, "gocache"), "GOTMPDIR=" + e.Dir,
					"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "GOPATH=" + filepath.Join(e.Dir, "gopath"), "HOME=" + e.Dir,
					e.Tools["go"], "build", "-C", d, "-a", "-o", filepath.Join(d, "out"), "."}
			}},
	}
}

// genCProject writes n C files, a header and a Makefile into dir.
func genCProject(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var hdr, mainc strings.Builder
	hdr.WriteString("#pragma once\n#include <stdint.h>\n")
	mainc.WriteString("#include <stdio.h>\n#include \"gen.h\"\nint main(void) {\n\tuint64_t s = 0;\n")
	for i := 0; i < n; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "#include \"gen.h\"\n#include <string.h>\n\n")
		for j := 0; j < 12; j++ {
			fmt.Fprintf(&b, "static uint64_t mix%d_%d(uint64_t x) {\n\tfor (int k = 0; k < %d; k++) {\n\t\tx ^= x << 13; x ^= x >> 7; x ^= x << 17;\n\t\tx += (uint64_t)k * %dull;\n\t}\n\treturn x;\n}\n\n", i, j, 8+j, 2*j+1)
		}
		fmt.Fprintf(&b, "uint64_t unit%d(uint64_t x) {\n\tchar buf[64];\n\tmemset(buf, (int)x, sizeof buf);\n\tx += (uint64_t)buf[%d];\n", i, i%64)
		for j := 0; j < 12; j++ {
			fmt.Fprintf(&b, "\tx = mix%d_%d(x);\n", i, j)
		}
		b.WriteString("\treturn x;\n}\n")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("unit%03d.c", i)), []byte(b.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&hdr, "uint64_t unit%d(uint64_t);\n", i)
		fmt.Fprintf(&mainc, "\ts += unit%d(s + %d);\n", i, i)
	}
	mainc.WriteString("\tprintf(\"%llu\\n\", (unsigned long long)s);\n\treturn 0;\n}\n")
	mk := "SRCS := $(wildcard *.c)\nOBJS := $(SRCS:.c=.o)\nCFLAGS := -O2 -Wall\n\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n%.o: %.c gen.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n\nclean:\n\trm -f $(OBJS) prog\n"
	for name, body := range map[string]string{"gen.h": hdr.String(), "main.c": mainc.String(), "Makefile": mk} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// genGoModule writes a small module using a few standard packages.
func genGoModule(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := `package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
)

func main() {
	u, _ := url.Parse("https://example.com/a?b=c")
	words := strings.Fields("the quick brown fox")
	sort.Strings(words)
	b, _ := json.Marshal(map[string]any{"host": u.Host, "words": words})
	fmt.Fprintln(os.Stdout, string(b))
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/small\n\ngo 1.26\n"), 0o644)
}
