package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// target is one performance goal, evaluated on the run's medians.
type target struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Goal   string `json:"goal"`
	Status string `json:"status"` // "met", "not met", or "n/a (why)"
	// Floor is the same measure for refsup-limits, the smallest supervisor
	// answering sandlock -m -P's filter ("" where it does not apply).
	Floor string `json:"floor,omitempty"`
}

func (r *report) median(wl, sb string) (float64, bool) {
	for _, w := range r.Workloads {
		if w.Workload.Name != wl {
			continue
		}
		for _, res := range w.Results {
			if res.Sandbox == sb && res.Failed == "" && res.Median > 0 {
				return res.Median, true
			}
		}
	}
	return 0, false
}

func (r *report) stat(wl, sb, key string) (float64, bool) {
	for _, w := range r.Workloads {
		if w.Workload.Name != wl {
			continue
		}
		for _, res := range w.Results {
			if res.Sandbox == sb {
				if m, ok := res.Stats.(map[string]any); ok {
					v, ok := m[key].(float64)
					return v, ok
				}
			}
		}
	}
	return 0, false
}

// evaluate checks the targets of the issues against the medians.
func evaluate(r *report) []target {
	var out []target
	na := func(name, goal, why string) {
		out = append(out, target{Name: name, Value: "-", Goal: goal, Status: "n/a (" + why + ")"})
	}
	check := func(name, goal string, v float64, format string, ok bool) {
		st := "not met"
		if ok {
			st = "met"
		}
		out = append(out, target{Name: name, Value: fmt.Sprintf(format, v), Goal: goal, Status: st})
	}
	ratio := func(name, wl, a, b string, limit float64) {
		goal := fmt.Sprintf("<= %.2fx", limit)
		x, ok1 := r.median(wl, a)
		y, ok2 := r.median(wl, b)
		if !ok1 || !ok2 {
			na(name, goal, "no data for "+a+" or "+b)
			return
		}
		check(name, goal, x/y, "%.2fx", x/y <= limit)
	}
	if x, ok := r.median("launch", "sandlock"); ok {
		if f, ok := r.median("launch", "go-floor"); ok {
			check("launch: sandlock over the Go floor", "<= +0.60 ms", x-f, "%+.2f ms", x-f <= 0.6)
		}
	} else {
		na("launch: sandlock over the Go floor", "<= +0.60 ms", "no data")
	}
	ratio("launch: sandlock / bwrap-isolated", "launch", "sandlock", "bwrap-isolated", 0.75)
	ratio("launch: sandlock / Rust sandlock", "launch", "sandlock", "sandlock-rust", 0.5)
	// floor notes refsup-limits's value beside the target just added.
	floor := func(v float64, ok bool, format string) {
		if ok && len(out) > 0 {
			out[len(out)-1].Floor = fmt.Sprintf(format, v)
		}
	}
	floorRatio := func(wl string) {
		x, ok1 := r.median(wl, "refsup-limits")
		y, ok2 := r.median(wl, "bare")
		floor(x/y, ok1 && ok2, "%.2fx")
	}
	ratio("spawn loop, limits on: sandlock / bare", "spawn-loop", "sandlock-limits", "bare", 1.10)
	floorRatio("spawn-loop")
	if x, ok := r.median("spawn-loop", "sandlock-limits"); ok {
		if y, ok := r.median("spawn-loop", "sandlock-rust-limits"); ok {
			check("spawn loop, limits on: sandlock / Rust sandlock", "< 1.00x", x/y, "%.2fx", x < y)
		} else {
			na("spawn loop, limits on: sandlock / Rust sandlock", "< 1.00x", "Rust sandlock failed or missing")
		}
	}
	speedup := func(sb string) (float64, bool) {
		s, ok1 := r.median("spawn-loop", sb)
		p, ok2 := r.median("spawn-loop-x2", sb)
		return 2 * s / p, ok1 && ok2
	}
	if sb, ok1 := speedup("sandlock-limits"); ok1 {
		if bb, ok2 := speedup("bare"); ok2 {
			check(fmt.Sprintf("two loops in parallel: speed-up %.2f vs bare's %.2f", sb, bb), ">= 0.90x bare's", sb/bb, "%.2fx", sb/bb >= 0.9)
			fb, ok := speedup("refsup-limits")
			floor(fb/bb, ok, "%.2fx")
		}
	} else {
		na("two loops in parallel: speed-up vs bare's", ">= 0.90x bare's", "no data")
	}
	ratio("parallel spawns (xargs): sandlock / bare", "xargs", "sandlock", "bare", 1.15)
	ratio("parallel spawns (xargs), limits on: sandlock / bare", "xargs", "sandlock-limits", "bare", 1.15)
	floorRatio("xargs")
	ratio("notified syscall: sandlock / reference supervisor", "notify", "sandlock-limits", "refsup", 1.3)
	ratio("C build: sandlock / bare", "c-build", "sandlock", "bare", 1.05)
	ratio("Go build: sandlock / bare", "go-build", "sandlock", "bare", 1.05)
	if v, ok := r.stat("spawn-loop", "sandlock-limits", "supervisor_peak_rss_bytes"); ok {
		check("supervisor peak RSS in the spawn loop", "< 20 MiB", v/(1<<20), "%.1f MiB", v < 20<<20)
	} else {
		na("supervisor peak RSS in the spawn loop", "< 20 MiB", "no statistics")
	}
	return out
}

func writeReport(cfg *config, r *report) error {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	var md strings.Builder
	writeTable(&md, r)
	fmt.Print(md.String())
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "chart.svg"), []byte(chart(r)), 0o644); err != nil {
		return err
	}
	var full strings.Builder
	full.WriteString(md.String())
	full.WriteString("\n## Command lines\n\n")
	for _, w := range r.Workloads {
		for _, res := range w.Results {
			fmt.Fprintf(&full, "- %s / %s: `%s`\n", w.Workload.Name, res.Sandbox, strings.Join(res.Command, " "))
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "report.md"), []byte(full.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s/{results.json,chart.svg,report.md}\n", cfg.out)
	return nil
}

// writeTable writes the results as Markdown tables (also the terminal
// output).
func writeTable(w io.Writer, r *report) {
	fmt.Fprintf(w, "# sandlock benchmark, %s\n\n", r.Date)
	fmt.Fprintf(w, "Host: %s, %s CPUs, kernel %s, %s.", r.Host["cpu"], r.Host["cpus"], r.Host["kernel"], r.Host["go"])
	if r.Quick {
		fmt.Fprint(w, " Quick run: few repetitions, small workloads; the figures are not meaningful.")
	}
	fmt.Fprint(w, "\n\n")
	for _, s := range r.Sandboxes {
		if s.Missing != "" {
			fmt.Fprintf(w, "- %s: %s\n", s.Name, s.Missing)
		}
	}
	for _, wr := range r.Workloads {
		fmt.Fprintf(w, "\n## %s: %s\n\n", wr.Workload.Name, wr.Workload.Desc)
		if wr.Skipped != "" {
			fmt.Fprintf(w, "Skipped: %s.\n", wr.Skipped)
			continue
		}
		fmt.Fprintf(w, "| sandbox | median %s | min | max | runs | ratio to bare |\n|---|---:|---:|---:|---:|---:|\n", wr.Unit)
		for _, res := range wr.Results {
			if res.Failed != "" {
				fmt.Fprintf(w, "| %s | failed: %s | | | | |\n", res.Sandbox, oneLine(res.Failed))
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %.2fx |\n", res.Sandbox, num(res.Median), num(res.Min), num(res.Max), len(res.Samples), res.Ratio)
		}
		for _, res := range wr.Results {
			if m, ok := res.Stats.(map[string]any); ok {
				fmt.Fprintf(w, "\n%s supervisor: %v notifications, handler p50 %v ns, p99 %v ns, max %v ns; %v processes; peak ledger %s; peak RSS %s\n",
					res.Sandbox, m["total"], m["latency_p50_ns"], m["latency_p99_ns"], m["latency_max_ns"], m["processes_started"],
					mib(m["peak_memory_bytes"]), mib(m["supervisor_peak_rss_bytes"]))
			}
		}
	}
	fmt.Fprint(w, "\n## Targets\n\nThe floor: the same measure for refsup-limits, the smallest supervisor (one thread answering CONTINUE) under sandlock -m -P's own filter.\n\n")
	fmt.Fprint(w, "| target | value | goal | status | floor |\n|---|---:|---:|---|---:|\n")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.Name, t.Value, t.Goal, t.Status, t.Floor)
	}
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func mib(v any) string {
	f, ok := v.(float64)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", f/(1<<20))
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return strings.ReplaceAll(s, "|", "/")
}

// chart draws the ratio to bare of every workload and sandbox as grouped
// horizontal bars on a logarithmic axis (SVG).
func chart(r *report) string {
	type bar struct {
		label string
		ratio float64
	}
	type group struct {
		name string
		bars []bar
	}
	var groups []group
	for _, wr := range r.Workloads {
		g := group{name: wr.Workload.Name}
		for _, res := range wr.Results {
			if res.Sandbox != "bare" && res.Failed == "" && res.Ratio > 0 {
				g.bars = append(g.bars, bar{res.Sandbox, res.Ratio})
			}
		}
		if len(g.bars) > 0 {
			groups = append(groups, g)
		}
	}
	const left, width, barH, gap, top = 200.0, 520.0, 14.0, 18.0, 40.0
	lo, hi := 0.5, 64.0
	x := func(v float64) float64 {
		v = math.Min(math.Max(v, lo), hi)
		return left + width*math.Log2(v/lo)/math.Log2(hi/lo)
	}
	colors := map[string]string{}
	palette := []string{"#1b9e77", "#66c2a5", "#d95f02", "#fc8d62", "#7570b3", "#e7298a", "#a6761d", "#e6ab02", "#666666", "#1f78b4", "#b2df8a"}
	for i, s := range r.Sandboxes {
		colors[s.Name] = palette[i%len(palette)]
	}
	var b strings.Builder
	y := top
	var body strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&body, `<text x="8" y="%.0f" font-weight="bold">%s</text>`+"\n", y+10, html.EscapeString(g.name))
		y += 16
		for _, br := range g.bars {
			fmt.Fprintf(&body, `<text x="%.0f" y="%.0f" text-anchor="end" font-size="11">%s</text>`+"\n", left-6, y+11, html.EscapeString(br.label))
			fmt.Fprintf(&body, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", left, y, math.Max(x(br.ratio)-left, 1), barH-2, colors[br.label])
			fmt.Fprintf(&body, `<text x="%.1f" y="%.0f" font-size="11">%.2fx</text>`+"\n", x(br.ratio)+4, y+11, br.ratio)
			y += barH
		}
		y += gap
	}
	h := y + 30
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", left+width+80, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="8" y="20" font-size="14">Time relative to bare (log scale, lower is better), %s</text>`+"\n", html.EscapeString(r.Date))
	for v := lo; v <= hi; v *= 2 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/>`+"\n", x(v), top, x(v), y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" font-size="10">%gx</text>`+"\n", x(v), y+14, v)
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#000"/>`+"\n", x(1), top, x(1), y)
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}
