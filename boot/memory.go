package boot

import (
	"bufio"
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"
)

// MemoryInfo is berth's own memory, as berth status --json shows it: what
// the kernel counts for the process (from /proc/self/status and
// smaps_rollup; as PID 1, /proc/1) and what the Go runtime says of it.
// RSS is the figure called "PID 1's memory": the anonymous pages plus the
// pages of berth's binary it has mapped (File, or Shmem when the binary
// is in the initramfs, as on a board: in RAM whether mapped or not).
type MemoryInfo struct {
	RSS  int64 `json:"rss_bytes"`
	Anon int64 `json:"rss_anon_bytes"`
	File int64 `json:"rss_file_bytes"`
	// Shmem is mapped pages of tmpfs files: berth's binary when it runs
	// from the initramfs, as PID 1 on a board.
	Shmem int64 `json:"rss_shmem_bytes"`
	// PSS shares each mapped page among the processes that map it.
	PSS int64 `json:"pss_bytes"`
	// HWM is the peak RSS since berth started.
	HWM int64 `json:"rss_peak_bytes"`
	// The Go runtime's view: the heap live after the last collection,
	// the heap's objects (live and not yet collected), the goal of the
	// next collection, goroutine stacks, and all memory the runtime holds
	// from the kernel (mapped and not released, resident or not).
	GoHeapLive    int64 `json:"go_heap_live_bytes"`
	GoHeapObjects int64 `json:"go_heap_objects_bytes"`
	GoHeapGoal    int64 `json:"go_heap_goal_bytes"`
	GoStacks      int64 `json:"go_stacks_bytes"`
	GoHeld        int64 `json:"go_held_bytes"`
	Goroutines    int64 `json:"goroutines"`
	// GCPercent and Limit are the collector's settings (gc.go).
	GCPercent int64 `json:"gc_percent"`
	Limit     int64 `json:"gc_memory_limit_bytes"`
}

// selfMemory reads berth's memory: the kernel's counts and the runtime's.
func selfMemory() MemoryInfo {
	var m MemoryInfo
	procFields("/proc/self/status", map[string]*int64{"VmRSS": &m.RSS, "RssAnon": &m.Anon, "RssFile": &m.File, "RssShmem": &m.Shmem, "VmHWM": &m.HWM})
	procFields("/proc/self/smaps_rollup", map[string]*int64{"Pss": &m.PSS})
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/sched/goroutines:goroutines"}, {Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"},
	}
	metrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(s[i].Value.Uint64())
	}
	m.GoHeapLive, m.GoHeapObjects, m.GoHeapGoal, m.GoStacks = v(0), v(1), v(2), v(3)
	m.GoHeld, m.Goroutines = v(4)-v(5), v(6)
	m.GCPercent, m.Limit = v(7), v(8)
	return m
}

// procFields reads the "Key: N kB" lines of a /proc file into want, in
// bytes.
func procFields(path string, want map[string]*int64) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		p := want[string(k)]
		if !ok || p == nil {
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
		if err == nil {
			*p = kb << 10
		}
	}
}
