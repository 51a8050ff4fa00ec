package main

import (
	"os"
	"os/exec"
	"strings"
)

// sandbox is one way of running a workload: bare, sandlock with or without
// limits, or a comparator.
type sandbox struct {
	Name string `json:"name"`
	// Bin is the program that wraps the workload; empty for bare.
	Bin string `json:"bin,omitempty"`
	// Missing says why the sandbox is not available ("" when it is).
	Missing string `json:"missing,omitempty"`
	// Ours marks sandlock (Go): it takes --stats and --cpuprofile.
	Ours bool `json:"-"`
	// Only restricts the sandbox to these workloads (nil: all).
	Only []string `json:"-"`
	// wrap returns the full command line for argv.
	wrap func(wl *workload, env *env, argv []string) []string
}

func (s *sandbox) applies(wl *workload) bool {
	if len(s.Only) == 0 {
		return true
	}
	for _, n := range s.Only {
		if n == wl.Name {
			return true
		}
	}
	return false
}

// find resolves a comparator: an explicit path, or the name on PATH.
func find(path, name string) (string, string) {
	if path != "" {
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			return "", "not installed (" + path + " not found)"
		}
		return path, ""
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", "not installed (" + name + " not on PATH)"
	}
	return p, ""
}

// sandboxes returns every sandbox the harness knows, available or not,
// in the order of the report. Each gets an equivalent policy: the whole
// file system readable, the workload's directory writable.
func sandboxes(cfg *config, tools map[string]string) []*sandbox {
	var out []*sandbox
	add := func(s *sandbox) { out = append(out, s) }
	add(&sandbox{Name: "bare", wrap: func(_ *workload, _ *env, argv []string) []string { return argv }})
	add(&sandbox{Name: "go-floor", Bin: tools["gofloor"], Only: []string{"launch"},
		wrap: func(_ *workload, _ *env, argv []string) []string { return append([]string{tools["gofloor"]}, argv...) }})
	add(&sandbox{Name: "refsup", Bin: tools["refsup"], Only: []string{"notify"},
		wrap: func(_ *workload, _ *env, argv []string) []string { return append([]string{tools["refsup"]}, argv...) }})
	// The floor of the fork-heavy workloads with limits: sandlock -m -P's
	// own filter, every notification answered CONTINUE by refsup.
	add(&sandbox{Name: "refsup-limits", Bin: tools["refsup"], Only: []string{"spawn-loop", "spawn-loop-x2", "xargs"},
		wrap: func(_ *workload, _ *env, argv []string) []string {
			return append([]string{tools["refsup"], "-notify", "limits"}, argv...)
		}})

	ours := func(name, bin string, limits bool, missing string) *sandbox {
		return &sandbox{Name: name, Bin: bin, Missing: missing, Ours: strings.HasPrefix(name, "sandlock") && !strings.Contains(name, "rust"),
			wrap: func(wl *workload, env *env, argv []string) []string {
				cmd := []string{bin, "run", "-r", "/", "-w", env.Dir}
				if limits {
					cmd = append(cmd, "-m", wl.memory(), "-P", "64")
				}
				return append(append(cmd, "--"), argv...)
			}}
	}
	sl, miss := find(cfg.sandlock, "sandlock")
	add(ours("sandlock", sl, false, miss))
	add(ours("sandlock-limits", sl, true, miss))

	bw, miss := find(cfg.bwrap, "bwrap")
	// /dev as a fresh devtmpfs (--dev) where a workload needs /dev/null
	// (go build does); not for launch, where the issue gives bwrap's
	// exact command line.
	dev := func(wl *workload) []string {
		if wl.Name == "launch" {
			return nil
		}
		return []string{"--dev", "/dev"}
	}
	add(&sandbox{Name: "bwrap", Bin: bw, Missing: miss, wrap: func(wl *workload, env *env, argv []string) []string {
		cmd := append(append([]string{bw, "--ro-bind", "/", "/"}, dev(wl)...), "--bind", env.Dir, env.Dir, "--")
		return append(cmd, argv...)
	}})
	add(&sandbox{Name: "bwrap-isolated", Bin: bw, Missing: miss, wrap: func(wl *workload, env *env, argv []string) []string {
		cmd := append(append([]string{bw, "--ro-bind", "/", "/"}, dev(wl)...), "--bind", env.Dir, env.Dir, "--unshare-all", "--die-with-parent", "--")
		return append(cmd, argv...)
	}})
	fj, miss := find(cfg.firejail, "firejail")
	add(&sandbox{Name: "firejail", Bin: fj, Missing: miss, wrap: func(_ *workload, env *env, argv []string) []string {
		return append([]string{fj, "--quiet", "--noprofile", "--read-only=/", "--read-write=" + env.Dir, "--"}, argv...)
	}})
	rs, miss := cfg.rust, ""
	switch {
	case rs == "" && fileExists(defaultRust):
		rs = defaultRust
	case rs == "":
		miss = "not installed (cargo install sandlock-cli --version 0.7.0 --root DIR, then -rust DIR/bin/sandlock)"
	case !fileExists(rs):
		rs, miss = "", "not installed ("+cfg.rust+" not found)"
	}
	add(ours("sandlock-rust", rs, false, miss))
	add(ours("sandlock-rust-limits", rs, true, miss))
	mj, miss := find(cfg.minijail, "minijail0")
	add(&sandbox{Name: "minijail", Bin: mj, Missing: miss, wrap: func(_ *workload, _ *env, argv []string) []string {
		return append([]string{mj, "-n", "--"}, argv...)
	}})
	nj, miss := find(cfg.nsjail, "nsjail")
	add(&sandbox{Name: "nsjail", Bin: nj, Missing: miss, wrap: func(_ *workload, env *env, argv []string) []string {
		return append([]string{nj, "-Mo", "--quiet", "-R", "/", "-B", env.Dir, "--"}, argv...)
	}})
	for _, s := range out {
		if s.Missing == "" && s.Name != "bare" && s.Bin == "" {
			s.Missing = "not built"
		}
	}
	return out
}

// defaultRust is where DEVELOPERS.md's install puts the Rust sandlock.
const defaultRust = "/opt/rust-sandlock/bin/sandlock"

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
