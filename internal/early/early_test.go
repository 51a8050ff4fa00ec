package early

import "testing"

func TestFits(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"-r", "/", "--", "/bin/true"}, true},
		{[]string{"-m", "512M", "-P", "64", "--", "sh", "-c", "x"}, true},
		{[]string{"--no-supervisor", "-r", "/", "--", "true"}, false},
		{[]string{"-i", "--", "sh"}, false},
		{[]string{"--interactive", "--", "sh"}, false},
		{[]string{"--help"}, false},
		{[]string{"-h"}, false},
		// After "--" the arguments are the command's.
		{[]string{"-r", "/", "--", "sh", "-i", "--no-supervisor"}, true},
		{nil, true}, // run reports the missing command; the child is ended
	} {
		if got := Fits(tc.args); got != tc.want {
			t.Errorf("Fits(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
