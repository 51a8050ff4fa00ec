package main

import (
	"fmt"
	"strings"
)

// A small getopt-style parser. sandlock does not use pflag: with its
// dependencies (net, flag, encoding/csv) it added a fifth of a millisecond
// of package initialisation and flag registration to every launch, and the
// run path's whole budget over a bare Go program is 0.6ms.
//
// Accepted forms: --name value, --name=value, -x value, -xvalue, bundled
// boolean short flags (-ih), and -- to end the flags. The first argument
// that is not a flag ends them too, so `sandlock run ls -la` runs ls -la.

type flagKind uint8

const (
	boolFlag  flagKind = iota // no value
	valueFlag                 // one value; given twice, the last wins
	listFlag                  // repeatable; every value is kept
)

type flagSpec struct {
	long  string
	short byte
	kind  flagKind
	// set receives each value ("" for a boolean).
	set func(string)
}

// usageError is a command-line error: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// parseFlags applies args to specs and returns the arguments after the
// flags and the long names of the flags given.
func parseFlags(specs []flagSpec, args []string) (rest []string, given map[string]bool, err error) {
	given = map[string]bool{}
	byLong := make(map[string]*flagSpec, len(specs))
	var byShort [128]*flagSpec
	for i := range specs {
		byLong[specs[i].long] = &specs[i]
		if specs[i].short != 0 {
			byShort[specs[i].short] = &specs[i]
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args[i+1:], given, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			f := byLong[name]
			if f == nil {
				return nil, given, &usageError{"--" + name + ": unknown flag"}
			}
			if f.kind == boolFlag {
				if hasVal {
					return nil, given, &usageError{"--" + name + ": takes no value"}
				}
				f.set("")
			} else {
				if !hasVal {
					if i+1 >= len(args) {
						return nil, given, &usageError{"--" + name + ": needs a value"}
					}
					i++
					val = args[i]
				}
				f.set(val)
			}
			given[f.long] = true
		case len(a) > 1 && a[0] == '-':
			// One or more short flags; a flag with a value takes the rest
			// of the word or the next argument.
			for j := 1; j < len(a); j++ {
				c := a[j]
				var f *flagSpec
				if c < 128 {
					f = byShort[c]
				}
				if f == nil {
					return nil, given, &usageError{fmt.Sprintf("-%c: unknown flag", c)}
				}
				given[f.long] = true
				if f.kind == boolFlag {
					f.set("")
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, given, &usageError{fmt.Sprintf("-%c: needs a value", c)}
					}
					i++
					val = args[i]
				}
				f.set(val)
				break
			}
		default:
			return args[i:], given, nil
		}
	}
	return nil, given, nil
}
