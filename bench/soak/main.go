// Command soak runs sandlock under mixed workloads for a while (make soak:
// ten minutes) and prints a summary: runs and failures per workload, their
// durations, sandlock's peak memory, and what was left behind (processes,
// descriptors system-wide). It exits non-zero on any failure or leak.
//
//	go run ./bench/soak [-sandlock bin/sandlock] [-duration 10m] [-parallel 2]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// workload is one kind of run and what it must give.
type workload struct {
	name string
	args []string // after "sandlock run"
	// code is the exit code sandlock must give; stderr, if set, a
	// substring its stderr must contain.
	code   int
	stderr string
}

func workloads(dir string) []workload {
	sys := []string{"-r", "/usr", "-r", "/lib", "-r", "/lib64", "-r", "/bin", "-r", "/etc", "-w", dir}
	w := func(extra ...string) []string { return append(slices.Clone(sys), extra...) }
	return []workload{
		{name: "spawn-loop", args: w("-P", "64", "-m", "512M", "--", "sh", "-c", "i=0; while [ $i -lt 300 ]; do /bin/true || exit 9; i=$((i+1)); done")},
		{name: "pipeline", args: w("-P", "16", "--", "sh", "-c", "seq 500 | xargs -P 4 -n 1 /bin/true && seq 2000 | sort -n | uniq | wc -l | grep -q 2000")},
		{name: "files", args: w("--", "sh", "-c", "for i in $(seq 50); do echo $i > "+dir+"/f$i; cat "+dir+"/f$i >/dev/null 2>&1 || true; done; rm -f "+dir+"/f*")},
		{name: "memory-ok", args: w("-m", "128M", "--", "/usr/bin/python3", "-c", "b = bytearray(48 << 20); b[::4096] = b'\\x01' * len(b[::4096])")},
		{name: "memory-kill", args: w("-m", "64M", "--", "/usr/bin/python3", "-c", "b = bytearray(300 << 20); b[::4096] = b'\\x01' * len(b[::4096])"),
			code: 128 + int(syscall.SIGKILL), stderr: "memory limit 64M exceeded"},
		{name: "fork-bomb", args: w("-P", "20", "-t", "3", "--", "sh", "-c", "f() { f | f; }; f"), code: -1},
		{name: "timeout", args: w("-t", "1", "--", "sleep", "30"), code: 124},
		{name: "denied", args: w("--", "sh", "-c", "cat /root/.bashrc /proc/1/environ >/dev/null 2>&1 && exit 1; exit 0")},
		{name: "exit-code", args: w("--", "sh", "-c", "exit 7"), code: 7},
	}
}

type stats struct {
	runs, failures int
	durations      []time.Duration
	lastFailure    string
}

func main() {
	bin := flag.String("sandlock", "bin/sandlock", "the sandlock binary")
	duration := flag.Duration("duration", 10*time.Minute, "how long to run")
	parallel := flag.Int("parallel", runtime.NumCPU(), "runs at once")
	flag.Parse()
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "sandlock-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	defer os.RemoveAll(dir)
	wls := workloads(dir)
	procsBefore, fdsBefore := liveProcesses(), openFiles()
	var mu sync.Mutex
	per := map[string]*stats{}
	for _, w := range wls {
		per[w.name] = &stats{}
	}
	var peakRSS int64
	total, shown := 0, time.Now()
	deadline := time.Now().Add(*duration)
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < *parallel; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; time.Now().Before(deadline); i++ {
				w := wls[i%len(wls)]
				d, rss, err := runOne(*bin, dir, w, fmt.Sprintf("%d-%d", g, i))
				mu.Lock()
				s := per[w.name]
				s.runs++
				s.durations = append(s.durations, d)
				if err != nil {
					s.failures++
					s.lastFailure = err.Error()
				}
				peakRSS = max(peakRSS, rss)
				total++
				if time.Since(shown) > time.Second {
					shown = time.Now()
					fmt.Fprintf(os.Stderr, "\r\033[K%s elapsed, %d runs", time.Since(start).Round(time.Second), total)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Fprint(os.Stderr, "\r\033[K")
	// What is left: give the kernel a moment to reap.
	time.Sleep(500 * time.Millisecond)
	procsAfter, fdsAfter := liveProcesses(), openFiles()

	fmt.Printf("sandlock soak: %s, %d at once, %s\n\n", time.Since(start).Round(time.Second), *parallel, *bin)
	fmt.Printf("| workload | runs | failures | median | max |\n|---|---:|---:|---:|---:|\n")
	runs, failures := 0, 0
	for _, w := range wls {
		s := per[w.name]
		runs += s.runs
		failures += s.failures
		slices.Sort(s.durations)
		med, mx := time.Duration(0), time.Duration(0)
		if n := len(s.durations); n > 0 {
			med, mx = s.durations[n/2], s.durations[n-1]
		}
		fmt.Printf("| %s | %d | %d | %s | %s |\n", w.name, s.runs, s.failures, med.Round(time.Millisecond), mx.Round(time.Millisecond))
	}
	fmt.Printf("\nruns %d, failures %d\n", runs, failures)
	fmt.Printf("sandlock's peak RSS (largest of all runs): %.1f MiB\n", float64(peakRSS)/(1<<20))
	fmt.Printf("processes on the machine: %d before, %d after\n", procsBefore, procsAfter)
	fmt.Printf("open files on the machine: %d before, %d after\n", fdsBefore, fdsAfter)
	for _, w := range wls {
		if s := per[w.name]; s.lastFailure != "" {
			fmt.Printf("last failure of %s: %s\n", w.name, s.lastFailure)
		}
	}
	leaked := procsAfter > procsBefore+2
	if leaked {
		fmt.Println("LEAK: processes left behind")
	}
	if failures > 0 || leaked {
		os.Exit(1)
	}
}

// runOne runs w once with --stats and checks its outcome.
func runOne(bin, dir string, w workload, tag string) (time.Duration, int64, error) {
	statsFile := filepath.Join(dir, "stats-"+tag+".json")
	defer os.Remove(statsFile)
	args := append([]string{"run", "--stats", statsFile}, w.args...)
	c := exec.Command(bin, args...)
	var errb bytes.Buffer
	c.Stderr = &errb
	t0 := time.Now()
	err := c.Run()
	d := time.Since(t0)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return d, 0, err
	}
	var rss int64
	if b, err := os.ReadFile(statsFile); err == nil {
		var r struct {
			PeakRSS        int64 `json:"supervisor_peak_rss_bytes"`
			ProcessesInUse int64 `json:"processes_in_use"`
			MemoryInUse    int64 `json:"memory_in_use_bytes"`
		}
		if json.Unmarshal(b, &r) == nil {
			rss = r.PeakRSS
			if r.ProcessesInUse != 0 || r.MemoryInUse != 0 {
				return d, rss, fmt.Errorf("counters at exit: %d processes, %d bytes", r.ProcessesInUse, r.MemoryInUse)
			}
		}
	}
	switch {
	case w.code >= 0 && code != w.code:
		return d, rss, fmt.Errorf("exit %d, want %d; stderr %q", code, w.code, tail(errb.String()))
	case w.code < 0 && code == 0:
		return d, rss, fmt.Errorf("exit 0, want a failure; stderr %q", tail(errb.String()))
	case w.stderr != "" && !strings.Contains(errb.String(), w.stderr):
		return d, rss, fmt.Errorf("stderr %q lacks %q", tail(errb.String()), w.stderr)
	}
	return d, rss, nil
}

func tail(s string) string {
	if len(s) > 200 {
		return s[len(s)-200:]
	}
	return s
}

// liveProcesses counts the machine's processes that are not zombies.
func liveProcesses() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			continue
		}
		n++
	}
	return n
}

// openFiles is the machine's count of allocated file handles.
func openFiles() int {
	b, _ := os.ReadFile("/proc/sys/fs/file-nr")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
