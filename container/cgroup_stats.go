package container

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Stats is a container's resource use as its cgroup reports it: cgroup v2's
// cpu.stat, memory.*, pids.* and io.stat, or their v1 counterparts. A
// figure the kernel does not report — its controller is not mounted, or
// the kernel predates the file (memory.peak came in Linux 5.19) — is nil:
// berth says "n/a" rather than guess.
type Stats struct {
	// CPUUsec is the CPU time the container's processes have used, in
	// microseconds (cpu.stat usage_usec; v1 cpuacct.usage).
	CPUUsec *int64 `json:"cpu_usage_usec,omitempty"`
	// Memory is its memory use in bytes, page cache included
	// (memory.current; v1 memory.usage_in_bytes).
	Memory *int64 `json:"memory_bytes,omitempty"`
	// MemoryPeak is the most Memory has been (memory.peak; v1
	// memory.max_usage_in_bytes).
	MemoryPeak *int64 `json:"memory_peak_bytes,omitempty"`
	// MemoryLimit is its memory limit in bytes; nil when it has none
	// (memory.max; v1 memory.limit_in_bytes).
	MemoryLimit *int64 `json:"memory_limit_bytes,omitempty"`
	// OOMKills counts the processes the kernel killed for the limit
	// (memory.events oom_kill; v1 memory.oom_control oom_kill).
	OOMKills *int64 `json:"oom_kills,omitempty"`
	// Pids counts its processes and threads; PidsLimit is nil when it has
	// no limit (pids.current, pids.max).
	Pids      *int64 `json:"pids,omitempty"`
	PidsLimit *int64 `json:"pids_limit,omitempty"`
	// IORead and IOWrite are the bytes it read from and wrote to block
	// devices, all devices together (io.stat rbytes and wbytes; v1
	// blkio.throttle.io_service_bytes_recursive Read and Write).
	IORead  *int64 `json:"io_read_bytes,omitempty"`
	IOWrite *int64 `json:"io_write_bytes,omitempty"`
}

// Stats reads the container's resource use from its cgroup. A file that
// cannot be read or parsed leaves its figures nil; the error names each
// such file and what was wrong.
func (c *Container) Stats() (Stats, error) {
	var r statReader
	var s Stats
	if c.cgroup.layout.Version == 2 {
		s = r.v2Stats(c.cgroup.dirs[0])
	} else {
		s = r.v1Stats(c.cgroup.byController)
	}
	return s, errors.Join(r.errs...)
}

// maxStatFile bounds what berth reads of one cgroup file. The kernel
// writes these files, but a host with thousands of block devices could
// still make io.stat long: past this, the figure is an error, not a
// truncated sum.
const maxStatFile = 256 << 10

// statReader reads cgroup files, collecting the errors.
type statReader struct {
	errs []error
}

// read returns the contents of the cgroup file at path, nil when the
// kernel does not have it. It opens without following symlinks (cgroupfs
// has none) and reads at most maxStatFile bytes.
func (r *statReader) read(path string) []byte {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.errs = append(r.errs, err)
		return nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStatFile+1))
	switch {
	case err != nil:
		r.errs = append(r.errs, fmt.Errorf("read %s: %w", path, err))
		return nil
	case len(data) > maxStatFile:
		r.errs = append(r.errs, fmt.Errorf("read %s: longer than %d bytes", path, maxStatFile))
		return nil
	}
	return data
}

// figure reads the file at path and parses it: nil when the file is not
// there, parse finds no figure (a limit of "max"), or on an error.
func (r *statReader) figure(path string, parse func([]byte) (int64, bool, error)) *int64 {
	data := r.read(path)
	if data == nil {
		return nil
	}
	v, ok, err := parse(data)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", path, err))
		return nil
	}
	if !ok {
		return nil
	}
	return &v
}

// io reads a file of per-device byte counts with parse into s.
func (r *statReader) io(s *Stats, path string, parse func([]byte) (int64, int64, error)) {
	data := r.read(path)
	if data == nil {
		return
	}
	read, write, err := parse(data)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", path, err))
		return
	}
	s.IORead, s.IOWrite = &read, &write
}

// oomKills returns how many processes the kernel OOM-killed in the
// cgroup, 0 when it cannot tell.
func (cg *cgroup) oomKills() int64 {
	var r statReader
	var v *int64
	if cg.layout.Version == 2 {
		v = r.figure(filepath.Join(cg.dirs[0], "memory.events"), keyed("oom_kill"))
	} else if dir, ok := cg.byController["memory"]; ok {
		v = r.figure(filepath.Join(dir, "memory.oom_control"), keyed("oom_kill"))
	}
	if v == nil {
		return 0
	}
	return *v
}

// The parsers below take a whole cgroup file. They accept exactly the
// kernel's formats, and name the line and what was wrong otherwise.

// parseValue parses a file holding one non-negative number ("4096\n").
func parseValue(data []byte) (int64, bool, error) {
	line, ok := bytes.CutSuffix(data, []byte("\n"))
	if !ok || bytes.IndexByte(line, '\n') >= 0 {
		return 0, false, fmt.Errorf("want one line, got %s", quote(data))
	}
	n, err := parseCount(string(line))
	return n, err == nil, err
}

// parseLimit parses a limit file: a number, or "max" for none.
func parseLimit(data []byte) (int64, bool, error) {
	if string(data) == "max\n" {
		return 0, false, nil
	}
	return parseValue(data)
}

// keyed returns a parser of a flat-keyed file ("oom_kill 3\n" lines, as
// memory.events, memory.oom_control and cpu.stat) for key's value. A file
// without key has no figure: older kernels lack some keys.
func keyed(key string) func([]byte) (int64, bool, error) {
	return func(data []byte) (int64, bool, error) {
		var v int64
		found := false
		for i, line := range lines(data) {
			f := strings.Fields(line)
			if len(f) != 2 || f[0]+" "+f[1] != line {
				return 0, false, fmt.Errorf("line %d: want \"KEY VALUE\", got %s", i+1, quote([]byte(line)))
			}
			if f[0] != key {
				continue
			}
			if found {
				return 0, false, fmt.Errorf("line %d: %s given twice", i+1, key)
			}
			n, err := parseCount(f[1])
			if err != nil {
				return 0, false, fmt.Errorf("line %d: %s: %w", i+1, key, err)
			}
			v, found = n, true
		}
		return v, found, nil
	}
}

// parseIOStat sums rbytes and wbytes over the devices of a v2 io.stat
// ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" lines).
func parseIOStat(data []byte) (read, write int64, err error) {
	for i, line := range lines(data) {
		f := strings.Fields(line)
		if len(f) < 2 || !isDevice(f[0]) {
			return 0, 0, fmt.Errorf("line %d: want \"MAJ:MIN KEY=VALUE...\", got %s", i+1, quote([]byte(line)))
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return 0, 0, fmt.Errorf("line %d: want KEY=VALUE, got %s", i+1, quote([]byte(kv)))
			}
			switch k {
			case "rbytes":
				err = addCount(&read, v)
			case "wbytes":
				err = addCount(&write, v)
			}
			if err != nil {
				return 0, 0, fmt.Errorf("line %d: %s: %w", i+1, k, err)
			}
		}
	}
	return read, write, nil
}

// parseBlkio sums Read and Write over the devices of a v1
// blkio.throttle.io_service_bytes ("8:0 Read 4096" lines, then "Total N").
func parseBlkio(data []byte) (read, write int64, err error) {
	for i, line := range lines(data) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Total":
			_, err = parseCount(f[1])
		case len(f) == 3 && isDevice(f[0]) && f[1] == "Read":
			err = addCount(&read, f[2])
		case len(f) == 3 && isDevice(f[0]) && f[1] == "Write":
			err = addCount(&write, f[2])
		case len(f) == 3 && isDevice(f[0]):
			_, err = parseCount(f[2])
		default:
			return 0, 0, fmt.Errorf("line %d: want \"MAJ:MIN OP BYTES\" or \"Total BYTES\", got %s", i+1, quote([]byte(line)))
		}
		if err != nil {
			return 0, 0, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	return read, write, nil
}

// lines splits a file into its lines; it must end in a newline (or be
// empty).
func lines(data []byte) []string {
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// parseCount parses a non-negative decimal number.
func parseCount(s string) (int64, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("want a non-negative number, got %s", quote([]byte(s)))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %s out of range", quote([]byte(s)))
	}
	return n, nil
}

// addCount adds the number s to *sum, refusing an overflow.
func addCount(sum *int64, s string) error {
	n, err := parseCount(s)
	if err != nil {
		return err
	}
	if *sum > math.MaxInt64-n {
		return errors.New("the sum over the devices overflows")
	}
	*sum += n
	return nil
}

// isDevice reports whether s is a device number, "MAJ:MIN".
func isDevice(s string) bool {
	maj, min, ok := strings.Cut(s, ":")
	_, err1 := strconv.ParseUint(maj, 10, 32)
	_, err2 := strconv.ParseUint(min, 10, 32)
	return ok && err1 == nil && err2 == nil
}

// quote quotes b for an error, cut to 40 bytes.
func quote(b []byte) string {
	if len(b) > 40 {
		return strconv.Quote(string(b[:40])) + "..."
	}
	return strconv.Quote(string(b))
}
