package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"berth/image"
)

// breakdown unpacks the berth image n times in this process, with the
// same code and defaults as berth image unpack, and prints where its
// goroutines' time went (image.Work), how often work changed hands, and
// how long its threads were on a CPU against waiting for one (from
// /proc/self/task/*/schedstat): on a shared machine the second says how
// much of the wall time the other load took.
func breakdown(in *inputs, tmpfs string, n int) error {
	var work []image.Work
	var walls, onCPU, waiting []time.Duration
	for range n {
		dest := filepath.Join(tmpfs, "dest")
		run0, wait0 := threadTimes()
		st, err := image.Unpack(in.berth, dest, image.UnpackOptions{})
		run1, wait1 := threadTimes()
		os.RemoveAll(dest)
		if err != nil {
			return fmt.Errorf("in-process unpack: %w", err)
		}
		work = append(work, st.Work)
		walls = append(walls, st.Elapsed)
		onCPU = append(onCPU, run1-run0)
		waiting = append(waiting, wait1-wait0)
	}
	pick := func(f func(w image.Work) time.Duration) time.Duration {
		v := make([]time.Duration, len(work))
		for i, w := range work {
			v[i] = f(w)
		}
		return median(v)
	}
	count := func(f func(w image.Work) int) int64 {
		v := make([]int64, len(work))
		for i, w := range work {
			v[i] = int64(f(w))
		}
		return median(v)
	}
	fmt.Printf("  berth's breakdown, in process (%d runs, medians; goroutine time summed over %d goroutines, wall %.3fs):\n",
		n, work[0].Goroutines, median(walls).Seconds())
	fmt.Printf("    decoding %.3fs, writing batches %.3fs, unpacking goroutine's own work %.3fs, asleep %.3fs\n",
		pick(func(w image.Work) time.Duration { return w.Decode }).Seconds(),
		pick(func(w image.Work) time.Duration { return w.Write }).Seconds(),
		pick(func(w image.Work) time.Duration { return w.Serial }).Seconds(),
		pick(func(w image.Work) time.Duration { return w.Sleep }).Seconds())
	fmt.Printf("    %d frames decoded, %d batches of whole files handed over, %d sleeps for want of a task\n",
		count(func(w image.Work) int { return w.Frames }), count(func(w image.Work) int { return w.Batches }),
		count(func(w image.Work) int { return w.Sleeps }))
	fmt.Printf("    threads on a CPU %.3fs, runnable but waiting for one %.3fs\n", median(onCPU).Seconds(), median(waiting).Seconds())
	return nil
}

// threadTimes sums this process's threads' time on a CPU and time waiting
// on a run queue, from /proc/self/task/*/schedstat (threads that exit in
// between are missed: the Go runtime keeps its threads).
func threadTimes() (run, wait time.Duration) {
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		var r, w int64
		if _, err := fmt.Sscan(string(b), &r, &w); err == nil {
			run += time.Duration(r)
			wait += time.Duration(w)
		}
	}
	return run, wait
}
