package container

import (
	"fmt"
	"syscall"
	"time"
)

// Exit is how a container's workload ended.
type Exit struct {
	Name string
	// Code is the exit status, or -1 when a signal killed the workload.
	Code int
	// Signal is the signal that killed the workload, or 0.
	Signal syscall.Signal
	// OOMKills counts processes the kernel killed for exceeding the
	// container's memory limit.
	OOMKills int64
	// MemoryLimit is the container's memory limit in bytes, or 0.
	MemoryLimit int64
	// Stopped is set when the SIGKILL that ended the workload was berth's
	// (Kill, or Signal with SIGKILL: a stop past its timeout), not the
	// kernel's, whatever OOM kills came before it.
	Stopped bool
	Runtime time.Duration
}

// Status is the exit status a shell would report: the code, or 128+N when
// signal N killed the workload.
func (e Exit) Status() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	return e.Code
}

// OOM reports whether the kernel killed a process of the container for
// exceeding its memory limit, and the workload did not end by berth's
// SIGKILL afterwards.
func (e Exit) OOM() bool { return e.OOMKills > 0 && !e.Stopped }

// earlierOOM notes the OOM kills before berth's stop, "" for none.
func (e Exit) earlierOOM(limit string) string {
	if e.OOMKills == 0 {
		return ""
	}
	return fmt.Sprintf("; before that, the kernel killed %d of its processes: out of memory (%s)", e.OOMKills, limit)
}

// Describe is String without the container's name: "status 3", "signal 9
// (killed)", "out of memory (limit 64 MiB)".
func (e Exit) Describe() string {
	limit := "no limit"
	if e.MemoryLimit > 0 {
		limit = "limit " + FormatSize(e.MemoryLimit)
	}
	switch {
	case e.OOM():
		return fmt.Sprintf("out of memory, status %d (%s)", e.Status(), limit)
	case e.Stopped:
		return "signal 9 (killed by berth's stop)" + e.earlierOOM(limit)
	case e.Signal != 0:
		return fmt.Sprintf("signal %d (%s)", int(e.Signal), e.Signal)
	}
	return fmt.Sprintf("status %d", e.Code)
}

// String describes the exit for logs, e.g. "container web killed: out of
// memory (limit 64 MiB)".
func (e Exit) String() string {
	limit := "no limit"
	if e.MemoryLimit > 0 {
		limit = "limit " + FormatSize(e.MemoryLimit)
	}
	switch {
	case e.OOM() && e.Signal == syscall.SIGKILL:
		return fmt.Sprintf("container %s killed: out of memory (%s)", e.Name, limit)
	case e.OOM():
		return fmt.Sprintf("container %s exited with status %d: out of memory, the kernel killed %d of its processes (%s)", e.Name, e.Status(), e.OOMKills, limit)
	case e.Stopped:
		return fmt.Sprintf("container %s killed by berth's stop (SIGKILL)", e.Name) + e.earlierOOM(limit)
	case e.Signal != 0:
		return fmt.Sprintf("container %s killed by signal %d (%s)", e.Name, int(e.Signal), e.Signal)
	default:
		return fmt.Sprintf("container %s exited with status %d", e.Name, e.Code)
	}
}
