package container

import (
	"fmt"
	"strings"
	"testing"
)

// TestCheckMachineCPUSet: a cpuset naming a CPU the machine does not
// have is refused as cpus above its count is, naming the CPU and the
// machine's CPUs, at the machine's last CPU and just past it; not left
// to the kernel's EINVAL at the start.
func TestCheckMachineCPUSet(t *testing.T) {
	for _, tc := range []struct {
		cpuset string
		have   []int
		err    string // "" means accepted
	}{
		{"0", []int{0, 1}, ""},
		{"1", []int{0, 1}, ""},
		{"0-1", []int{0, 1}, ""},
		{"1,0", []int{0, 1}, ""},
		{"2", []int{0, 1}, `limits.cpuset: "2": CPU 2: this machine has 2 CPUs (0-1)`},
		{"5", []int{0, 1}, `limits.cpuset: "5": CPU 5: this machine has 2 CPUs (0-1)`},
		{"0-2", []int{0, 1}, `limits.cpuset: "0-2": CPU 2: this machine has 2 CPUs (0-1)`},
		{"2,3", []int{0, 1, 3}, `limits.cpuset: "2,3": CPU 2: this machine has 3 CPUs (0-1,3)`},
		{"3", []int{0, 1, 3}, ""},
		{"4", []int{0, 1, 3}, `"4": CPU 4: this machine has 3 CPUs (0-1,3)`},
		{"0-8191", []int{0}, `"0-8191": CPU 1: this machine has 1 CPUs (0)`},
		{"9", nil, ""},        // the machine's CPUs unknown
		{"a-b", []int{0}, ""}, // Validate's to say
	} {
		err := Limits{CPUSet: tc.cpuset}.checkCPUs(len(tc.have), tc.have)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("cpuset %q on %v: %v", tc.cpuset, tc.have, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("cpuset %q on %v: error %v, want %q", tc.cpuset, tc.have, err, tc.err)
		}
	}

	// This machine, at its last CPU and just past it.
	have := machineCPUs()
	if len(have) == 0 {
		t.Fatal("no CPUs from sched_getaffinity")
	}
	last := have[len(have)-1]
	if err := (Limits{CPUSet: fmt.Sprint(last)}).CheckMachine(); err != nil {
		t.Errorf("cpuset of this machine's last CPU %d: %v", last, err)
	}
	err := Limits{CPUSet: fmt.Sprint(last + 1)}.CheckMachine()
	if want := fmt.Sprintf("limits.cpuset: \"%d\": CPU %d: this machine has %d CPUs (%s)", last+1, last+1, len(have), formatCPUs(have)); err == nil || err.Error() != want {
		t.Errorf("cpuset past this machine's last CPU: error %v, want %q", err, want)
	}
	if fe := FieldErrors(err); len(fe) != 1 || fe[0].Key != "limits.cpuset" {
		t.Errorf("cpuset past this machine's last CPU: field errors %+v", fe)
	}

	// Both keys at once: each reported.
	cpus := float64(len(have) + 1)
	err = Limits{CPUs: &cpus, CPUSet: fmt.Sprint(last + 1)}.CheckMachine()
	if fe := FieldErrors(err); len(fe) != 2 || fe[0].Key != "limits.cpus" || fe[1].Key != "limits.cpuset" {
		t.Errorf("cpus and cpuset past the machine: %v", err)
	}
}

// TestFormatCPUs writes CPU lists as the kernel does.
func TestFormatCPUs(t *testing.T) {
	for _, tc := range []struct {
		cpus []int
		want string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1}, "0-1"}, {[]int{0, 1, 2, 5, 7, 8}, "0-2,5,7-8"}, {[]int{3}, "3"}} {
		if got := formatCPUs(tc.cpus); got != tc.want {
			t.Errorf("formatCPUs(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
}
