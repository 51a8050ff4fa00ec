// Command bench is sandlock's benchmark harness for fork-heavy workloads:
// each workload runs bare and under every available sandbox, interleaved
// (A B C A B C ...), and the report gives the median, min and max of each
// with its ratio to bare, the targets met or not, and the supervisor's own
// statistics.
//
//	go run ./bench [-quick] [-sandlock bin/sandlock] [-rust PATH] [-out DIR]
//	               [-profile DIR] [-only w1,w2]
//
// make bench runs it in full (about 20 minutes here), make bench-quick in
// about a minute (a smoke run: it checks the harness works and asserts no
// timing). The output directory receives results.json, chart.svg and
// report.md; the table is printed as well.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"golang.org/x/sys/unix"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type config struct {
	quick                                     bool
	sandlock, rust, bwrap, firejail, minijail string
	nsjail, out, profile, only                string
	runTimeout                                time.Duration
}

func main() {
	var cfg config
	flag.BoolVar(&cfg.quick, "quick", false, "smoke run: few repetitions, small workloads, no go-build (about a minute)")
	flag.StringVar(&cfg.sandlock, "sandlock", "bin/sandlock", "sandlock (Go) binary")
	flag.StringVar(&cfg.rust, "rust", "", "the Rust sandlock binary (default /opt/rust-sandlock/bin/sandlock if present)")
	flag.StringVar(&cfg.bwrap, "bwrap", "", "bwrap binary (default: PATH)")
	flag.StringVar(&cfg.firejail, "firejail", "", "firejail binary (default: PATH)")
	flag.StringVar(&cfg.minijail, "minijail", "", "minijail0 binary (default: PATH)")
	flag.StringVar(&cfg.nsjail, "nsjail", "", "nsjail binary (default: PATH)")
	flag.StringVar(&cfg.out, "out", "bench-results", "directory for results.json, chart.svg and report.md")
	flag.StringVar(&cfg.profile, "profile", "", "write a CPU profile of sandlock per workload into this directory")
	flag.StringVar(&cfg.only, "only", "", "comma-separated workloads to run (default: all)")
	flag.DurationVar(&cfg.runTimeout, "run-timeout", 3*time.Minute, "a run that takes longer is killed and its sandbox reported as failed")
	flag.Parse()
	if err := run(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "\nbench:", err)
		os.Exit(1)
	}
}

// result is one workload under one sandbox.
type result struct {
	Sandbox string    `json:"sandbox"`
	Command []string  `json:"command"`
	Samples []float64 `json:"samples"` // ms, or ns per operation for self-timed workloads
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Ratio   float64   `json:"ratio_to_bare,omitempty"`
	Failed  string    `json:"failed,omitempty"`
	Stats   any       `json:"supervisor_stats,omitempty"`
}

type workloadResult struct {
	Workload *workload `json:"workload"`
	Unit     string    `json:"unit"`
	Skipped  string    `json:"skipped,omitempty"`
	Results  []*result `json:"results"`
}

type report struct {
	Date      string            `json:"date"`
	Host      map[string]string `json:"host"`
	Quick     bool              `json:"quick"`
	Sandboxes []*sandbox        `json:"sandboxes"`
	Workloads []*workloadResult `json:"workloads"`
	Targets   []target          `json:"targets"`
}

func run(cfg *config) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sandlock-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)
	tools, err := buildTools(root, tmp)
	if err != nil {
		return err
	}
	if cfg.sandlock != "" && !filepath.IsAbs(cfg.sandlock) {
		if !fileExists(cfg.sandlock) {
			cfg.sandlock = filepath.Join(root, cfg.sandlock)
		}
		cfg.sandlock, _ = filepath.Abs(cfg.sandlock)
	}
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			return err
		}
		cfg.profile, _ = filepath.Abs(cfg.profile)
	}
	sbs := sandboxes(cfg, tools)
	// Every sandbox's program is read back from disk before it is timed,
	// as an installed program is after a reboot: how recently a binary
	// was written moves its start by a quarter of a millisecond here (the
	// page cache a linker or a copy just wrote starts faster than the same
	// file read back), which would make the comparison depend on when each
	// program was built or installed.
	for _, s := range sbs {
		if s.Missing == "" && s.Bin != "" {
			if err := dropPageCache(s.Bin); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v (its page cache is left as it is)\n", s.Name, err)
			}
		}
	}
	rep := &report{Date: time.Now().Format(time.RFC3339), Host: hostInfo(), Quick: cfg.quick, Sandboxes: sbs}
	for _, s := range sbs {
		if s.Missing != "" {
			fmt.Fprintf(os.Stderr, "%-22s %s\n", s.Name, s.Missing)
		}
	}
	wls := workloads()
	for i, wl := range wls {
		if cfg.only != "" && !slices.Contains(strings.Split(cfg.only, ","), wl.Name) {
			continue
		}
		wr := &workloadResult{Workload: wl, Unit: "ms"}
		if wl.SelfTimed {
			wr.Unit = "ns/op"
		}
		rep.Workloads = append(rep.Workloads, wr)
		if cfg.quick && wl.SkipQuick {
			wr.Skipped = "left out of -quick"
			continue
		}
		if missing := missingTools(wl, tools); missing != "" {
			wr.Skipped = missing
			continue
		}
		e := &env{Dir: filepath.Join(tmp, wl.Name), Tools: tools, Quick: cfg.quick, RunTimeout: cfg.runTimeout}
		if err := os.MkdirAll(e.Dir, 0o777); err != nil {
			return err
		}
		if wl.Setup != nil {
			if err := wl.Setup(e); err != nil {
				return fmt.Errorf("%s: setup: %w", wl.Name, err)
			}
		}
		if err := runWorkload(cfg, wl, e, sbs, wr, i+1, len(wls)); err != nil {
			return err
		}
	}
	fmt.Fprint(os.Stderr, "\r\033[K")
	rep.Targets = evaluate(rep)
	return writeReport(cfg, rep)
}

// runWorkload runs wl under every applicable sandbox, interleaved.
func runWorkload(cfg *config, wl *workload, e *env, sbs []*sandbox, wr *workloadResult, idx, total int) error {
	var active []*sandbox
	for _, s := range sbs {
		if s.Missing == "" && s.applies(wl) {
			active = append(active, s)
			wr.Results = append(wr.Results, &result{Sandbox: s.Name, Command: s.wrap(wl, e, wl.Argv(e))})
		}
	}
	reps := wl.reps(cfg.quick)
	// A new order every round, the same in every run of the harness: no
	// sandbox always runs right after the same other one. (Rotating one
	// order did not do that: each sandbox then always followed the same
	// predecessor, whose teardown — and the CPU state it left — it paid
	// for: sandlock with limits measured faster at launch than without,
	// because it always ran after sandlock and sandlock after the Go
	// floor.)
	rng := rand.New(rand.NewPCG(uint64(idx), 1))
	order := make([]int, len(active))
	for i := range order {
		order[i] = i
	}
	for r := 0; r < reps; r++ {
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, j := range order {
			s, res := active[j], wr.Results[j]
			if res.Failed != "" {
				continue
			}
			fmt.Fprintf(os.Stderr, "\r\033[K[%d/%d] %-14s %-22s run %d/%d", idx, total, wl.Name, s.Name, r+1, reps)
			v, err := measure(wl, e, res.Command)
			if err != nil {
				res.Failed = err.Error()
				continue
			}
			res.Samples = append(res.Samples, v)
		}
	}
	// Untimed runs of sandlock for its statistics and profiles.
	for j, s := range active {
		if !s.Ours || wr.Results[j].Failed != "" {
			continue
		}
		fmt.Fprintf(os.Stderr, "\r\033[K[%d/%d] %-14s %-22s statistics", idx, total, wl.Name, s.Name)
		statsFile := filepath.Join(e.Dir, "stats-"+s.Name+".json")
		cmd := withFlags(wr.Results[j].Command, "--stats", statsFile)
		if _, err := measure(wl, e, cmd); err == nil {
			if b, err := os.ReadFile(statsFile); err == nil {
				var st map[string]any
				if json.Unmarshal(b, &st) == nil {
					wr.Results[j].Stats = st
				}
			}
		}
		if cfg.profile != "" {
			prof := filepath.Join(cfg.profile, wl.Name+"-"+s.Name+".pprof")
			measure(wl, e, withFlags(wr.Results[j].Command, "--cpuprofile", prof))
		}
	}
	var bare float64
	for _, res := range wr.Results {
		summarize(res)
		if res.Sandbox == "bare" {
			bare = res.Median
		}
	}
	for _, res := range wr.Results {
		if bare > 0 && res.Failed == "" {
			res.Ratio = res.Median / bare
		}
	}
	return nil
}

// withFlags inserts flags after "sandlock run".
func withFlags(cmd []string, flags ...string) []string {
	out := append([]string{}, cmd[:2]...)
	out = append(out, flags...)
	return append(out, cmd[2:]...)
}

// measure runs cmd once and returns its wall time in ms, or the ns_per_op
// it printed for a self-timed workload.
func measure(wl *workload, e *env, cmd []string) (float64, error) {
	if wl.Before != nil {
		if err := wl.Before(e); err != nil {
			return 0, fmt.Errorf("before: %w", err)
		}
	}
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Dir = e.Dir
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	// A process group of its own, so that a run that hangs (the Rust
	// sandlock's go build once sat for minutes with its compiler a zombie)
	// can be killed whole, and the harness goes on.
	c.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	// A descendant outside the group (setsid) may keep the output pipes
	// open after the run has ended: Wait stops waiting for them then.
	c.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := c.Start(); err != nil {
		return 0, err
	}
	var timedOut atomic.Bool
	if e.RunTimeout > 0 {
		t := time.AfterFunc(e.RunTimeout, func() {
			timedOut.Store(true)
			unix.Kill(-c.Process.Pid, unix.SIGKILL)
		})
		defer t.Stop()
	}
	err := c.Wait()
	d := time.Since(start)
	if timedOut.Load() {
		return 0, fmt.Errorf("killed after %v (-run-timeout)", e.RunTimeout)
	}
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 300 {
			msg = msg[len(msg)-300:]
		}
		if msg == "" {
			msg = "nothing on stderr"
		}
		return 0, fmt.Errorf("%v: %s", err, msg)
	}
	if !wl.SelfTimed {
		return float64(d.Nanoseconds()) / 1e6, nil
	}
	for _, f := range strings.Fields(out.String()) {
		if v, ok := strings.CutPrefix(f, "ns_per_op="); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, errors.New("no ns_per_op in the output")
}

func summarize(r *result) {
	if len(r.Samples) == 0 {
		if r.Failed == "" {
			r.Failed = "no samples"
		}
		return
	}
	s := slices.Clone(r.Samples)
	slices.Sort(s)
	r.Min, r.Max = s[0], s[len(s)-1]
	if len(s)%2 == 1 {
		r.Median = s[len(s)/2]
	} else {
		r.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
}

func missingTools(wl *workload, tools map[string]string) string {
	for _, t := range wl.Needs {
		if _, ok := tools[t]; ok {
			continue
		}
		if _, err := exec.LookPath(t); err != nil {
			return t + " not installed"
		}
	}
	return ""
}

// dropPageCache writes back and drops the page cache of the file at path,
// so that its next use reads it back from disk.
func dropPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}

// buildTools builds the harness's helper programs into dir.
func buildTools(root, dir string) (map[string]string, error) {
	tools := map[string]string{}
	for _, name := range []string{"notifloop", "refsup", "gofloor"} {
		out := filepath.Join(dir, name)
		c := exec.Command("go", "build", "-o", out, "./bench/"+name)
		c.Dir = root
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := c.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", name, err, b)
		}
		tools[name] = out
	}
	if g, err := exec.LookPath("go"); err == nil {
		tools["go"] = g
	}
	return tools, nil
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the harness from sandlock's module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

func hostInfo() map[string]string {
	h := map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(), "arch": runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				h["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return h
}
