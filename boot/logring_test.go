package boot

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestLogRingBudget(t *testing.T) {
	r := newLogRing(4096, nil)
	for i := 0; i < 1000; i++ {
		r.add(LogLine{Time: time.Now(), Text: fmt.Sprintf("line %04d %s", i, strings.Repeat("x", 40))})
	}
	all := r.tail(0)
	if len(all) == 0 || !strings.HasPrefix(all[len(all)-1].Text, "line 0999") {
		t.Fatalf("last line %+v", all)
	}
	total := 0
	for _, l := range all {
		total += lineCost(l)
	}
	if total > 4096 {
		t.Errorf("ring holds %d bytes, budget 4096", total)
	}
	if got := r.tail(3); len(got) != 3 || !strings.HasPrefix(got[0].Text, "line 0997") {
		t.Errorf("tail 3 = %+v", got)
	}
}

func TestLogRingFollow(t *testing.T) {
	r := newLogRing(1<<20, nil)
	r.add(LogLine{Text: "old"})
	added, cancel := r.watch()
	defer cancel()
	from, to := r.span(10)
	r.add(LogLine{Text: "new"})
	if backlog, _ := r.read(from, to); len(backlog) != 1 || backlog[0].Text != "old" {
		t.Fatalf("backlog %+v", backlog)
	}
	select {
	case <-added:
		_, end := r.span(0)
		if got, next := r.read(to, end); len(got) != 1 || got[0].Text != "new" || next != end {
			t.Fatalf("followed %+v up to %d, want [new] up to %d", got, next, end)
		}
	case <-time.After(time.Second):
		t.Fatal("no line followed")
	}
}

// TestLogRingRead: a reader takes the ring by sequence number in batches
// of at most logBatchLines lines and logBatchBytes of text (a single
// line of 64 KiB still goes), and goes on from the oldest line left
// when the ring dropped the next one meanwhile.
func TestLogRingRead(t *testing.T) {
	cases := []struct {
		name      string
		lines     int
		size      int
		wantBatch int // lines in a full batch
	}{
		{"short lines: the line count bounds a batch", 2000, 10, logBatchLines},
		{"1 KiB lines: the bytes do", 300, 1 << 10, logBatchBytes / jsonCost(LogLine{Text: strings.Repeat("x", 1<<10)})},
		{"64 KiB lines: one each", 5, 64 << 10, 1},
		{"just past: 64 KiB + 1", 3, 64<<10 + 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newLogRing(64<<20, nil)
			for i := range c.lines {
				r.add(LogLine{Text: fmt.Sprintf("%08d", i) + strings.Repeat("x", c.size-8)})
			}
			from, to := r.span(0)
			if from != 0 || to != uint64(c.lines) {
				t.Fatalf("span = %d, %d; want 0, %d", from, to, c.lines)
			}
			seen := 0
			for from < to {
				batch, next := r.read(from, to)
				if next != from+uint64(len(batch)) || len(batch) == 0 {
					t.Fatalf("read(%d) = %d lines, next %d", from, len(batch), next)
				}
				if next < to && len(batch) != c.wantBatch {
					t.Errorf("a full batch holds %d lines, want %d", len(batch), c.wantBatch)
				}
				for _, l := range batch {
					if want := fmt.Sprintf("%08d", seen); !strings.HasPrefix(l.Text, want) {
						t.Fatalf("line %d is %.8q", seen, l.Text)
					}
					seen++
				}
				from = next
			}
			if seen != c.lines {
				t.Errorf("read %d lines of %d", seen, c.lines)
			}
		})
	}
	t.Run("lines dropped while reading", func(t *testing.T) {
		r := newLogRing(100*lineCost(LogLine{Text: "00000000"}), nil)
		for i := range 100 {
			r.add(LogLine{Text: fmt.Sprintf("%08d", i)})
		}
		from, to := r.span(0)
		for i := 100; i < 150; i++ { // drops lines 0-49
			r.add(LogLine{Text: fmt.Sprintf("%08d", i)})
		}
		batch, next := r.read(from, to)
		if len(batch) != 50 || batch[0].Text != "00000050" || next != to {
			t.Errorf("read after a drop: %d lines from %q, next %d; want 50 from 00000050, next %d", len(batch), batch[0].Text, next, to)
		}
		if _, to2 := r.span(0); to2 != 150 {
			t.Errorf("the end is %d after 150 lines", to2)
		}
		if got, _ := r.span(10); got != 140 {
			t.Errorf("the last 10 lines start at %d, want 140", got)
		}
	})
}

func TestRotatingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "app.log")
	f, err := openRotatingFile(path, 200, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newLogRing(1<<20, f)
	for i := 0; i < 30; i++ {
		r.add(LogLine{Time: time.Unix(0, 0), Text: fmt.Sprintf("line %d", i)})
	}
	f.close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 200 {
			t.Errorf("%s: %v size %d", p, err, fi.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("kept more than 2 rotated files")
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "line 29") {
		t.Errorf("current file lacks the last line: %q", data)
	}
}

// TestRotatingFileNeverFollowsSymlinks plays a container that can write the
// log directory (logs shared with it) and swaps its files and the
// directory itself for symlinks to a host file and a host directory. berth
// runs as root: none of its writes may land there.
func TestRotatingFileNeverFollowsSymlinks(t *testing.T) {
	line := LogLine{Time: time.Unix(0, 0), Text: strings.Repeat("x", 60)}
	tests := []struct {
		name string
		// before runs before berth opens DIR/app.log, between runs after
		// berth has written to it and before the write that rotates it.
		before, between func(t *testing.T, dir, victim, victimDir string)
		openFails       bool
	}{
		{"app.log is a symlink when berth opens it", func(t *testing.T, dir, victim, _ string) {
			mustSymlink(t, victim, filepath.Join(dir, "app.log"))
		}, nil, true},
		{"app.log becomes a symlink and cannot be rotated away", nil, func(t *testing.T, dir, victim, _ string) {
			os.Remove(filepath.Join(dir, "app.log"))
			mustSymlink(t, victim, filepath.Join(dir, "app.log"))
			// Non-empty directories in the way make the rotation's renames fail.
			for _, d := range []string{"app.log.1", "app.log.2"} {
				if err := os.MkdirAll(filepath.Join(dir, d, "x"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}, false},
		{"rotated names are symlinks", nil, func(t *testing.T, dir, victim, _ string) {
			mustSymlink(t, victim, filepath.Join(dir, "app.log.1"))
			mustSymlink(t, victim, filepath.Join(dir, "app.log.2"))
		}, false},
		{"the directory is a symlink when berth opens it", func(t *testing.T, dir, _, victimDir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, victimDir, dir)
		}, nil, true},
		{"the directory is swapped for a symlink", nil, func(t *testing.T, dir, _, victimDir string) {
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, victimDir, dir)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			dir, victimDir := filepath.Join(top, "log"), filepath.Join(top, "etc")
			for _, d := range []string{dir, victimDir} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			victim := filepath.Join(victimDir, "shadow")
			if err := os.WriteFile(victim, []byte("root:secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				tc.before(t, dir, victim, victimDir)
			}
			f, err := openRotatingFile(filepath.Join(dir, "app.log"), 200, 2, nil, nil)
			if tc.openFails {
				if err == nil {
					f.writeLine(line)
					f.close()
					t.Error("opened a log file that is a symlink")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				f.writeLine(line)
				tc.between(t, dir, victim, victimDir)
				for range 8 {
					f.writeLine(line)
				}
				f.close()
			}
			if data, _ := os.ReadFile(victim); string(data) != "root:secret\n" {
				t.Errorf("the host file now holds %q", data)
			}
			if ents, _ := os.ReadDir(victimDir); len(ents) != 1 {
				t.Errorf("the host directory now holds %d entries", len(ents))
			}
		})
	}
}

func mustSymlink(t *testing.T, to, link string) {
	t.Helper()
	if err := os.Symlink(to, link); err != nil {
		t.Fatal(err)
	}
}

// TestRotatingFileDirectories: the log file's missing directories are
// made, and none of its directories is ever reached through a symlink.
func TestRotatingFileDirectories(t *testing.T) {
	top := t.TempDir()
	victimDir := filepath.Join(top, "etc")
	if err := os.Mkdir(victimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := openRotatingFile(filepath.Join(top, "a", "b", "c", "app.log"), 200, 2, nil, nil)
	if err != nil {
		t.Fatalf("missing directories: %v", err)
	}
	f.close()
	if fi, err := os.Stat(filepath.Join(top, "a", "b", "c", "app.log")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("a/b/c/app.log: %v", err)
	}
	// A parent two levels up is a symlink: refused, nothing made beyond it.
	mustSymlink(t, victimDir, filepath.Join(top, "link"))
	for _, p := range []string{"link/app.log", "link/x/app.log", "a/../link/x/app.log"} {
		if f, err := openRotatingFile(filepath.Join(top, p), 200, 2, nil, nil); err == nil {
			f.close()
			t.Errorf("%s: opened through a symlink", p)
		} else if !strings.Contains(err.Error(), "symlink") {
			t.Errorf("%s: error %q does not say a symlink is in the way", p, err)
		}
	}
	if ents, _ := os.ReadDir(victimDir); len(ents) != 0 {
		t.Errorf("the directory behind the symlink now holds %d entries", len(ents))
	}
}

// TestLogRingMemory: log_size bounds the memory a ring keeps, whatever
// its lines: empty ones (where the ring's own bookkeeping is all there
// is), one byte, a hundred, and the longest, 64 KiB. Each shape fills a
// ring of 1 MiB four times over.
func TestLogRingMemory(t *testing.T) {
	const budget = 1 << 20
	for _, n := range []int{0, 1, 100, maxLogLine} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			heap := func() int64 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return int64(ms.HeapAlloc)
			}
			before := heap()
			r := newLogRing(budget, nil)
			for added := 0; added < 4*budget; added += n + 40 {
				r.add(LogLine{Time: time.Unix(0, 0), Text: strings.Repeat("x", n)})
			}
			kept := heap() - before
			if kept > budget+16<<10 {
				t.Errorf("a ring of %d bytes of %d-byte lines keeps %d bytes (%d lines)", budget, n, kept, len(r.tail(0)))
			}
			runtime.KeepAlive(r)
		})
	}
}

// TestLogLineJSON: a line's bytes survive the control socket's JSON as
// written, valid UTF-8 or not; only a line that is not carries raw.
func TestLogLineJSON(t *testing.T) {
	for _, text := range []string{"plain", "é and \x1b[31mred\r", "a\xff\xfe\x80b\x00Y", ""} {
		in := LogLine{Time: time.Unix(1, 5).UTC(), Text: text}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out LogLine
		if err := json.Unmarshal(b, &out); err != nil || out != in {
			t.Errorf("%q: %s read back as %q (%v)", text, b, out.Text, err)
		}
		if hasRaw := strings.Contains(string(b), `"raw"`); hasRaw == utf8.ValidString(text) {
			t.Errorf("%q: %s", text, b)
		}
	}
}

// TestLogRingSlowFile: a line held up on its way to log_file (a slow
// disk; here a full pipe) holds up neither berth logs nor the next
// reader of the ring, and the lines reach the file in order once it
// moves again (R1).
func TestLogRingSlowFile(t *testing.T) {
	r, pr, pw := pipeFileRing(t, 4<<20)
	big := strings.Repeat("x", 1<<20) // more than a pipe holds: the write blocks
	first := make(chan struct{})
	go func() {
		r.add(LogLine{Time: time.Now(), Text: "first " + big})
		close(first)
	}()
	waitLines(t, r, 1, "berth logs waited for a write to log_file")
	// A second output reader's add (a restarted container's, while the
	// old one's reader drains) neither waits for the write under way nor
	// holds the ring up while it waits.
	second := make(chan struct{})
	go func() {
		r.add(LogLine{Time: time.Now(), Text: "second"})
		close(second)
	}()
	waitLines(t, r, 2, "berth logs waited while a second add waited for log_file")
	select {
	case <-second:
	case <-time.After(time.Minute): // a hang guard
		t.Fatal("a second add waited for the first one's write to log_file")
	}
	file := drain(pr)
	<-first
	r.close()
	pw.Close()
	lines := strings.Split(strings.TrimSuffix(<-file, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " first x") || !strings.HasSuffix(lines[1], " second") {
		t.Errorf("the file holds %d lines, want first then second", len(lines))
	}
}

// TestLogRingFileBacklog: while a write to log_file is stuck, what waits
// for the file stays within fileBacklog and a line: the output's reader
// waits (the container's pipe fills) instead of PID 1 keeping it all.
// Once the file is read again every line reaches it, in order.
func TestLogRingFileBacklog(t *testing.T) {
	r, pr, pw := pipeFileRing(t, 1<<20)
	line := strings.Repeat("y", 64<<10)
	const n = 100 // 6.4 MiB: far past fileBacklog
	go r.add(LogLine{Time: time.Now(), Text: "stuck " + strings.Repeat("x", 1<<20)})
	waitLines(t, r, 1, "the first line never reached the ring")
	added := make(chan struct{})
	go func() {
		for i := range n {
			r.add(LogLine{Time: time.Now(), Text: fmt.Sprintf("%03d %s", i, line)})
		}
		close(added)
	}()
	for deadline := time.Now().Add(time.Minute); ; runtime.Gosched() { // a hang guard
		r.mu.Lock()
		waited, cost := r.waited, r.pendingCost
		r.mu.Unlock()
		select {
		case <-added:
			t.Fatalf("%d lines of 64 KiB added while the file's write was stuck: %d bytes wait for it", n, cost)
		default:
		}
		if waited > 0 {
			if limit := fileBacklog + lineCost(LogLine{Text: "000 " + line}); cost > limit {
				t.Errorf("%d bytes wait for the file, over %d", cost, limit)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no add waited for the file")
		}
	}
	file := drain(pr)
	<-added
	r.close()
	pw.Close()
	lines := strings.Split(strings.TrimSuffix(<-file, "\n"), "\n")
	if len(lines) != n+1 || !strings.Contains(lines[0], " stuck x") {
		t.Fatalf("the file holds %d lines, want %d", len(lines), n+1)
	}
	for i, l := range lines[1:] {
		if !strings.Contains(l, fmt.Sprintf(" %03d y", i)) {
			t.Fatalf("line %d of the file is %.40q…, want line %03d", i+1, l, i)
		}
	}
}

// pipeFileRing is a ring of budget bytes whose log_file is a pipe's
// writing end: a write of more than the pipe holds blocks until the
// test reads its other end, pr, as a slow disk would.
func pipeFileRing(t *testing.T, budget int) (r *logRing, pr, pw *os.File) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	return newLogRing(budget, &rotatingFile{f: pw, maxSize: 1 << 30}), pr, pw
}

// waitLines waits until the ring holds n lines; it fails with msg at
// its hang guard.
func waitLines(t *testing.T, r *logRing, n int, msg string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); len(r.tail(0)) < n; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

// drain reads r to its end on a goroutine and sends what it read.
func drain(r *os.File) <-chan string {
	out := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				out <- b.String()
				return
			}
		}
	}()
	return out
}
