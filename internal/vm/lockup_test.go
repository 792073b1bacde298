package vm

import "testing"

func TestFindLockup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		console string
		want    *LockupError
	}{
		{"none", "[    2.2] berth: boot done\n", nil},
		{"short one, under TCG", "[   30.1] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:0:31]\n", nil},
		{"just under the minimum", "watchdog: BUG: soft lockup - CPU#0 stuck for 59s! [init:111]\n", nil},
		{"at the minimum", "watchdog: BUG: soft lockup - CPU#0 stuck for 60s! [init:111]\n",
			&LockupError{CPU: 0, Seconds: 60, Task: "init:111"}},
		{"the first long one", "[   48.2] watchdog: BUG: soft lockup - CPU#0 stuck for 44s! [init:111]\r\n" +
			"[   76.1] watchdog: BUG: soft lockup - CPU#0 stuck for 70s! [init:111]\r\n" +
			"[  104.1] watchdog: BUG: soft lockup - CPU#2 stuck for 97s! [sh:120]\r\n",
			&LockupError{CPU: 0, Seconds: 70, Task: "init:111"}},
		{"a number too large", "soft lockup - CPU#0 stuck for 99999999999999999999s! [init:1]\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := findLockup(tc.console)
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("findLockup = %v, want %v", got, tc.want)
			}
			if got == nil {
				return
			}
			if got.CPU != tc.want.CPU || got.Seconds != tc.want.Seconds || got.Task != tc.want.Task {
				t.Fatalf("findLockup = %+v, want %+v", got, tc.want)
			}
			if got.Line == "" || got.Error() == "" {
				t.Fatalf("findLockup = %+v: no line or message", got)
			}
		})
	}
}
