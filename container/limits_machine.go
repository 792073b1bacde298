package container

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CheckMachine checks the limits against this machine: a CPU limit above
// its CPU count (berth run --cpus 5 on two CPUs) is a mistake, refused
// rather than silently meaning "no limit"; so is a cpuset naming a CPU it
// does not have (--cpuset-cpus 5 on two CPUs), which the kernel would
// refuse at the start with a bare "invalid argument". The machine's CPUs
// are those berth may run on, as runtime.NumCPU counts them.
func (l Limits) CheckMachine() error {
	return l.checkCPUs(runtime.NumCPU(), machineCPUs())
}

// checkCPUs is CheckMachine on a machine of n CPUs, have (nil: unknown,
// the cpuset then unchecked).
func (l Limits) checkCPUs(n int, have []int) error {
	var errs []error
	if l.CPUs != nil && *l.CPUs > float64(n) {
		errs = append(errs, &FieldError{Key: "limits.cpus", Index: -1,
			Msg: fmt.Sprintf("%v: this machine has %d CPUs", *l.CPUs, n)})
	}
	if l.CPUSet == "" || have == nil {
		return errors.Join(errs...)
	}
	cpus, err := ParseCPUSet(l.CPUSet)
	if err != nil {
		return errors.Join(errs...) // Validate says so
	}
	on := make(map[int]bool, len(have))
	for _, c := range have {
		on[c] = true
	}
	for _, c := range cpus {
		if !on[c] {
			errs = append(errs, &FieldError{Key: "limits.cpuset", Index: -1,
				Msg: fmt.Sprintf("%s: CPU %d: this machine has %d CPUs (%s)", Quote(l.CPUSet), c, len(have), formatCPUs(have))})
			break
		}
	}
	return errors.Join(errs...)
}

// machineCPUs are the CPUs berth may run on, in order; nil when the
// kernel does not say.
func machineCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for c := range MaxCPUs {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// formatCPUs writes CPUs in order as a CPU list: "0-3,6".
func formatCPUs(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}
